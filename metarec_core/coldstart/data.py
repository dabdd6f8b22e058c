"""Catalogue indexing, per-user sequences and episode sampling for the cold-start engine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class Catalogue:
    """The item index a model is built for: row i of every item tensor is ``item_ids[i]``."""

    item_ids: np.ndarray  # (N,) object (str)
    titles: np.ndarray  # (N,) object (str)
    texts: np.ndarray  # (N,) object (str)

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> Catalogue:
        """From a canonical items frame (item_id, title, text)."""
        if items is None or len(items) == 0:
            raise ValidationError("items: the catalogue is empty")
        ids = items["item_id"].astype(str).to_numpy(dtype=object)
        titles = items["title"].fillna("").astype(str).to_numpy(dtype=object)
        texts = items["text"].fillna("").astype(str).to_numpy(dtype=object)
        return cls(ids, titles, texts)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def fingerprint(self) -> str:
        """sha1 over the sorted item ids: identifies the catalogue a model was built for."""
        h = hashlib.sha1()
        for i in sorted(self.item_ids):
            h.update(str(i).encode("utf-8") + b"\n")
        return h.hexdigest()

    def index(self) -> dict[str, int]:
        """item_id -> row."""
        return {str(v): i for i, v in enumerate(self.item_ids)}


def user_sequences(
    interactions: pd.DataFrame, index: dict[str, int]
) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Each user's item rows in interaction order (canonical ``position``), unknown items dropped.

    Returns (user ids, list of int64 arrays, number of rows skipped because their item is unknown).
    """
    if len(interactions) == 0:
        return np.array([], dtype=object), [], 0
    df = interactions[["user_id", "item_id", "position"]].copy()
    df["row"] = df["item_id"].astype(str).map(index)
    skipped = int(df["row"].isna().sum())
    df = df.dropna(subset=["row"])
    df = df.sort_values(["user_id", "position"], kind="stable")
    rows = df["row"].to_numpy(dtype=np.int64)
    users, starts = np.unique(df["user_id"].to_numpy(dtype=object).astype(str), return_index=True)
    order = np.argsort(starts)
    users, starts = users[order], starts[order]
    bounds = np.append(starts, len(rows))
    seqs = [rows[bounds[i] : bounds[i + 1]] for i in range(len(users))]
    return users.astype(object), seqs, skipped


def interaction_matrix(seqs: list[np.ndarray], n_items: int):
    """Binary users x items scipy CSR matrix (float32) from item-row sequences."""
    import scipy.sparse as sp

    rows = np.concatenate([np.full(len(s), u) for u, s in enumerate(seqs)]) if seqs else np.zeros(0)
    cols = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
    x = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows.astype(np.int64), cols)),
        shape=(len(seqs), n_items),
    )
    x.data[:] = 1.0  # duplicates summed by the constructor -> binary
    return x


def pad(rows: list[np.ndarray], fill: int = -1) -> np.ndarray:
    """Right-pad int arrays into a (B, max_len) int64 matrix (``fill`` marks padding)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
