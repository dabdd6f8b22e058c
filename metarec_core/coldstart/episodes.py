"""Episodes (a run of a user's items as support, the later ones as query), sampled per epoch, and
batches of users as tensors: support slots, position logits, item-item rows, queries.

Two sources of item-item rows R (B, K, N) for the support items:
- ``table_rows``: the stored top-n neighbour table (what serving uses), and
- ``EaseLOO.rows``: leave-the-user-out EASE values on the same neighbour columns for
  meta-training, so a warm user's own co-occurrences never leak into the item-item term of their
  episode (Sherman-Morrison update of P = (G + lam I)^-1 with the user's history x removed:
  P' = P + (Px)(Px)^T / (1 - x^T P x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from metarec_core.coldstart.data import pad

if TYPE_CHECKING:
    from metarec_core.coldstart.config import ColdStartConfig
    from metarec_core.coldstart.net import ColdStartNet


@dataclass
class UserBatch:
    """Tensors for B users with K support slots (padding slots are masked)."""

    support: torch.Tensor  # (B, K) item rows, padding -> 0
    mask: torch.Tensor  # (B, K) float
    rank: torch.Tensor  # (B, K) position from the end (0 = most recent), clipped
    rows: torch.Tensor  # (B, K, N) item-item weights

    def args(self, pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-user inputs of user_scores/adapt: (support, pos_logit, mask, rows)."""
        return self.support, pos[self.rank], self.mask, self.rows


