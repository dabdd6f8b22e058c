"""Item-item statistics fit on warm users: popularity, cosine item-knn, EASE (Steck 2019).

Everything here returns numpy/scipy objects; the neighbour tables (top-N per item) are what a model
directory stores, so `recommend` can serve the baselines without the training data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NeighbourTable:
    """Top-N neighbours per item: ``idx[i, j]`` (item row, -1 = none) with weight ``val[i, j]``."""

    idx: np.ndarray  # (N_items, n) int64
    val: np.ndarray  # (N_items, n) float32

    @classmethod
    def empty(cls, n_items: int) -> NeighbourTable:
        return cls(np.full((n_items, 1), -1, np.int64), np.zeros((n_items, 1), np.float32))


def popularity_counts(x: sp.csr_matrix) -> np.ndarray:
    """Interactions per item (users who interacted) in the warm matrix, float32 (N_items,)."""
    return np.asarray(x.sum(axis=0), dtype=np.float32).ravel()


def top_n_rows(rows: np.ndarray, n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``n`` positive entries per row of a dense block: (idx, val); idx -1 where none."""
    n = min(n, rows.shape[1])
    part = np.argpartition(-rows, n - 1, axis=1)[:, :n]
    val = np.take_along_axis(rows, part, axis=1).astype(np.float32)
    part = part + offset
    part[val <= 0] = -1
    val[val <= 0] = 0.0
    return part.astype(np.int64), val


def itemknn_table(x: sp.csr_matrix, n: int, block: int = 2048) -> NeighbourTable:
    """Cosine similarity between item columns of the binary warm matrix, top-``n`` per item."""
    n_items = x.shape[1]
    if n == 0:
        return NeighbourTable.empty(n_items)
    xc = x.tocsc()
    active = np.flatnonzero(np.diff(xc.indptr))  # items someone interacted with
    if len(active) < n_items:  # others have no neighbours: work on the active columns only
        table = itemknn_table(x[:, active], n, block)
        idx = np.full((n_items, table.idx.shape[1]), -1, np.int64)
        val = np.zeros((n_items, table.idx.shape[1]), np.float32)
        idx[active] = np.where(table.idx >= 0, active[np.clip(table.idx, 0, None)], -1)
        val[active] = table.val
        return NeighbourTable(idx, val)
    xc = xc.astype(np.float32)
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    xn = sp.csr_matrix(xc.multiply(1.0 / norms[None, :]))
    gram = (xn.T @ xn).tocsr()  # (N, N) sparse cosine
    gram.setdiag(0.0)
    gram.eliminate_zeros()
    idx = np.full((n_items, n), -1, np.int64)
    val = np.zeros((n_items, n), np.float32)
    for start in range(0, n_items, block):
        dense = gram[start : start + block].toarray()
        i, v = top_n_rows(dense, n)
        idx[start : start + block, : i.shape[1]] = i
        val[start : start + block, : v.shape[1]] = v
    return NeighbourTable(idx, val)


def ease_subset(pop: np.ndarray, max_items: int) -> np.ndarray:
    """Rows of the items EASE covers: the ``max_items`` most popular ones with interactions, sorted."""
    have = np.flatnonzero(pop > 0)
    if len(have) > max_items:
        have = have[np.argsort(-pop[have], kind="stable")[:max_items]]
    return np.sort(have)


def ease_inverse(x: sp.csr_matrix, subset: np.ndarray, lam: float) -> np.ndarray:
    """P = (X_S^T X_S + lam I)^-1 over the item subset S, float32 (|S|, |S|), computed in place."""
    import scipy.linalg as sla

    xs = x[:, subset].astype(np.float32)
    active = np.flatnonzero(np.diff(xs.indptr))  # users with an item of S
    if len(active) < len(subset) // 2:  # few users (a new shop's first log): Woodbury
        return _ease_inverse_few_users(xs[active], lam)
    gram = np.asarray((xs.T @ xs).toarray(), dtype=np.float32)  # (S, S)
    gram[np.diag_indices_from(gram)] += lam
    # Cholesky inverse in place: the Gram matrix is symmetric positive definite.
    c, info = sla.lapack.spotrf(gram, lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Cholesky failed (info={info})")
    p, info = sla.lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE inverse failed (info={info})")
    _mirror_lower(p)  # potri fills the lower triangle only
    return p


def _ease_inverse_few_users(xs: sp.csr_matrix, lam: float) -> np.ndarray:
    """(X^T X + lam I)^-1 = (I - X^T (lam I + X X^T)^-1 X) / lam: a (U, U) inverse instead of
    an (S, S) one, for U users well below S items. The two products with X stay sparse.
    float32 (S, S)."""
    x64 = xs.astype(np.float64)
    inner = np.asarray((x64 @ x64.T).toarray())  # (U, U)
    inner[np.diag_indices_from(inner)] += lam
    z = np.asarray(x64.T @ np.linalg.inv(inner))  # (S, U)
    p = -np.asarray(x64.T @ z.T, dtype=np.float32)  # (S, S); inner is symmetric
    p[np.diag_indices_from(p)] += 1.0
    p /= lam
    return p


def _mirror_lower(p: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle of square ``p`` onto its upper one in place, a block of rows at a
    time (index arrays for the whole triangle would cost 16 bytes per entry: 1.2 GB at 12k items)."""
    for start in range(0, p.shape[0], block):
        rows = p[start : start + block]
        lower_t = np.ascontiguousarray(p[:, start : start + block].T)  # (b, S) = column block
        rows[:] = np.tril(rows, start) + np.triu(lower_t, start + 1)


def ease_table(
    p: np.ndarray, subset: np.ndarray, n_items: int, n: int, block: int = 2048
) -> NeighbourTable:
    """EASE weights B = -P / diag(P) (zero diagonal), top-``n`` positive entries per covered item."""
    idx = np.full((n_items, max(n, 1)), -1, np.int64)
    val = np.zeros((n_items, max(n, 1)), np.float32)
    if n == 0 or len(subset) == 0:
        return NeighbourTable(idx, val)
    diag = np.diag(p).copy()
    for start in range(0, len(subset), block):
        rows = -p[start : start + block] / diag[None, :]
        rows[np.arange(rows.shape[0]), np.arange(start, start + rows.shape[0])] = 0.0
        i, v = top_n_rows(rows, n)
        mapped = np.where(i >= 0, subset[np.clip(i, 0, None)], -1)
        idx[subset[start : start + block], : i.shape[1]] = mapped
        val[subset[start : start + block], : v.shape[1]] = v
    return NeighbourTable(idx, val)
