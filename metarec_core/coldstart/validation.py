"""Validation on held-out warm users: the split, NDCG@10 of their protocol episodes, and the
check after training that chooses how far the inner loop moves a new user per support size."""

from __future__ import annotations

import logging

import numpy as np
import torch

from metarec_core.coldstart.config import ColdStartConfig
from metarec_core.coldstart.episodes import EaseLOO, Episode, UserBatch, make_batch, sample_episode
from metarec_core.coldstart.net import ColdStartNet
from metarec_core.coldstart.scoring import batch_scores, support_penalty, top_items

log = logging.getLogger(__name__)
VAL_MAX_USERS = 1000  # validation users on large logs (5% of the eligible ones up to this)
VAL_MIN_USERS = 150  # validation users on small logs (at most a fifth of the eligible ones)
ADAPTATION_SCALES = (1.0, 0.5, 0.25, 0.0)  # inner-rate factors tried on validation after training
# support sizes that share one inner-rate factor: (smallest, largest, size checked on validation)
SIZE_GROUPS = ((1, 1, 1), (2, 3, 3), (4, 6, 5), (7, 10_000, 10))
MIN_CHECK_USERS = 20  # fewer validation users long enough for a group: its learned rates stay


def ndcg10(
    scores: torch.Tensor, batch: UserBatch, query: torch.Tensor, qmask: torch.Tensor
) -> float:
    """Mean NDCG@10 of a batch (support masked) — the validation signal."""
    top = top_items(scores + support_penalty(batch), 10)[1]  # (B, 10)
    hit = (top[:, :, None] == query[:, None, :]) & (qmask[:, None, :] > 0)  # (B, 10, Q)
    gains = hit.any(2).float() / torch.log2(torch.arange(2, 12, device=top.device).float())
    nq = qmask.sum(1).clamp(max=10).long()
    ideal = torch.cumsum(1.0 / torch.log2(torch.arange(2, 12, device=top.device).float()), 0)
    return float((gains.sum(1) / ideal[(nq - 1).clamp(min=0)]).mean())


def validate(
    net: ColdStartNet,
    val: list[Episode],
    loo: EaseLOO | None,
    inner_steps: int,
    cfg: ColdStartConfig,
    device: torch.device,
) -> float:
    """Mean NDCG@10 on held-out warm users' protocol episodes (first k support)."""
    n_items, total, count = net.text.shape[0], 0.0, 0
    for start in range(0, len(val), cfg.batch_size):
        chunk = val[start : start + cfg.batch_size]
        batch, query, qmask = make_batch(chunk, net, loo, n_items, device)
        with torch.no_grad():  # torch.func.grad still runs the inner loop under no_grad
            scores = batch_scores(net, batch, inner_steps, True)[0]
        total += ndcg10(scores, batch, query, qmask) * len(chunk)
        count += len(chunk)
    return total / max(count, 1)


def check_adaptation(
    net: ColdStartNet,
    val: list[Episode],
    loo: EaseLOO | None,
    cfg: ColdStartConfig,
    device: torch.device,
) -> dict:
    """Choose how far the inner loop moves a new user, per support size, on the validation users.

    For each group of support sizes (``SIZE_GROUPS``) the validation users get an episode of one
    size of that group (their first k items; the model's own k for its group), and the learned
    inner rates are tried at full strength and scaled down (``ADAPTATION_SCALES``, down to 0 =
    no adaptation); the best is kept for the whole group (ties go to the stronger step). On
    small logs the learned rates can overfit, and a smaller step, or none (``adapted`` then
    serves what ``no-adapt`` does), wins for some sizes; the training report says which.
    """
    n_sizes = int(net.log_lr_n.shape[0])
    if not val or cfg.inner_steps == 0:
        return {"kept": True, "scale": 1.0, "scale_by_size": [1.0] * n_sizes, "groups": []}
    learned = net.log_lr_n.detach().clone()
    chosen = torch.ones_like(learned)  # the factor kept for each support size
    groups = []
    for lo, hi, k in SIZE_GROUPS:
        hi = min(hi, n_sizes)
        if lo > hi:
            continue
        k = cfg.k if lo <= cfg.k <= hi else min(k, hi)
        episodes = _episodes_at(val, k)
        if len(episodes) < MIN_CHECK_USERS:
            groups.append({"sizes": [lo, hi], "k": k, "scale": 1.0, "n_users": len(episodes)})
            continue
        scores: dict[float, float] = {}
        for scale in ADAPTATION_SCALES:
            with torch.no_grad():
                net.log_lr_n.copy_(learned + float(np.log(scale)) if scale > 0 else learned)
            steps = cfg.inner_steps if scale > 0 else 0
            scores[scale] = validate(net, episodes, loo, steps, cfg, device)
        best = max(ADAPTATION_SCALES, key=lambda f: (scores[f], f))
        chosen[lo - 1 : hi] = best
        groups.append(
            {
                "sizes": [lo, hi],
                "k": k,
                "scale": best,
                "n_users": len(episodes),
                "val_by_scale": {str(f): v for f, v in scores.items()},
            }
        )
    with torch.no_grad():  # a scale of 0: exp(-30), the inner loop no longer moves the user
        on = chosen > 0
        net.log_lr_n.copy_(torch.where(on, learned + chosen.clamp(min=1e-12).log(), -30.0))
    by_size = [float(v) for v in chosen.cpu()]
    if min(by_size) < 1.0:
        log.info("inner-loop step per support size, chosen on validation: %s", by_size)
    own = next((g for g in groups if g["k"] == cfg.k and "val_by_scale" in g), None)
    return {
        "kept": bool(max(by_size) > 0),
        "scale": by_size[min(cfg.k, n_sizes) - 1],
        "scale_by_size": by_size,
        "val_adapted": own["val_by_scale"]["1.0"] if own else None,
        "val_no_adapt": own["val_by_scale"]["0.0"] if own else None,
        "groups": groups,
    }


def _episodes_at(val: list[Episode], k: int) -> list[Episode]:
    """The validation users' protocol episodes with support size ``k`` (users with nothing after
    their first k items have no episode)."""
    out = [sample_episode(e.history, k, 0, 10_000) for e in val]
    return [e for e in out if e is not None]


def split_validation(
    seqs: list[np.ndarray], cfg: ColdStartConfig
) -> tuple[list[np.ndarray], list[Episode]]:
    """Hold out warm users as protocol episodes for epoch selection and the adaptation check.

    5% of them (at most ``VAL_MAX_USERS``) on large logs; small logs give more, up to
    ``VAL_MIN_USERS`` but never more than a fifth, because a few dozen users make a validation
    score too noisy to choose by.
    """
    rng = np.random.default_rng(cfg.seed + 1)
    eligible = [i for i, s in enumerate(seqs) if len(s) > cfg.k]
    n_val = min(VAL_MAX_USERS, max(len(eligible) // 20, min(VAL_MIN_USERS, len(eligible) // 5)))
    if n_val < 20:
        return seqs, []
    val_idx = set(rng.choice(eligible, n_val, replace=False).tolist())
    val = [sample_episode(seqs[i], cfg.k, 0, 10_000) for i in sorted(val_idx)]
    train = [s for i, s in enumerate(seqs) if i not in val_idx]
    return train, [e for e in val if e is not None]
