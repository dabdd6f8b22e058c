"""Few-shot scoring on embeddings: prototypes, name prior, open-set threshold, refinement.

This is the numeric core shared by ``classify`` (DataFrames in, DataFrames out) and the
evaluation protocol (thousands of episodes on cached embeddings). Inputs are raw encoder
embeddings; the model decides the space (projection, centring) and the tricks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec_core.categories.model import CategoryModel
from metarec_core.categories.protonet import l2n, prototypes, refine_prototypes, softmax

# Open-set threshold when leave-one-out has too few in-category similarities (1-shot supports):
# the similarity below which an item is "none of these", measured on held-out Instacart aisles.
FALLBACK_THRESHOLD = {"plain": 0.45, "trained": 0.40}
MIN_LOO_FOR_THRESHOLD = 3


@dataclass
class Scores:
    """Per-query results of one few-shot task (C categories, Q queries)."""

    pred: np.ndarray  # (Q,) category index, -1 = none of these (open set only)
    confidence: np.ndarray  # (Q,) probability of the predicted outcome
    probs: np.ndarray  # (Q, C) probabilities over the categories (open set: plus "none" mass)
    sims: np.ndarray  # (Q, C) cosine similarity to each prototype in the model's space
    protos: np.ndarray  # (C, D) final prototypes in the model's space
    z_support: np.ndarray  # (S, D) support in the model's space
    z_query: np.ndarray  # (Q, D)
    threshold: float | None  # open-set similarity threshold (None when closed set)
    used_names: bool
    loo_accuracy: float | None  # leave-one-out accuracy on the support (None if not estimable)
    loo_pred: np.ndarray  # (S,) leave-one-out prediction per support item (-1 = not estimable)
    loo_sim: np.ndarray  # (S,) similarity of each support item to its own LOO prototype


def _with_names(protos: np.ndarray, z_names: np.ndarray | None, weight: float) -> np.ndarray:
    if z_names is None or weight <= 0:
        return protos
    return l2n(protos + weight * z_names)


def leave_one_out_scores(
    zs: np.ndarray, ys: np.ndarray, n_classes: int, z_names: np.ndarray | None, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out prediction and own-prototype similarity for each support item.

    Item i is scored against every prototype, its own class's rebuilt without it. An item alone
    in its class can only be scored when a name prior exists; otherwise pred = -1, sim = nan.
    """
    sums = np.zeros((n_classes, zs.shape[1]))
    np.add.at(sums, ys, zs)
    counts = np.bincount(ys, minlength=n_classes)
    protos = _with_names(l2n(sums / np.maximum(counts, 1)[:, None]), z_names, weight)
    sims = zs @ protos.T  # (S, C)
    rest = sums[ys] - zs  # (S, D) own class without the item
    own = l2n(rest)
    has_names = z_names is not None and weight > 0
    if has_names:
        own = l2n(own + weight * z_names[ys])
    own_sim = np.einsum("sd,sd->s", zs, own)
    alone = (counts[ys] == 1) & (not has_names)  # (S,) bool
    sims[np.arange(len(ys)), ys] = own_sim
    pred = sims.argmax(1)
    pred[alone] = -1
    own_sim = own_sim.astype(np.float64)
    own_sim[alone] = np.nan
    return pred, own_sim


def _loo_accuracy(pred: np.ndarray, ys: np.ndarray) -> float | None:
    ok = pred >= 0
    return float((pred[ok] == ys[ok]).mean()) if ok.any() else None


def _decide_names(
    zs: np.ndarray, ys: np.ndarray, n_classes: int, z_names: np.ndarray | None, weight: float
) -> bool:
    """Use the name prior only when the support itself says the names carry the category."""
    if z_names is None or weight <= 0:
        return False
    pred_n, _ = leave_one_out_scores(zs, ys, n_classes, z_names, weight)
    pred_0, _ = leave_one_out_scores(zs, ys, n_classes, None, 0.0)
    both = pred_0 >= 0
    if both.any():  # compare on the items both can score
        return (pred_n[both] == ys[both]).mean() >= (pred_0[both] == ys[both]).mean()
    zero_shot = (zs @ z_names.T).argmax(1)  # 1-shot: do names alone recognise the support?
    return float((zero_shot == ys).mean()) >= 0.5


def score(
    model: CategoryModel,
    xs: np.ndarray,
    ys: np.ndarray,
    xq: np.ndarray,
    n_classes: int,
    x_names: np.ndarray | None = None,
    open_set: bool = False,
) -> Scores:
    """Classify queries ``xq`` (Q, D) given support ``xs`` (S, D) with labels ``ys`` (S,).

    ``x_names`` (C, D) are raw embeddings of the category names (None to skip the name prior).
    """
    cfg = model.config
    pool = np.concatenate([xs, xq]) if len(xq) else xs
    mean = pool.mean(0, keepdims=True) if cfg.center else 0.0
    zs, zq = model.transform(xs, mean), model.transform(xq, mean)
    z_names = model.transform(x_names, mean) if x_names is not None else None
    used_names = _decide_names(zs, ys, n_classes, z_names, cfg.name_weight)
    weight = cfg.name_weight if used_names else 0.0
    loo_pred, loo_sim = leave_one_out_scores(zs, ys, n_classes, z_names, weight)
    protos = _with_names(l2n(prototypes(zs, ys, n_classes)), z_names, weight)
    threshold = _threshold(model, loo_sim) if open_set else None
    if cfg.refine_steps > 0 and len(zq) >= n_classes:
        pool_q = zq if threshold is None else zq[(zq @ protos.T).max(1) >= threshold]
        if len(pool_q):
            prior = weight * z_names if weight > 0 else None
            protos = refine_prototypes(
                zs, ys, pool_q, protos, model.temperature, cfg.refine_steps, prior
            )
    sims = zq @ protos.T  # (Q, C)
    logits = model.temperature * sims
    if threshold is not None:  # "none of these" acts as a prototype at the threshold similarity
        none = np.full((len(zq), 1), model.temperature * threshold, dtype=logits.dtype)
        full = softmax(np.concatenate([logits, none], axis=1))
        pred = full.argmax(1)
        confidence = full.max(1)
        pred = np.where(pred == n_classes, -1, pred)
        probs = full[:, :n_classes]
    else:
        probs = softmax(logits) if len(zq) else np.zeros((0, n_classes))
        pred, confidence = probs.argmax(1), probs.max(1) if len(zq) else np.zeros(0)
    return Scores(
        pred=pred.astype(np.int64),
        confidence=np.asarray(confidence, dtype=np.float64),
        probs=probs,
        sims=sims,
        protos=protos,
        z_support=zs,
        z_query=zq,
        threshold=threshold,
        used_names=used_names,
        loo_accuracy=_loo_accuracy(loo_pred, ys),
        loo_pred=loo_pred,
        loo_sim=loo_sim,
    )


def _threshold(model: CategoryModel, loo_sim: np.ndarray) -> float:
    """Open-set threshold: a low quantile of the support's leave-one-out in-category similarity."""
    vals = loo_sim[np.isfinite(loo_sim)]
    if len(vals) >= MIN_LOO_FOR_THRESHOLD:
        return float(np.quantile(vals, model.config.open_set_quantile))
    stored = model.report.get("open_set_threshold_1shot")
    if stored is not None:
        return float(stored)
    return FALLBACK_THRESHOLD["plain" if model.is_plain else "trained"]
