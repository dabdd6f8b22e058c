"""A new shop's own popularity beside the network: how often each item appears in the shop's only
log (the supports of the users served), mixed into the network's score with a share chosen on
that log itself.

A grocery-like shop is bought by popularity, and a few dozen shoppers' first items already show
which products everyone buys; where taste is personal the counts only add noise. The share is
chosen per request: each of a user's last few support items is hidden in turn and ranked from
the others, the counts leaving that user out, and the share whose hidden items rank best is
kept. A model trained on a new shop's first users (``train --init-from``) chooses the same way
on each request, with its training log's counts.
"""

from __future__ import annotations

import numpy as np
import torch

SHARES = (0.0, 0.1, 0.2, 0.35, 0.5)  # candidate shares of the counts in the score
MAX_USERS = 400  # users whose hidden items choose the share (seeded sample)
HIDDEN_PER_USER = 3  # each of a user's last three support items is hidden in turn
MIN_USERS = 20  # fewer users with two support items or more: the counts stay out (share 0)


def hidden_item_gain(ranks: torch.Tensor) -> torch.Tensor:
    """(B,) discounted gain 1 / log2(rank + 2) of each user's hidden item at 0-based ``ranks``."""
    return 1.0 / torch.log2(ranks.float() + 2.0)


def hidden_positions(row: np.ndarray) -> list[int]:
    """Positions among the last ``HIDDEN_PER_USER`` of a support whose item appears once in it."""
    start = max(0, len(row) - HIDDEN_PER_USER)
    return [j for j in range(start, len(row)) if np.count_nonzero(row == row[j]) == 1]


@torch.no_grad()
def choose_share(
    model, rows: list[np.ndarray], counts: np.ndarray, rows_in_counts: bool, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """The share of the shop's item counts that ranks users' hidden support items best, and the
    mean gain of each candidate share ({} when too few users have two support items).

    ``model`` serves the shop (its counts not yet mixed in); ``rows``: each user's support rows;
    ``counts`` (N,): users per item in the shop's log. ``rows_in_counts``: that log is these
    supports, so each user is left out of the counts that rank their hidden items. Each of a
    user's last ``HIDDEN_PER_USER`` items that appears once in the support is hidden in turn.
    Ties keep the smaller share. Mix the counts in with ``use_counts``."""
    from metarec_core.coldstart.recommend import chunk_scores, chunk_size, standardised
    from metarec_core.coldstart.scoring import support_penalty

    rows = [np.asarray(r, np.int64) for r in rows]
    hideable = {u: hidden_positions(r) for u, r in enumerate(rows) if len(r) >= 2}
    eligible = [u for u, js in hideable.items() if js]
    if len(eligible) < MIN_USERS:
        return 0.0, {}
    rng = np.random.default_rng(seed)
    picked = sorted(rng.permutation(eligible)[:MAX_USERS].tolist())
    cases = [(u, j) for u in picked for j in hideable[u]]
    n, dev = len(model.catalogue), model.device
    total = torch.as_tensor(counts, device=dev).float()
    logged = torch.log1p(total)
    gains = {share: [] for share in SHARES}
    tables = model.tables()
    step = chunk_size(max(len(rows[u]) for u in picked), n)
    for start in range(0, len(cases), step):
        part = cases[start : start + step]
        full = [rows[u] for u, _ in part]
        shown = [np.delete(r, j) for r, (_, j) in zip(full, part, strict=True)]
        batch, scores, _, _ = chunk_scores(model, "adapted", shown, tables, histories=full)
        pop = logged[None, :].repeat(len(full), 1)
        if rows_in_counts:  # counts leaving the user out
            own = [np.unique(r) for r in full]
            at = torch.as_tensor(np.repeat(np.arange(len(own)), [len(o) for o in own]), device=dev)
            items = torch.as_tensor(np.concatenate(own), device=dev)
            pop[at, items] = torch.log1p(total[items] - 1.0)
        pop = standardised(pop)
        net = standardised(scores).add_(support_penalty(batch, n))
        hidden = torch.as_tensor([r[j] for r, (_, j) in zip(full, part, strict=True)], device=dev)
        for share in SHARES:
            # (1 - share) * net + share * pop, divided by 1 - share: the same ranks, one pass
            mixed = torch.add(net, pop, alpha=share / (1.0 - share))
            ranks = (mixed > mixed.gather(1, hidden[:, None])).sum(1)  # ties: hidden item's favour
            gains[share].append(hidden_item_gain(ranks))
    means = {share: float(torch.cat(g).mean()) for share, g in gains.items()}
    best = max(SHARES, key=lambda share: (means[share], -share))
    return best, {f"{share:g}": round(v, 4) for share, v in means.items()}


def use_counts(model, counts: np.ndarray, share: float) -> None:
    """Mix ``share`` of the (N,) item ``counts`` into ``model``'s network scores (0: none)."""
    model.popularity_share = float(share)
    model.shop_popularity = (
        torch.log1p(torch.as_tensor(counts, device=model.device).float()) if share > 0 else None
    )
