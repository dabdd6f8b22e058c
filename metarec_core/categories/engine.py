"""Few-shot scoring on embeddings: prototypes, name prior, open-set threshold, hub correction,
propagation.

This is the numeric core shared by ``classify`` (DataFrames in, DataFrames out) and the
evaluation protocol (thousands of episodes on cached embeddings). Inputs are raw encoder
embeddings; the model decides the space (projection, centring) and the tricks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metarec_core.categories.config import EngineConstants
from metarec_core.categories.model import CategoryModel
from metarec_core.categories.protonet import (
    best_example_sims,
    class_sums,
    hub_corrected,
    knn_graph,
    l2n,
    label_propagation,
    prototypes,
    reestimated_prototypes,
    softmax,
)
from metarec_core.categories.words import with_words
from metarec_core.device import available_device


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


def name_weights(weight: float, counts: np.ndarray, by_shots: bool) -> np.ndarray:
    """Weight of each category's name embedding given its ``counts`` (C,) labelled examples.

    With ``by_shots`` the name counts more when examples are few: ``weight * 2 / sqrt(n)``,
    capped at ``2 * weight`` (2x at 1 shot, 0.9x at 5, 0.6x at 10).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if not by_shots:
        return np.full(counts.shape, float(weight))
    return weight * np.minimum(2.0, 2.0 / np.sqrt(np.maximum(counts, 1.0)))


def _with_names(
    protos: np.ndarray, z_names: np.ndarray | None, weights: np.ndarray | float
) -> np.ndarray:
    if z_names is None or np.all(np.asarray(weights) <= 0):
        return protos
    w = np.broadcast_to(np.asarray(weights, dtype=np.float32), (len(protos),))
    return l2n(protos + w[:, None] * z_names)


