"""Datasets and queries: the store, the Overview and Data Explorer slices, analyst SQL."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metarec_core.config import Paths
from metarec_core.errors import MetaRecError, ValidationError
from metarec_core.evaluate.protocol import COLD_SHARE, MAX_COLD
from metarec_core.types import Progress, no_progress

if TYPE_CHECKING:
    from metarec_core.data.store import Store

log = logging.getLogger(__name__)

DEMO_DATASET = "beauty-shop"  # the shop the app opens on (data.demo.SHOP)
# The cold-start protocol's held-out share of users (one set of constants: evaluate/protocol.py).
COLD_FRACTION, MAX_COLD = COLD_SHARE, MAX_COLD


# ==== datasets and queries =======================================================================
def open_store(paths: Paths | None = None) -> Store | None:
    """The store, read-only (jobs and the CLI may read it too); None when there is no store yet."""
    from metarec_core.data.store import Store

    path = (paths or Paths()).db_path
    if not Path(path).exists():
        return None
    return Store(path, read_only=True)


def dataset_names(store: Store | None) -> list[str]:
    """Names of the datasets in the store ([] when there is no store)."""
    if store is None:
        return []
    return [str(n) for n in store.list_datasets()["name"]]


def import_demo(paths: Paths | None = None, progress: Progress = no_progress) -> list[str]:
    """Import the shipped shop demos (offline) that are not in the store yet; their names.

    The caller must have closed its own connection to the store (one writer per file).
    """
    from metarec_core.data.demo import import_demo as _import
    from metarec_core.data.store import Store

    paths = paths or Paths()
    with Store(paths.db_path) as store:
        return [i.name for i in _import(store, if_missing=True, progress=progress)]


@dataclass(frozen=True)
class Overview:
    """What the Overview page shows for one dataset."""

    summary: dict[str, Any]
    per_user: pd.Series  # interactions per user
    categories: pd.DataFrame  # category, n_items, n_interactions, share
    over_time: pd.DataFrame  # bucket_lo, n_interactions, ...
    order_kind: str


def overview(store: Store, dataset: str, cold_k: int = 5) -> Overview:
    """Counts, the cold-user count, activity distribution, category mix and activity over time."""
    from metarec_core.data import queries as q

    summary = q.dataset_summary(store, dataset, cold_k).iloc[0].to_dict()
    activity = q.user_activity(store, dataset, detail=False)
    info = store.info(dataset)
    by = "ts" if info.order_kind == "timestamp" else "position"
    over = q.interactions_over_order(store, dataset, by=by)
    if by == "ts":
        over["when"] = pd.to_datetime(over["bucket_lo"], unit="s")
    else:
        over["when"] = over["bucket_lo"]
    return Overview(
        summary={k: (v.item() if hasattr(v, "item") else v) for k, v in summary.items()},
        per_user=activity.set_index("user_id")["n_interactions"],
        categories=q.category_mix(store, dataset),
        over_time=over,
        order_kind=info.order_kind,
    )


ACTIVITY_BUCKETS: dict[str, tuple[int | None, int | None]] = {
    "any": (None, None),
    "cold (≤ 5)": (None, 5),
    "light (6–20)": (6, 20),
    "regular (21–100)": (21, 100),
    "heavy (> 100)": (101, None),
}


@dataclass(frozen=True)
class Slice:
    """A Data Explorer slice: the first ``limit`` matching interactions, and over the whole slice
    its size, its most frequent items and its per-category counts."""

    rows: pd.DataFrame
    top_items: pd.DataFrame  # item_id, title, category, n
    categories: pd.DataFrame  # category, n
    seconds: float
    n_matching: int = 0


def explore(
    store: Store,
    dataset: str,
    category: str | None = None,
    activity: str = "any",
    ts_range: tuple[float, float] | None = None,
    limit: int = 2000,
) -> Slice:
    """Interactions filtered by category, user-activity bucket and time/order range."""
    from metarec_core.data import queries as q

    if activity not in ACTIVITY_BUCKETS:
        raise ValidationError(f"unknown activity bucket '{activity}'")
    lo, hi = ACTIVITY_BUCKETS[activity]
    ts_min, ts_max = ts_range if ts_range else (None, None)
    t0 = time.perf_counter()
    rows = q.filtered_slice(
        store,
        dataset,
        category=category,
        min_activity=lo,
        max_activity=hi,
        ts_min=ts_min,
        ts_max=ts_max,
        limit=limit,
    )
    whole = q.slice_summary(store, dataset, category, lo, hi, ts_min, ts_max, top=25)
    return Slice(
        rows, whole.top_items, whole.categories, time.perf_counter() - t0, whole.n_matching
    )


def example_queries(dataset: str) -> dict[str, str]:
    """Ready-made analyst queries (the dataset's tables are reachable without a prefix).

    They read the import-time summaries ``user_stats`` (user_id, n_interactions, n_items,
    first_ts, last_ts) and ``item_stats`` (item_id, n_interactions, n_users) where a whole-log
    aggregation would otherwise scan every interaction."""
    return {
        "Top 20 items": (
            "SELECT it.title, it.category, s.n_interactions AS n, s.n_users AS users\n"
            "FROM item_stats s JOIN items it USING (item_id)\n"
            "ORDER BY n DESC LIMIT 20"
        ),
        "Interactions per category": (
            "SELECT it.category, count(s.item_id) AS items_with_interactions,\n"
            "       coalesce(sum(s.n_interactions), 0) AS n\n"
            "FROM items it LEFT JOIN item_stats s USING (item_id)\n"
            "GROUP BY ALL ORDER BY n DESC"
        ),
        "Cold users (≤ 5 interactions)": (
            "SELECT user_id, n_interactions AS n FROM user_stats\n"
            "WHERE n_interactions <= 5 ORDER BY n"
        ),
        "Activity distribution": (
            "SELECT n_interactions AS n, count(*) AS users FROM user_stats\nGROUP BY n ORDER BY n"
        ),
        "Items never interacted with": (
            "SELECT item_id, title, category FROM items\n"
            "WHERE item_id NOT IN (SELECT item_id FROM item_stats) LIMIT 100"
        ),
        "A user's history (raw log)": (
            "SELECT i.position, i.ts, it.title, it.category\n"
            "FROM interactions i JOIN items it USING (item_id)\n"
            "WHERE i.user_id = (SELECT min(user_id) FROM user_stats) ORDER BY i.position"
        ),
    }


@dataclass(frozen=True)
class SqlResult:
    """An analyst query's rows and timing, or the clear message of why it was refused."""

    frame: pd.DataFrame
    seconds: float
    truncated: bool = False
    error: str | None = None


def run_sql(store: Store, sql: str, dataset: str | None = None, limit: int = 10_000) -> SqlResult:
    """Run one read-only SELECT; bad or forbidden SQL comes back as ``error`` (never raised)."""
    from metarec_core.data.queries import run_analyst_sql

    t0 = time.perf_counter()
    try:
        r = run_analyst_sql(store, sql, dataset=dataset, limit=limit)
    except MetaRecError as exc:
        return SqlResult(pd.DataFrame(), time.perf_counter() - t0, False, str(exc))
    return SqlResult(r.frame, r.elapsed_s, r.truncated)


def catalogue(store: Store, dataset: str) -> pd.DataFrame:
    """Items with their interaction counts (popularity), for search boxes and labels."""
    items = store.items(dataset)
    inter = store.interactions(dataset)
    pop = inter.groupby("item_id").size().rename("popularity")
    items = items.merge(pop, left_on="item_id", right_index=True, how="left")
    items["popularity"] = items["popularity"].fillna(0).astype(int)
    return items


def search_items(items: pd.DataFrame, text: str, limit: int = 50) -> pd.DataFrame:
    """Catalogue rows whose title, category or id contain every word of ``text`` (popular first)."""
    words = [w for w in str(text).lower().split() if w]
    if not words:
        return items.sort_values("popularity", ascending=False).head(limit)
    hay = (
        items["title"].astype(str)
        + " "
        + items["category"].fillna("").astype(str)
        + " "
        + items["item_id"].astype(str)
    ).str.lower()
    mask = np.ones(len(items), dtype=bool)
    for w in words:
        mask &= hay.str.contains(w, regex=False).to_numpy()
    return items[mask].sort_values("popularity", ascending=False).head(limit)
