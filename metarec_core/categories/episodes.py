"""N-way k-shot episode sampling over integer labels (categories, never items, are split)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episode:
    """Row indices of one few-shot task; ``*_labels`` are 0..n_way-1 within the episode."""

    classes: np.ndarray  # (W,) original class ids
    support: np.ndarray  # (S,) row indices
    support_labels: np.ndarray  # (S,)
    query: np.ndarray  # (Q,) row indices
    query_labels: np.ndarray  # (Q,)


class EpisodeSampler:
    """Draws episodes from rows grouped by class; classes need at least ``min_items`` rows."""

    def __init__(self, labels: np.ndarray, min_items: int = 2, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        self.rows = {c: r for c, r in by_class.items() if len(r) >= min_items}

    @property
    def n_classes(self) -> int:
        return len(self.rows)

    def sample(self, n_way: int, k_shot: int, n_query: int) -> Episode:
        """One episode; a class with few rows gives fewer queries (at least one)."""
        classes = self.rng.choice(sorted(self.rows), size=min(n_way, self.n_classes), replace=False)
        s, sl, q, ql = [], [], [], []
        for j, c in enumerate(classes):
            rows = self.rng.permutation(self.rows[int(c)])
            k = min(k_shot, len(rows) - 1)
            s.append(rows[:k])
            sl.append(np.full(k, j))
            qq = rows[k : k + n_query]
            q.append(qq)
            ql.append(np.full(len(qq), j))
        return Episode(
            classes=classes,
            support=np.concatenate(s),
            support_labels=np.concatenate(sl),
            query=np.concatenate(q),
            query_labels=np.concatenate(ql),
        )