def leave_one_out_scores(
    zs: np.ndarray,
    ys: np.ndarray,
    n_classes: int,
    z_names: np.ndarray | None,
    weight: float,
    by_shots: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out prediction and own-prototype similarity for each support item.

    Item i is scored against every prototype, its own class's rebuilt without it. An item alone
    in its class can only be scored when a name prior exists; otherwise pred = -1, sim = nan.
    """
    sums = class_sums(zs, ys, n_classes)  # (C, D)
    counts = np.bincount(ys, minlength=n_classes)
    w_all = name_weights(weight, counts, by_shots)  # (C,)
    protos = _with_names(l2n(sums / np.maximum(counts, 1)[:, None]), z_names, w_all)
    sims = zs @ protos.T  # (S, C)
    rest = sums[ys] - zs  # (S, D) own class without the item
    own = l2n(rest)
    has_names = z_names is not None and weight > 0
    if has_names:
        w_own = name_weights(weight, counts[ys] - 1, by_shots)  # (S,) class without the item
        own = l2n(own + w_own[:, None].astype(np.float32) * z_names[ys])
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


def names_recognise(x: np.ndarray, labels: np.ndarray, x_names: np.ndarray) -> float:
    """Share of examples ``x`` (S, D) whose most similar category name ``x_names`` (C, D) is
    their own (``labels`` (S,)): what the names alone, zero-shot, know of the support."""
    if len(x) == 0 or len(x_names) == 0:
        return 0.0
    return float(((x @ x_names.T).argmax(1) == np.asarray(labels)).mean())


def names_beat_chance(
    x: np.ndarray, labels: np.ndarray, x_names: np.ndarray, floor: float = 0.0
) -> bool:
    """Whether category names (C, D), matched by similarity alone, recognise at least twice the
    share of examples (S, D) that chance would (2 / C), and at least ``floor`` of them."""
    n = len(x_names)
    return n >= 2 and names_recognise(x, labels, x_names) >= max(2.0 / n, floor)


def propagation_alpha(eng: EngineConstants, n_queries: int, n_classes: int) -> float:
    """Label propagation's alpha for a task of ``n_queries`` over ``n_classes`` categories.

    With ``eng.propagate_alpha_by_queries`` the labels spread further the more unlabelled
    items each category has (``1 - r ** -power`` for r queries per category, bounded); otherwise
    ``eng.propagate_alpha``.
    """
    if not eng.propagate_alpha_by_queries:
        return float(eng.propagate_alpha)
    per_class = max(n_queries, 1) / max(n_classes, 1)
    low, high = eng.propagate_alpha_min, eng.propagate_alpha_max
    return float(np.clip(1.0 - per_class**-eng.propagate_alpha_power, low, high))


def _decide_names(
    zs: np.ndarray, ys: np.ndarray, n_classes: int, z_names: np.ndarray | None, eng: EngineConstants
) -> bool:
    """Use the name prior only when the support itself says the names carry the category."""
    weight, by_shots = eng.name_weight, eng.name_weight_by_shots
    if z_names is None or weight <= 0:
        return False
    pred_n, _ = leave_one_out_scores(zs, ys, n_classes, z_names, weight, by_shots)
    pred_0, _ = leave_one_out_scores(zs, ys, n_classes, None, 0.0)
    both = pred_0 >= 0
    if both.any():  # compare on the items both can score
        right_n, right_0 = (pred_n[both] == ys[both]).sum(), (pred_0[both] == ys[both]).sum()
        return bool(right_n >= right_0 - eng.names_loo_slack)
    # 1 shot, nothing to leave out: do the names alone recognise the support?
    return names_beat_chance(zs, ys, z_names, eng.names_prior_floor)


def _name_describes_one(
    zs: np.ndarray, zq: np.ndarray, z_names: np.ndarray | None, eng: EngineConstants
) -> bool:
    """Whether a single category's name (1, D) describes its examples ``zs`` (S, D): they sit,
    on average, among the top ``eng.name_rank_max_share`` of the queries ``zq`` (Q, D) most similar to the name.

    With one category leave-one-out is always right, so it cannot judge the name; the queries
    (mostly products of other categories) can: a name that says nothing ranks its examples at
    random.
    """
    if z_names is None or eng.name_weight <= 0 or len(zq) < eng.name_rank_min_queries:
        return False
    q = np.sort(zq @ z_names[0])
    rank = 1.0 - np.searchsorted(q, zs @ z_names[0], side="right") / len(q)  # (S,) share above
    return bool(rank.mean() <= eng.name_rank_max_share)


def score(
    model: CategoryModel,
    xs: np.ndarray,
    ys: np.ndarray,
    xq: np.ndarray,
    n_classes: int,
    x_names: np.ndarray | None = None,
    open_set: bool = False,
    threshold_shift: float = 0.0,
    texts: Sequence[str] | None = None,
) -> Scores:
    """Classify queries ``xq`` (Q, D) given support ``xs`` (S, D) with labels ``ys`` (S,).

    ``x_names`` (C, D) are raw embeddings of the category names (None to skip the name prior).
    ``threshold_shift`` moves the open-set threshold from where the engine puts it: up for
    precision (fewer products accepted), down for recall. ``texts``, the support's then the
    queries' titles, add their word features (``words.with_words``) when two or more categories
    are told apart in a closed set.
    """
    cfg = model.config.engine
    pool = np.concatenate([xs, xq]) if len(xq) else xs
    mean = pool.mean(0, keepdims=True) if cfg.center else 0.0
    zs, zq = model.transform(xs, mean), model.transform(xq, mean)
    z_names = model.transform(x_names, mean) if x_names is not None else None
    by_shots = cfg.name_weight_by_shots
    # the names are judged in the encoder's space, where they live (they get no word features)
    if n_classes == 1:  # leave-one-out cannot compare categories: ask the queries instead
        used_names = _name_describes_one(zs, zq, z_names, cfg)
    else:
        used_names = _decide_names(zs, ys, n_classes, z_names, cfg)
    if texts is not None and cfg.word_weight > 0 and n_classes >= 2 and not open_set:
        zs, zq, z_names = with_words(zs, zq, z_names, texts, cfg.word_weight, cfg.word_dims)
    weight = cfg.name_weight if used_names else 0.0
    loo_pred, loo_sim = leave_one_out_scores(zs, ys, n_classes, z_names, weight, by_shots)
    w_class = name_weights(weight, np.bincount(ys, minlength=n_classes), by_shots)  # (C,)
    protos = _with_names(l2n(prototypes(zs, ys, n_classes)), z_names, w_class)
    sims = zq @ protos.T  # (Q, C)
    threshold = None
    if open_set:
        threshold = _threshold(model, loo_sim, zs @ protos.T, ys, sims) + float(threshold_shift)
    graph_zs, graph_ys = zs, ys
    if cfg.name_nodes and weight > 0:  # the names join the labelled items of the graph
        graph_zs, graph_ys = (
            np.concatenate([zs, z_names]),
            np.concatenate([ys, np.arange(n_classes)]),
        )
    probs = np.zeros((0, n_classes))
    if len(zq):
        probs = _query_probs(model, graph_zs, graph_ys, zq, protos, sims)
    pred = probs.argmax(1) if len(zq) else np.zeros(0, np.int64)
    confidence = probs.max(1) if len(zq) else np.zeros(0)
    if threshold is not None and len(zq):
        # "none of these" when even the closest prototype is less similar than the threshold;
        # its probability is a logistic in the similarity gap, at the same temperature.
        gap = sims.max(1) - threshold  # (Q,)
        p_in = 1.0 / (1.0 + np.exp(-model.temperature * gap))
        probs = probs * p_in[:, None]
        pred = np.where(gap >= 0, pred, -1)
        confidence = np.where(gap >= 0, probs.max(1), 1.0 - p_in)
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


def _query_probs(
    model: CategoryModel,
    zs: np.ndarray,
    ys: np.ndarray,
    zq: np.ndarray,
    protos: np.ndarray,
    sims: np.ndarray,
) -> np.ndarray:
    """Closed-set probabilities (Q, C) of the queries from their similarities ``sims`` (Q, C) to
    ``protos``, each mixed with the similarity to the category's closest labelled item in
    ``zs``: hub-corrected, then, with enough queries, label propagation, prototypes
    re-estimated from what it found and propagated once more (few queries per category only),
    and sharpening."""
    cfg = model.config.engine
    n_classes = len(protos)
    if n_classes == 1:  # nothing to choose between: the open-set threshold does the work
        return np.ones((len(zq), 1))
    if cfg.example_share > 0:  # a category's closest item speaks for its varied products
        best = best_example_sims(zq, zs, ys, n_classes)
        mixed = (1.0 - cfg.example_share) * sims + cfg.example_share * best
        sims = np.where(np.isnan(best), sims, mixed)

    def seeded(similarities: np.ndarray) -> np.ndarray:
        logits = similarities
        if cfg.hub_correction > 0 and len(zq) >= cfg.hub_neighbors:
            logits = hub_corrected(logits, cfg.hub_correction, cfg.hub_neighbors)
        return softmax(model.temperature * logits)

    probs = seeded(sims)
    if cfg.propagate_alpha <= 0 or len(zq) < max(cfg.propagate_min_queries, 2 * n_classes):
        return probs
    alpha = propagation_alpha(cfg, len(zq), n_classes)
    graph = knn_graph(
        np.concatenate([zs, zq]).astype(np.float32),
        cfg.propagate_neighbors,
        device=available_device(model.config.device),
    )

    def spread(prior: np.ndarray) -> np.ndarray:
        k, w = cfg.propagate_neighbors, cfg.propagate_prior
        return label_propagation(zs, ys, zq, prior, alpha, k, w, graph=graph)

    probs = spread(probs)
    if cfg.reestimate_weight > 0 and len(zq) / n_classes <= cfg.reestimate_max_per_category:
        moved = reestimated_prototypes(protos, zq, probs, cfg.reestimate_weight)
        probs = spread(seeded(zq @ moved.T))
    if cfg.sharpen != 1.0:  # propagated scores come out flat: sharpen to calibrate
        probs = probs**cfg.sharpen
        probs /= np.maximum(probs.sum(1, keepdims=True), 1e-12)
    return probs


def _threshold(
    model: CategoryModel,
    loo_sim: np.ndarray,
    support_sims: np.ndarray,
    ys: np.ndarray,
    query_sims: np.ndarray,
) -> float:
    """Open-set threshold: what the support says, and, with at least ``mixture_min_queries``
    queries, what their similarities ``query_sims`` (Q, C) say.

    The support's threshold is ``_support_threshold``; with two or more categories and enough
    queries it is averaged, at ``open_set_query_weight``, with ``mixture_threshold`` of each
    query's best similarity. A single category among many queries takes ``f1_threshold`` (its
    leave-one-out similarities against the queries'), or, with too few examples to leave out,
    the mixture alone.
    """
    cfg, seed = model.config.engine, model.config.seed
    many = len(query_sims) >= cfg.mixture_min_queries
    positives = loo_sim[np.isfinite(loo_sim)]
    if (
        many
        and len(positives) >= cfg.min_loo_for_threshold
        and (support_sims.shape[1] == 1 or cfg.open_set_rule == "f1")
    ):
        return f1_threshold(query_sims.max(1), positives)
    support = _support_threshold(model, loo_sim, support_sims, ys)
    if support is None:
        if support_sims.shape[1] == 1 and many:
            return mixture_threshold(query_sims[:, 0], seed)
        stored = model.report.get("open_set_threshold_1shot")
        fallback = cfg.fallback_threshold_centred if cfg.center else cfg.fallback_threshold_raw
        support = float(stored) if stored is not None else fallback
    w = cfg.open_set_query_weight
    if w <= 0 or not many or support_sims.shape[1] < 2:  # one category: see the config
        return support
    return (1.0 - w) * support + w * mixture_threshold(query_sims.max(1), seed)


def _support_threshold(
    model: CategoryModel, loo_sim: np.ndarray, support_sims: np.ndarray, ys: np.ndarray
) -> float | None:
    """Open-set threshold estimated on the support alone (None: too few examples to leave out).

    Positives: each support item's leave-one-out similarity to its own category. Negatives: its
    similarity to the closest *other* prototype (a stand-in for products of other categories).
    With ``open_set_rule="separate"`` the threshold is the cut that best separates the two
    (highest balanced accuracy), never below the ``open_set_quantile`` of the positives;
    ``"quantile"`` (or a single category) uses that quantile alone.
    """
    cfg = model.config.engine
    pos = loo_sim[np.isfinite(loo_sim)]
    if len(pos) < cfg.min_loo_for_threshold:
        return None
    floor = float(np.quantile(pos, cfg.open_set_quantile))
    if cfg.open_set_rule == "quantile" or support_sims.shape[1] < 2:
        return floor
    other = support_sims.copy()  # (S, C)
    other[np.arange(len(ys)), ys] = -np.inf
    neg = other.max(1)
    cuts = np.unique(np.concatenate([pos, neg]))
    tpr = 1.0 - np.searchsorted(np.sort(pos), cuts, side="left") / len(pos)
    tnr = np.searchsorted(np.sort(neg), cuts, side="left") / len(neg)
    return max(float(cuts[np.argmax(tpr + tnr)]), floor)


def f1_threshold(best: np.ndarray, positives: np.ndarray, min_sd: float = 0.03) -> float:
    """The cut on the queries' best similarities ``best`` (Q,) with the highest expected F1 of
    the products it accepts.

    In-category similarities are taken as normal with the mean and spread (at least ``min_sd``)
    of the support's leave-one-out ``positives``; the queries hold about twice as many
    in-category products as there are queries above that mean. A cut t then accepts
    ``A(t)`` queries, of which ``n * P(pos >= t)`` are expected in-category, and F1 is
    ``2 TP / (A + n)``. Measured on one new aisle among all other products (5 shots): F1
    0.26 -> 0.37 against the leave-one-out quantile (benchmarks/README.md).
    """
    from scipy.stats import norm

    q = np.sort(np.asarray(best, dtype=np.float64))
    mu = float(np.mean(positives))
    sd = max(float(np.std(positives, ddof=1)) if len(positives) > 1 else min_sd, min_sd)
    n_pos = int(np.clip(2 * (len(q) - np.searchsorted(q, mu, side="left")), 1, len(q)))
    cuts = np.unique(np.quantile(q, np.linspace(0.0, 0.9999, 500)))  # (G,)
    accepted = len(q) - np.searchsorted(q, cuts, side="left")  # (G,)
    tp = np.minimum(n_pos * norm.sf((cuts - mu) / sd), accepted)
    return float(cuts[np.argmax(2 * tp / (accepted + n_pos))])


def mixture_threshold(sims: np.ndarray, seed: int = 0) -> float:
    """Where the upper of two Gaussian components fitted to ``sims`` (Q,) takes over: the lowest
    similarity, above the lower component's mean, whose posterior for the upper one is >= 0.5.

    The queries' similarities to a new category's prototype are a large foreign mode and a
    smaller, higher in-category one; without examples to leave out this is the only estimate
    of where one ends. Falls back to the 90% quantile when the mixture finds no such point.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = np.asarray(sims, dtype=np.float64)[:, None]
    if len(np.unique(x)) < 2:  # nothing to tell apart
        return float(x.max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(2, random_state=seed).fit(x)
    means = g.means_[:, 0]
    hi = int(np.argmax(means))
    grid = np.linspace(x.min(), x.max(), 400)
    post = g.predict_proba(grid[:, None])[:, hi]
    above = grid[(post >= 0.5) & (grid >= means[1 - hi])]
    return float(above.min()) if len(above) else float(np.quantile(x, 0.9))
