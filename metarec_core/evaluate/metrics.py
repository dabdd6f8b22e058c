"""Ranking metrics as pure functions over top-N lists and relevant sets (binary relevance)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np


def hr_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Hit rate: 1.0 when any of the first ``k`` ranked items is relevant, else 0.0."""
    rel = set(relevant)
    return float(any(item in rel for item in list(ranked)[:k]))


def ndcg_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """NDCG@k with binary gains; the ideal DCG places min(|relevant|, k) hits at the top.

    DCG = sum over hits at 1-based rank r <= k of 1 / log2(r + 1). Returns 0.0 when nothing is relevant.
    """
    rel = set(relevant)
    if not rel:
        return 0.0
    dcg = sum(1.0 / np.log2(r + 2) for r, item in enumerate(list(ranked)[:k]) if item in rel)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(rel), k)))
    return float(dcg / idcg)


def recall_at_k(ranked: Sequence, relevant: Collection, k: int = 20) -> float:
    """Share of the relevant items found in the first ``k`` ranked items (0.0 when none are relevant)."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return float(len(rel.intersection(list(ranked)[:k])) / len(rel))


def coverage(rankings: Sequence[Sequence], n_catalogue: int, k: int = 10) -> float:
    """Catalogue coverage: distinct items in all users' top-``k`` lists over the catalogue size."""
    if n_catalogue <= 0:
        return 0.0
    seen = set()
    for ranked in rankings:
        seen.update(list(ranked)[:k])
    return float(len(seen) / n_catalogue)


def mean_popularity(rankings: Sequence[Sequence], popularity: dict, k: int = 10) -> float:
    """Mean popularity (training interaction count; 0 when unknown) of the recommended top-``k`` items."""
    values = [popularity.get(item, 0) for ranked in rankings for item in list(ranked)[:k]]
    return float(np.mean(values)) if values else 0.0


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of a 95% Student-t interval (half-width 0.0 for fewer than 2 values)."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)


def macro_f1(truth: Sequence, pred: Sequence, labels: Sequence | None = None) -> float:
    """Macro-averaged F1 (scikit-learn's) over ``labels`` (default: the classes in ``truth``).

    Each label counts equally; a prediction outside ``labels`` (e.g. "none of these") is a miss
    for its true class. NaN when there is no label to average over.
    """
    from sklearn.metrics import f1_score

    labels = list(np.unique(np.asarray(truth))) if labels is None else list(labels)
    if not labels:
        return float("nan")
    return float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))
