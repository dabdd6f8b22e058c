"""Scoring shared by training and serving: a batch of users' scores after the inner loop.

Training (train.py) and serving (recommend.py) both import from here, so serving never needs the
training module.
"""

from __future__ import annotations

import torch
from torch.func import vmap

from metarec_core.coldstart.episodes import UserBatch
from metarec_core.coldstart.maml import adapt
from metarec_core.coldstart.net import ColdStartNet, ItemTables, user_scores

NEG = -1e9  # added to the scores of items that must never be recommended (the support)


def batch_scores(
    net: ColdStartNet,
    batch: UserBatch,
    steps: int,
    first_order: bool,
    lr_override: float | None = None,
    tables: ItemTables | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Scores (B, N) after ``steps`` inner steps (the net's inner rates, or a fixed ``lr_override``).

    Returns (scores, support-loss curve (B, steps + 1) or (B, 1) zeros, adapted fast weights).
    """
    tables = tables if tables is not None else net.tables()
    args = batch.args(net.pos)
    phi = net.init_phi(*batch.support.shape)
    curve = torch.zeros(batch.support.shape[0], 1)
    if steps > 0:
        lrs = net.inner_lrs()
        if lr_override is not None:
            lrs = {k: torch.full_like(v, lr_override) for k, v in lrs.items()}
        else:  # inner rates times the factor for each user's support size: (B, X)
            scale = net.size_scale(batch.mask)[:, None]
            lrs = {k: v[None, :] * scale for k, v in lrs.items()}
        phi, curve = adapt(phi, args, tables, net.u0, net.mix(), lrs, steps, first_order)
    scores = vmap(user_scores, in_dims=(0, 0, 0, 0, 0, None, None, None))(
        phi, *args, tables, net.u0, net.mix()
    )
    return scores, curve, phi


def support_penalty(batch: UserBatch, n: int | None = None) -> torch.Tensor:
    """(B, N) zeros with NEG on each user's (valid) support items; ``n`` defaults to the width
    of the item-item rows (pass it where the rows are zero-width, as for the baselines)."""
    b, n = batch.support.shape[0], batch.rows.shape[-1] if n is None else n
    pen = torch.zeros(b, n, device=batch.support.device)
    return pen.scatter_add(1, batch.support, batch.mask * NEG)


def top_items(scores: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, item rows), each (B, top): every row's ``top`` highest scores, best first, equal
    scores in catalogue order (lower row first), so a list is always the start of any longer
    list of the same scores. (``Tensor.topk`` alone orders equal scores arbitrarily, and
    differently for different ``top``.)"""
    n = scores.shape[1]
    vals, idx = scores.topk(min(top + 1, n), dim=1)
    if vals.shape[1] > top:  # equal scores on both sides of the cut: the lowest rows go in
        rows = (vals[:, top] == vals[:, top - 1]).nonzero().flatten()
        vals, idx = vals[:, :top].contiguous(), idx[:, :top].contiguous()
        if len(rows):
            idx[rows] = _lowest_tied(scores[rows], vals[rows], idx[rows])
    by_row = idx.sort(dim=1).indices
    vals, idx = vals.gather(1, by_row), idx.gather(1, by_row)
    order = vals.sort(dim=1, descending=True, stable=True).indices
    return vals.gather(1, order), idx.gather(1, order)


def _lowest_tied(s: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(R, top) item rows of ``topk``'s (``vals``, ``idx``) over rows ``s`` (R, N), the places
    of the scores equal to the last one refilled with the lowest rows of that score."""
    top = vals.shape[1]
    cut = vals[:, -1:]
    room = top - (vals > cut).sum(1)  # (R,) places of the tied: the last ones, values descending
    r, c = (s == cut).nonzero(as_tuple=True)  # by row, then item row
    first = torch.searchsorted(r, torch.arange(len(s), device=s.device))
    place = torch.arange(len(r), device=s.device) - first[r]  # among the row's tied
    keep = place < room[r]
    out = idx.clone()
    out[r[keep], (top - room[r] + place)[keep]] = c[keep]
    return out
