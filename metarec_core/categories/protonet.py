"""Prototypical-network parts: class-mean prototypes, the residual projection, cosine scoring.

Everything here is small and numeric; the numpy helpers are what classification uses at run
time (fast on cached embeddings), the torch module is what meta-training learns.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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


def refine_prototypes(
    support: np.ndarray,
    labels: np.ndarray,
    queries: np.ndarray,
    protos: np.ndarray,
    temperature: float,
    steps: int,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Transductive soft k-means: move prototypes towards the unlabelled queries they attract.

    All inputs are unit rows; support (S, D) with labels (S,), queries (Q, D), protos (C, D).
    Labelled items keep weight 1, each query adds its soft assignment; ``prior`` (C, D), e.g. the
    weighted category-name embeddings, is added to each updated prototype. Returns unit (C, D).
    """
    c = protos.shape[0]
    lab_sum = np.zeros_like(protos, dtype=np.float64)
    np.add.at(lab_sum, labels, support)
    lab_n = np.bincount(labels, minlength=c).astype(np.float64)
    p = protos
    for _ in range(steps):
        r = softmax(temperature * (queries @ p.T))  # (Q, C)
        p = l2n(((lab_sum + r.T @ queries) / (lab_n + r.sum(0))[:, None]).astype(np.float32))
        if prior is not None:
            p = l2n(p + prior)
    return p


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