def support_tensors(
    supports: list[np.ndarray], max_pos: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(support rows, mask, rank-from-end) for right-padded supports."""
    padded = pad(supports)  # (B, K)
    mask = padded >= 0
    lengths = mask.sum(1, keepdims=True)
    rank = np.clip(lengths - 1 - np.arange(padded.shape[1])[None, :], 0, max_pos - 1)
    return (
        torch.as_tensor(np.where(mask, padded, 0), device=device),
        torch.as_tensor(mask, dtype=torch.float32, device=device),
        torch.as_tensor(rank, device=device),
    )


def table_rows(
    table_idx: torch.Tensor,
    table_val: torch.Tensor,
    support: torch.Tensor,
    mask: torch.Tensor,
    n_items: int,
) -> torch.Tensor:
    """Dense rows (B, K, N) of a neighbour table (idx/val (N, n)) for the support items."""
    b, k = support.shape
    idx = table_idx[support]  # (B, K, n)
    val = table_val[support] * mask[..., None]
    out = torch.zeros(b, k, n_items + 1, device=support.device)
    out.scatter_add_(2, torch.where(idx < 0, n_items, idx), val)
    return out[..., :n_items]


class EaseLOO:
    """Leave-the-user-out EASE rows on the serving neighbour table's columns.

    Only the stored top-n neighbours of each support item are recomputed (B, K, n), so a batch
    costs one sparse (B, S) x (S, S) product and a few small gathers instead of dense (B, K, N) work.
    """

    def __init__(
        self,
        p: np.ndarray,
        subset: np.ndarray,
        n_items: int,
        neighbours: np.ndarray,
        device: torch.device,
    ) -> None:
        self.p = torch.as_tensor(p, device=device)  # (S, S)
        self.diag = torch.diagonal(self.p).clone()  # (S,)
        to_sub = np.full(n_items + 1, -1, np.int64)
        to_sub[subset] = np.arange(len(subset))
        self.to_sub = torch.as_tensor(to_sub, device=device)  # item row -> subset row (-1 none)
        self.nb = torch.as_tensor(neighbours, device=device)  # (N, n) item rows, -1 none
        self.n_items, self.device = n_items, device

    def rows(
        self, support: torch.Tensor, mask: torch.Tensor, histories: list[np.ndarray]
    ) -> torch.Tensor:
        """(B, K, N) EASE rows of the support items with each user's history removed from P."""
        b, k = support.shape
        s = self.p.shape[0]
        hist = torch.as_tensor(pad(histories), device=self.device)  # (B, L)
        hsub = self.to_sub[torch.where(hist < 0, self.n_items, hist)]  # (B, L)
        x = torch.zeros(b, s + 1, device=self.device)
        x.scatter_(1, torch.where(hsub >= 0, hsub, s), 1.0)
        x = x[:, :s]  # (B, S) binary history
        px = torch.sparse.mm(x.to_sparse(), self.p)  # (B, S)
        denom = (1.0 - (px * x).sum(1)).clamp(min=1e-6)[:, None, None]  # (B, 1, 1)
        ssub = self.to_sub[support]  # (B, K)
        valid = (ssub >= 0) & (mask > 0)
        srow = torch.where(valid, ssub, 0)
        nb = self.nb[support]  # (B, K, n) neighbour item rows
        nsub = self.to_sub[torch.where(nb < 0, self.n_items, nb)]
        ok = (nsub >= 0) & valid[..., None]
        col = torch.where(ok, nsub, 0)  # (B, K, n) subset columns
        px_s = px.gather(1, srow)[..., None]  # (B, K, 1)
        px_c = px.gather(1, col.flatten(1)).view_as(col)  # (B, K, n)
        p_sc = self.p[srow[..., None], col]  # (B, K, n)
        diag = self.diag[col] + px_c.pow(2) / denom
        val = (-(p_sc + px_s * px_c / denom) / diag).clamp(min=0) * ok
        out = torch.zeros(b, k, self.n_items + 1, device=self.device)
        out.scatter_add_(2, torch.where(ok, nb, self.n_items), val)
        return out[..., : self.n_items]


@dataclass
class Episode:
    """One training/validation task: support rows, query rows, the user's whole history."""

    support: np.ndarray
    query: np.ndarray
    history: np.ndarray


def sample_episode(seq: np.ndarray, k: int, start: int, max_query: int) -> Episode | None:
    """Support = seq[start:start+k]; query = later distinct items not in the support (capped)."""
    support = seq[start : start + k]
    later = pd.unique(seq[start + k :])
    query = later[~np.isin(later, support)][:max_query]
    if len(support) == 0 or len(query) == 0:
        return None
    return Episode(support, np.asarray(query, np.int64), seq)


def sample_epoch(
    seqs: list[np.ndarray], cfg: ColdStartConfig, rng: np.random.Generator
) -> list[Episode]:
    """One episode per user with >= 2 interactions: k from [k_min, k_max], half at a random offset."""
    out = []
    for seq in seqs:
        if len(seq) < 2:
            continue
        k = int(rng.integers(cfg.k_min, min(cfg.k_max, len(seq) - 1) + 1))
        start = int(rng.integers(0, len(seq) - k)) if rng.random() < 0.5 else 0
        ep = sample_episode(seq, k, start, cfg.max_query)
        if ep is not None:
            out.append(ep)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def epoch_batches(
    episodes: list[Episode], batch_size: int, rng: np.random.Generator
) -> list[list[Episode]]:
    """Meta-batches of episodes with similar support sizes (less padding), in random order."""
    order = sorted(range(len(episodes)), key=lambda i: len(episodes[i].support))  # stable
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [[episodes[i] for i in chunks[j]] for j in rng.permutation(len(chunks))]


def make_batch(
    episodes: list[Episode],
    net: ColdStartNet,
    loo: EaseLOO | None,
    n_items: int,
    device: torch.device,
) -> tuple[UserBatch, torch.Tensor, torch.Tensor]:
    """UserBatch with leave-user-out EASE rows, plus padded queries (B, Q) and their mask."""
    support, mask, rank = support_tensors([e.support for e in episodes], net.pos.shape[0], device)
    if loo is not None:
        rows = loo.rows(support, mask, [e.history for e in episodes])
    else:
        rows = torch.zeros(*support.shape, n_items, device=device)
    query = torch.as_tensor(pad([e.query for e in episodes]), device=device)
    return UserBatch(support, mask, rank, rows), query.clamp(min=0), (query >= 0).float()
