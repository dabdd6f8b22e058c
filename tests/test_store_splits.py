"""Cold/warm user split and support/query construction (data/splits.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from metarec_core.data.splits import split_users, support_query
from metarec_core.errors import ValidationError


def _log(n_users: int = 20, per_user: int = 6) -> pd.DataFrame:
    rows = [
        (f"u{u:02d}", f"i{(u + p) % 9}", p, float(p))
        for u in range(n_users)
        for p in range(per_user - (u % 3))
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "position", "ts"])


def test_split_is_deterministic_and_disjoint():
    df = _log()
    a = split_users(df, cold_fraction=0.25, seed=3)
    assert a == split_users(df, cold_fraction=0.25, seed=3)
    assert a != split_users(df, cold_fraction=0.25, seed=4)
    assert len(a.cold) == 5 and not set(a.cold) & set(a.warm)
    assert sorted(a.cold + a.warm) == sorted(df.user_id.unique())


def test_split_respects_min_interactions_and_max_cold():
    df = _log()
    s = split_users(df, cold_fraction=1.0, min_interactions=6, max_cold=100)
    counts = df.groupby("user_id").size()
    assert set(s.cold) == set(counts[counts >= 6].index)
    assert len(split_users(df, cold_fraction=1.0, max_cold=3).cold) == 3
    with pytest.raises(ValidationError):
        split_users(df, cold_fraction=1.5)


def test_support_query():
    df = pd.DataFrame(
        {
            "user_id": ["a"] * 5 + ["b"] * 2,
            "item_id": ["x", "y", "x", "z", "z", "p", "p"],
            "position": [0, 1, 2, 3, 4, 0, 1],
        }
    ).sample(frac=1.0, random_state=0)  # order must come from position, not row order
    support, query = support_query(df, k=2)
    assert support["item_id"].tolist() == ["x", "y"]  # b has no new item after p: dropped
    assert query["item_id"].tolist() == ["z"] and query["position"].tolist() == [3]
    with pytest.raises(ValidationError):
        support_query(df, k=0)
