"""Prototypical-network parts: class-mean prototypes, the residual projection, cosine scoring.

Everything here is small and numeric; the numpy helpers are what classification uses at run
time (fast on cached embeddings), the torch module is what meta-training learns.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from metarec_core.device import cpu_has_bf16


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def prototypes(z: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class means of ``z`` (N, D) for integer ``labels`` (N,) in [0, n_classes) -> (C, D)."""
    out = np.zeros((n_classes, z.shape[1]), dtype=np.float64)
    np.add.at(out, labels, z)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return (out / np.maximum(counts, 1.0)[:, None]).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hub_corrected(sims: np.ndarray, weight: float, neighbors: int) -> np.ndarray:
    """Query-prototype similarities ``sims`` (Q, C) less ``weight`` times each prototype's mean
    similarity to its ``neighbors`` closest queries.

    A prototype that sits close to many queries at once (a "hub", typically a broad category
    near the centre of the task) otherwise wins queries that belong to its neighbours; this is
    the prototype side of cross-domain similarity local scaling (CSLS). The query side is a
    constant per row and would not change any ranking.
    """
    q = sims.shape[0]
    if weight <= 0 or q == 0:
        return sims
    k = min(neighbors, q)
    top = np.partition(sims, q - k, axis=0)[q - k :]  # (k, C) each prototype's closest queries
    return sims - weight * top.mean(0, keepdims=True)


def reestimated_prototypes(
    protos: np.ndarray, queries: np.ndarray, probs: np.ndarray, weight: float
) -> np.ndarray:
    """Prototypes (C, D) moved towards the queries (Q, D) that their category holds in ``probs``
    (Q, C), e.g. after label propagation: each category's mean of the queries weighted by their
    squared probability (so confident ones count most), unit length, added at ``weight``."""
    w = probs.astype(np.float64) ** 2  # (Q, C)
    held = (w.T @ queries) / np.maximum(w.sum(0), 1e-12)[:, None]  # (C, D)
    return l2n(protos + weight * l2n(held.astype(np.float32)))


@lru_cache(maxsize=1)
def _search_dtype() -> torch.dtype:
    """bfloat16 when this CPU multiplies it clearly faster than float32, else float32.

    Only CPUs with bfloat16 instructions (AVX512-BF16, AMX) are timed, on a small product, once
    per process: elsewhere bfloat16 is emulated, and on an AVX2 machine a 512 x 384 x 4096 product
    took 3.1 s in bfloat16 against 0.03 s in float32.
    """
    if not cpu_has_bf16():
        return torch.float32
    a, b = torch.randn(256, 384), torch.randn(384, 2048)

    def best(dtype: torch.dtype) -> float:
        x, y = a.to(dtype), b.to(dtype)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t)
        return min(times)

    return torch.bfloat16 if best(torch.bfloat16) * 1.5 < best(torch.float32) else torch.float32


