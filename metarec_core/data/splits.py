"""Cold/warm user splits and support/query sets for few-shot evaluation (pure pandas/numpy).

The cold-start protocol (evaluate/protocol.py: ``split_users(interactions, seed)``, the one
the CLI, the benchmarks and the app use) calls these with its constants::

    split = split_users(interactions, cold_fraction=0.1, max_cold=2000, seed=0, min_interactions=2)
    warm = interactions[interactions.user_id.isin(split.warm)]          # train on these
    cold = interactions[interactions.user_id.isin(split.cold)]
    support, query = support_query(cold, k)                             # adapt on support
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class UserSplit:
    """Sorted user ids: ``warm`` to train on, ``cold`` held out as new users."""

    warm: list[str]
    cold: list[str]


def split_users(
    interactions: pd.DataFrame,
    cold_fraction: float = 0.1,
    max_cold: int | None = 2000,
    seed: int = 0,
    min_interactions: int = 2,
) -> UserSplit:
    """Pick cold users at random (deterministic under ``seed``); everyone else is warm.

    Only users with at least ``min_interactions`` rows can be cold (2: one support item and one
    query item; at a larger k, cold users without a query are left out by ``support_query``).
    At most ``max_cold`` cold users.
    """
    if not 0.0 <= cold_fraction <= 1.0:
        raise ValidationError(f"cold_fraction must be in [0, 1], got {cold_fraction}")
    counts = interactions.groupby("user_id", sort=True).size()
    eligible = np.asarray(counts.index[counts >= min_interactions], dtype=object)
    n_cold = round(float(cold_fraction) * len(counts))
    n_cold = min(n_cold, len(eligible), max_cold if max_cold is not None else n_cold)
    rng = np.random.default_rng(seed)
    cold = set(rng.permutation(eligible)[:n_cold].tolist())
    all_users = [str(u) for u in counts.index]
    return UserSplit(
        warm=[u for u in all_users if u not in cold],
        cold=sorted(str(u) for u in cold),
    )


def support_query(interactions: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each user's history: support = first ``k`` rows in order, query = later items.

    The query keeps, per user, the first occurrence of each later item that is not already in
    the support. Users left without a query item are dropped from both frames. Order is
    (user_id, position); ``position`` keeps its original values.
    """
    if k < 1:
        raise ValidationError(f"k must be at least 1, got {k}")
    df = interactions.sort_values(["user_id", "position"], kind="stable")
    rank = df.groupby("user_id", sort=False).cumcount()
    support = df[rank < k]
    later = df[rank >= k]
    seen = pd.MultiIndex.from_frame(support[["user_id", "item_id"]])
    key = pd.MultiIndex.from_frame(later[["user_id", "item_id"]])
    query = later[~key.isin(seen)].drop_duplicates(["user_id", "item_id"], keep="first")
    keep = query["user_id"].unique()
    support = support[support["user_id"].isin(keep)]
    return support.reset_index(drop=True), query.reset_index(drop=True)
