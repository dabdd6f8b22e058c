"""Prototypical-network parts: class-mean prototypes, the residual projection, cosine scoring.

Everything here is small and numeric; the numpy helpers are what classification uses at run
time (fast on cached embeddings), the torch module is what meta-training learns.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    n = np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]
    return x / np.maximum(n, 1e-12)


def class_sums(z: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Sums (C, D) in float64 of the rows of ``z`` (N, D) per integer label (N,) in [0, C)."""
    members = np.zeros((n_classes, len(labels)))
    members[labels, np.arange(len(labels))] = 1.0
    return members @ z.astype(np.float64)


def prototypes(z: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class means of ``z`` (N, D) for integer ``labels`` (N,) in [0, n_classes) -> (C, D)."""
    out = class_sums(z, labels, n_classes)
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


def best_example_sims(
    queries: np.ndarray, support: np.ndarray, labels: np.ndarray, n_classes: int
) -> np.ndarray:
    """(Q, C) each query's (Q, D) similarity to the most similar support item (S, D) of each
    category (``labels`` (S,)); NaN for a category without support items."""
    counts = np.bincount(labels, minlength=n_classes)
    present = np.flatnonzero(counts)
    out = np.full((len(queries), n_classes), np.nan, np.float32)
    if len(queries) == 0 or len(present) == 0:
        return out
    order = np.argsort(labels, kind="stable")  # each category's items side by side
    starts = (np.cumsum(counts) - counts)[present]
    out[:, present] = np.maximum.reduceat(queries @ support[order].T, starts, axis=1)
    return out


def reestimated_prototypes(
    protos: np.ndarray, queries: np.ndarray, probs: np.ndarray, weight: float
) -> np.ndarray:
    """Prototypes (C, D) moved towards the queries (Q, D) that their category holds in ``probs``
    (Q, C), e.g. after label propagation: each category's mean of the queries weighted by their
    squared probability (so confident ones count most), unit length, added at ``weight``."""
    w = probs.astype(np.float64) ** 2  # (Q, C)
    held = (w.T @ queries) / np.maximum(w.sum(0), 1e-12)[:, None]  # (C, D)
    return l2n(protos + weight * l2n(held.astype(np.float32)))


def knn_graph(z: np.ndarray, k: int, power: float = 3.0, device: torch.device | None = None):
    """Symmetric, degree-normalised k-nearest-neighbour graph of unit rows ``z`` (N, D).

    Edge weights are cosine similarities (negative ones clipped to 0) raised to ``power``, which
    keeps the closest neighbours dominant; the neighbours are exact (``neighbours.nearest``,
    searched on ``device`` when that is a GPU). Returns a float32 scipy CSR matrix
    D^-1/2 W D^-1/2 (N, N).
    """
    from scipy.sparse import csr_matrix, diags

    from metarec_core.categories.neighbours import nearest

    n = len(z)
    idx, val = nearest(z, k, device=device)  # (N, k) each
    w = np.maximum(val, 0.0).ravel() ** power
    rows = np.repeat(np.arange(n), idx.shape[1])
    graph = csr_matrix((w, (rows, idx.ravel())), shape=(n, n))
    graph = graph + graph.T
    d = 1.0 / np.sqrt(np.maximum(np.asarray(graph.sum(1)).ravel(), 1e-12))
    return (diags(d) @ graph @ diags(d)).tocsr().astype(np.float32)


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
    f = spread_rounds(graph, seeds, alpha, iters)
    f = np.maximum(f[len(support) :], 0.0)
    total = f.sum(1, keepdims=True)
    return np.where(total > 0, f / np.maximum(total, 1e-12), prior)


def spread_rounds(graph, seeds: np.ndarray, alpha: float, iters: int) -> np.ndarray:
    """``iters`` rounds of F <- alpha graph F + (1 - alpha) seeds from F = seeds, with the
    scipy CSR ``graph`` as a torch CSR tensor (its products use every thread, scipy's one)."""
    with warnings.catch_warnings():  # torch warns that its CSR tensors are a beta feature
        warnings.simplefilter("ignore", UserWarning)
        g = torch.sparse_csr_tensor(
            torch.from_numpy(graph.indptr.astype(np.int64)),
            torch.from_numpy(graph.indices.astype(np.int64)),
            torch.from_numpy(graph.data.astype(np.float32)),
            size=graph.shape,
        )
    y = torch.from_numpy(np.ascontiguousarray(seeds, dtype=np.float32))
    f = y
    for _ in range(iters):
        f = torch.addmm(y, g, f, beta=1.0 - alpha, alpha=alpha)
    return f.numpy()


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