def _nearest(z: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Indices (N, k) of each unit row's k nearest other rows of ``z`` (N, D) by dot product.

    The product is symmetric, so only blocks on and above the diagonal are multiplied; each
    block gives candidates to its rows and, transposed, to its columns, merged into a running
    top k per row.
    """
    n = len(z)
    best_v = torch.full((n, k), -3.0, dtype=z.dtype)
    best_i = torch.zeros((n, k), dtype=torch.long)

    def merge(rows: slice, sims: torch.Tensor, offset: int) -> None:
        v, i = sims.topk(min(k, sims.shape[1]), dim=1, sorted=False)
        v, i = torch.cat([best_v[rows], v], 1), torch.cat([best_i[rows], i + offset], 1)
        keep = v.topk(k, dim=1, sorted=False).indices
        best_v[rows], best_i[rows] = v.gather(1, keep), i.gather(1, keep)

    for a in range(0, n, chunk):
        rows = slice(a, min(a + chunk, n))
        for b in range(a, n, chunk):
            cols = slice(b, min(b + chunk, n))
            s = z[rows] @ z[cols].T  # (A, B)
            if a == b:
                s.fill_diagonal_(-2.0)  # not its own neighbour
            merge(rows, s, b)
            if a != b:
                merge(cols, s.T.contiguous(), a)
    return best_i


def knn_graph(z: np.ndarray, k: int, power: float = 3.0, chunk: int = 1024):
    """Symmetric, degree-normalised k-nearest-neighbour graph of unit rows ``z`` (N, D).

    Edge weights are cosine similarities (negative ones clipped to 0) raised to ``power``, which
    keeps the closest neighbours dominant. Neighbours are searched in bfloat16 where the CPU is
    faster at it (the N x N product dominates the cost); the chosen edges' weights are exact.
    Returns a scipy CSR matrix D^-1/2 W D^-1/2 (N, N).
    """
    from scipy.sparse import csr_matrix, diags

    n = len(z)
    k = max(1, min(k, n - 1))
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    idx = _nearest(zt.to(_search_dtype()), k, chunk)
    val = np.zeros((n, k), np.float32)
    for a in range(0, n, chunk):  # exact cosines of the chosen edges (B, k)
        val[a : a + chunk] = torch.einsum("bd,bkd->bk", zt[a : a + chunk], zt[idx[a : a + chunk]])
    w = np.maximum(val, 0.0).ravel() ** power
    graph = csr_matrix((w, (np.repeat(np.arange(n), k), idx.numpy().ravel())), shape=(n, n))
    graph = graph + graph.T
    d = 1.0 / np.sqrt(np.maximum(np.asarray(graph.sum(1)).ravel(), 1e-12))
    return (diags(d) @ graph @ diags(d)).tocsr()


def label_propagation(
    support: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    prior: np.ndarray,
    alpha: float,
    neighbors: int,
    prior_weight: float,
    iters: int = 20,
    graph=None,
) -> np.ndarray:
    """Transductive label propagation over a k-NN graph of support and queries (Zhou et al. 2004).

    Support rows (S, D) are one-hot seeds; each query (Q, D) is seeded with ``prior_weight`` times
    its prototype probabilities ``prior`` (Q, C). ``F <- alpha S F + (1 - alpha) Y`` spreads the
    labels along the catalogue's own neighbourhoods. ``graph``: the ``knn_graph`` of support and
    queries (in that order) when it is already built. Returns (Q, C) rows that sum to 1.
    """
    c, n = prior.shape[1], len(support) + len(queries)
    if graph is None:
        graph = knn_graph(np.concatenate([support, queries]).astype(np.float32), neighbors)
    seeds = np.zeros((n, c), np.float32)  # (S + Q, C)
    seeds[np.arange(len(support)), labels] = 1.0
    seeds[len(support) :] = prior_weight * prior
    f = seeds
    for _ in range(iters):
        f = alpha * (graph @ f) + (1.0 - alpha) * seeds
    f = np.maximum(f[len(support) :], 0.0)
    total = f.sum(1, keepdims=True)
    return np.where(total > 0, f / np.maximum(total, 1e-12), prior)


class ResidualProjection(nn.Module):
    """z = normalize(x + U V x): the identity plus a learned low-rank correction.

    Starting at the identity (U = 0) means an untrained model equals plain encoder prototypes,
    and weight decay pulls it back there, which keeps transfer to unseen categories safe.
    """

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.dim, self.rank = dim, rank
        self.v = nn.Linear(dim, max(rank, 1), bias=False)
        self.u = nn.Linear(max(rank, 1), dim, bias=False)
        nn.init.zeros_(self.u.weight)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, D) unit rows
        if self.rank > 0:
            x = x + self.u(self.v(x))
        return nn.functional.normalize(x, dim=-1)

    def as_matrix(self) -> np.ndarray:
        """The projection as one (D, D) matrix M with z = normalize(x @ M) (fast numpy path)."""
        m = torch.eye(self.dim)
        if self.rank > 0:
            m = m + (self.u.weight @ self.v.weight).T.detach().cpu()
        return m.numpy().astype(np.float32)


def proto_logits(
    support: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, n_classes: int, scale
) -> torch.Tensor:
    """Cosine logits of queries (Q, D) against class-mean prototypes of support (S, D) -> (Q, C)."""
    protos = torch.zeros(n_classes, support.shape[1], dtype=support.dtype, device=support.device)
    protos = protos.index_add(0, labels, support)  # (C, D) sums; normalised below
    protos = nn.functional.normalize(protos, dim=-1)
    return scale * queries @ protos.T
