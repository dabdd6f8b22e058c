"""Meta-training: fit baselines on the warm users, then train the scorer on episodes.

Entry point: ``train_model(interactions, items, config, progress, encoder) -> ColdStartModel``.
Stages reported to ``progress``: "embed", "baselines", "meta-train" (metrics: loss), "pretrain"
(the conventionally trained twin used by the ``finetune`` method), "validate".
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart import baselines as bl
from metarec_core.coldstart.config import ColdStartConfig
from metarec_core.coldstart.data import Catalogue, interaction_matrix, user_sequences
from metarec_core.coldstart.episodes import (
    EaseLOO,
    Episode,
    UserBatch,
    epoch_batches,
    make_batch,
    sample_epoch,
)
from metarec_core.coldstart.net import ColdStartNet
from metarec_core.coldstart.scoring import batch_scores, support_penalty
from metarec_core.coldstart.validation import check_adaptation, split_validation, validate
from metarec_core.device import resolve_device
from metarec_core.embed.encoder import MINILM_ID
from metarec_core.errors import ValidationError
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)
LR_RATE_BOOST = 10.0  # outer learning rate of the Meta-SGD log inner rates, relative to cfg.lr
PATIENCE_STEPS = 60  # stop when validation has not improved for this many steps (>= 1 epoch)


def item_text_embeddings(
    catalogue: Catalogue, encoder=None, progress: Progress = no_progress
) -> np.ndarray:
    """(N, T) float32 text embeddings of the catalogue through the persistent embedding cache
    (``encoder`` None: MiniLM, loaded only if a text is not cached yet)."""
    from metarec_core.embed.service import lazy_encoder, shared_cache

    enc = encoder if encoder is not None else lazy_encoder("minilm")
    return shared_cache(enc).embed(list(catalogue.texts), progress=progress).astype(np.float32)


def query_loss(
    scores: torch.Tensor, batch: UserBatch, query: torch.Tensor, qmask: torch.Tensor
) -> torch.Tensor:
    """Mean over users of the mean softmax cross-entropy of their query items (support masked)."""
    masked = scores + support_penalty(batch)
    logp = torch.log_softmax(masked, dim=-1)
    per_user = -(logp.gather(1, query) * qmask).sum(1) / qmask.sum(1).clamp(min=1.0)
    return per_user.mean()


def train_net(
    net: ColdStartNet,
    train_seqs: list[np.ndarray],
    val: list[Episode],
    loo: EaseLOO | None,
    cfg: ColdStartConfig,
    inner_steps: int,
    stage: str,
    progress: Progress,
    device: torch.device,
) -> dict:
    """Episodic training (inner_steps > 0: meta-learning; 0: conventional) with best-epoch keeping."""
    rng = np.random.default_rng(cfg.seed + (0 if inner_steps else 7))
    opt = make_optimiser(net, cfg, learn_rates=inner_steps > 0 and cfg.learn_inner_lr)
    n_items = net.text.shape[0]
    per_epoch = max(1, -(-sum(len(s) >= 2 for s in train_seqs) // cfg.batch_size))
    epochs = max(cfg.epochs, -(-cfg.min_steps // per_epoch))
    total = epochs * per_epoch
    if cfg.max_steps:  # big logs: a bounded number of steps (the last epoch may be partial)
        epochs = min(epochs, -(-cfg.max_steps // per_epoch))
        total = min(total, cfg.max_steps)
    patience = max(1, -(-PATIENCE_STEPS // per_epoch))  # epochs without a better validation
    done, losses, val_curve = 0, [], []
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(epochs):
        if val and stalled(val_curve, patience):
            log.info("%s: validation has not improved for %d epochs; stopping", stage, patience)
            note = f"stopped after epoch {epoch}: validation stopped improving"
            progress(ProgressEvent(stage, total, total, note))
            break
        chunks = epoch_batches(sample_epoch(train_seqs, cfg, rng), cfg.batch_size, rng)
        for chunk in chunks[: total - done]:
            batch, query, qmask = make_batch(chunk, net, loo, n_items, device)
            scores = batch_scores(net, batch, inner_steps, cfg.first_order)[0]
            loss = query_loss(scores, batch, query, qmask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            losses.append(float(loss.detach()))
            progress(
                ProgressEvent(
                    stage, done, total, f"epoch {epoch + 1}/{epochs}", {"loss": losses[-1]}
                )
            )
        if not val:  # too few users to hold any back: the last epoch is kept
            best_epoch = epoch + 1
            continue
        score = validate(net, val, loo, inner_steps, cfg, device)
        val_curve.append(score)
        log.info(
            "%s epoch %d: loss %.4f val ndcg@10 %.4f",
            stage,
            epoch + 1,
            np.mean(losses[-per_epoch:]),
            score,
        )
        if score > best:
            best, best_state, best_epoch = score, copy.deepcopy(net.state_dict()), epoch + 1
    if best_state is not None:
        net.load_state_dict(best_state)
    return {"loss": losses, "val_ndcg10": val_curve, "best_epoch": best_epoch}


def make_optimiser(net: ColdStartNet, cfg: ColdStartConfig, learn_rates: bool) -> torch.optim.Adam:
    """Adam over the net's weights: ``weight_decay`` (L2) on the id embeddings only, and the
    inner learning rates (``log_lr_*``) only when ``learn_rates`` (Meta-SGD); otherwise they
    stay at ``inner_lr`` (MAML with one fixed rate)."""
    named = list(net.named_parameters())
    ids = [p for n, p in named if n in ("id_in", "id_out")]
    rest = [p for n, p in named if "log_lr" not in n and n not in ("id_in", "id_out")]
    groups = [{"params": rest}, {"params": ids, "weight_decay": cfg.weight_decay}]
    if learn_rates:  # the inner learning rates move in log space: a larger step lets them adapt
        rates = [p for n, p in named if "log_lr" in n]
        groups.append({"params": rates, "lr": cfg.lr * LR_RATE_BOOST})
    return torch.optim.Adam(groups, lr=cfg.lr)


def stalled(curve: list[float], patience: int) -> bool:
    """True when the best value of ``curve`` is at least ``patience`` entries old."""
    return bool(curve) and len(curve) - 1 - int(np.argmax(curve)) >= patience


def fit_statistics(
    seqs: list[np.ndarray], n_items: int, cfg: ColdStartConfig, progress: Progress
) -> dict:
    """Popularity, item-knn and EASE fit on the training users (EASE inverse kept for LOO rows)."""
    progress(ProgressEvent("baselines", 0, 3, "popularity"))
    x = interaction_matrix(seqs, n_items)
    pop = bl.popularity_counts(x)
    progress(ProgressEvent("baselines", 1, 3, "item-knn"))
    knn = bl.itemknn_table(x, cfg.neighbours)
    progress(ProgressEvent("baselines", 2, 3, "ease"))
    subset = bl.ease_subset(pop, cfg.ease_max_items)
    p = bl.ease_inverse(x, subset, cfg.ease_lambda) if len(subset) else np.zeros((0, 0), np.float32)
    ease = bl.ease_table(p, subset, n_items, cfg.neighbours)
    progress(ProgressEvent("baselines", 3, 3, "done"))
    return {"pop": pop, "knn": knn, "ease": ease, "p": p, "subset": subset}


def train_model(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    config: ColdStartConfig | None = None,
    progress: Progress = no_progress,
    encoder=None,
    init: dict[str, dict[str, torch.Tensor]] | None = None,
):
    """Train the cold-start engine on (warm) users' interactions; returns a ColdStartModel.

    Args:
        interactions: canonical interactions (user_id, item_id, position, ...).
        items: canonical items (item_id, title, text, ...): the catalogue served.
        config: hyper-parameters (defaults when None).
        progress: callback for stage progress and the live loss.
        encoder: text encoder; None = the packaged MiniLM through the persistent cache.
        init: starting weights per network ("meta", "pretrained"), e.g. another shop's model's
            catalogue-independent weights (coldstart/transfer.py); id parameters start fresh.
    """
    cfg = config or ColdStartConfig()
    return fit(prepare(interactions, items, cfg, progress, encoder), cfg, progress, init)


@dataclass
class Prepared:
    """What every training on one log shares: catalogue, sequences, text, statistics, split."""

    catalogue: Catalogue
    seqs: list[np.ndarray]
    skipped: int
    text: np.ndarray  # (N, T)
    stats: dict
    train_seqs: list[np.ndarray]
    val: list[Episode]
    loo: EaseLOO | None
    device: torch.device
    encoder_id: str
    seconds: float


def prepare(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    cfg: ColdStartConfig,
    progress: Progress = no_progress,
    encoder=None,
) -> Prepared:
    """Index, embed, fit the baselines and hold out validation users (stages embed, baselines)."""
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    catalogue = Catalogue.from_items(items)
    index = catalogue.index()
    _, seqs, skipped = user_sequences(interactions, index)
    if sum(len(s) >= 2 for s in seqs) < 2:
        ids = interactions["item_id"].astype(str)
        unknown = (
            f" ({skipped:,} of {len(interactions):,} rows name an item_id the items file lacks, "
            f"e.g. {ids[~ids.isin(index.keys())].iloc[0]})"
            if skipped
            else ""
        )
        raise ValidationError(
            f"interactions: need at least 2 users with 2+ known items to train{unknown}"
        )
    text = item_text_embeddings(catalogue, encoder, progress)
    stats = fit_statistics(seqs, len(catalogue), cfg, progress)
    train_seqs, val = split_validation(seqs, cfg)
    loo = (
        EaseLOO(stats["p"], stats["subset"], len(catalogue), stats["ease"].idx, device)
        if len(stats["subset"])
        else None
    )
    encoder_id = encoder.model_id if encoder is not None else MINILM_ID
    return Prepared(
        catalogue, seqs, skipped, text, stats, train_seqs, val, loo, device, encoder_id,
        time.perf_counter() - t0,
    )  # fmt: skip


def fit(
    prep: Prepared,
    cfg: ColdStartConfig,
    progress: Progress = no_progress,
    init: dict[str, dict[str, torch.Tensor]] | None = None,
):
    """Train both networks on a prepared log; returns a ColdStartModel.

    From scratch, the conventionally trained twin comes first (the ``finetune`` method's
    starting point) and meta-training starts from its weights (``meta_from_pretrained``). From
    ``init`` (another shop's weights), meta-training starts from that model's meta network and
    the twin keeps its weights untrained (it only serves ``finetune``).
    """
    from metarec_core.coldstart.model import ColdStartModel

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    stats, device = prep.stats, prep.device
    nets, reports = {}, {}
    for name, steps, stage in (
        ("pretrained", 0, "pretrain"),
        ("meta", cfg.inner_steps, "meta-train"),
    ):
        torch.manual_seed(cfg.seed)
        net = _new_net(prep.text, stats["pop"], cfg, device)
        if init is not None:
            net.load_state_dict({**net.state_dict(), **init[name]})
        elif name == "meta" and cfg.meta_from_pretrained:
            net.load_state_dict(nets["pretrained"].state_dict())
        net.ii_eps.fill_(item_item_floor(stats["ease"]))
        if init is not None and name == "pretrained":
            reports[name] = {"loss": [], "val_ndcg10": [], "best_epoch": 0, "from": "source"}
        else:
            reports[name] = train_net(
                net, prep.train_seqs, prep.val, prep.loo, cfg, steps, stage, progress, device
            )
        nets[name] = net.eval()
    reports["meta"]["adaptation"] = check_adaptation(nets["meta"], prep.val, prep.loo, cfg, device)
    report = {
        "n_users": len(prep.seqs),
        "n_train_users": len(prep.train_seqs),
        "n_val_users": len(prep.val),
        "n_items": len(prep.catalogue),
        "skipped_interactions": prep.skipped,
        "ease_items": len(stats["subset"]),
        "train_seconds": round(prep.seconds + time.perf_counter() - t0, 2),
        "device": str(device),
        "encoder": prep.encoder_id,
        "meta": reports["meta"],
        "pretrained": reports["pretrained"],
    }
    return ColdStartModel(
        cfg, prep.catalogue, prep.text, nets["meta"], nets["pretrained"], stats["pop"],
        stats["knn"], stats["ease"], report, device,
    )  # fmt: skip


def item_item_floor(table: bl.NeighbourTable, share: float = 0.25) -> float:
    """Floor of the log item-item term: ``share`` of a typical item's strongest EASE weight."""
    top = table.val.max(axis=1) if table.val.size else np.zeros(0)
    top = top[top > 0]
    return float(share * np.median(top)) if len(top) else 1e-3


def _new_net(
    text: np.ndarray, pop: np.ndarray, cfg: ColdStartConfig, device: torch.device
) -> ColdStartNet:
    return ColdStartNet(
        torch.as_tensor(text),
        torch.as_tensor(pop > 0).float(),
        torch.log1p(torch.as_tensor(pop)),
        cfg.dim,
        cfg.k_max + 1,
        cfg.inner_lr,
    ).to(device)
