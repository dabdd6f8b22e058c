"""Read-only queries: the analyst SQL path and parameterised slices for Overview / Data Explorer.

Every helper takes a ``Store`` and a dataset name (validated, then quoted as an identifier);
values always travel as parameters. All return DataFrames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from metarec_core.data.schema import ORDER_BUCKETS, STATS_TABLES, histogram_sql, quote
from metarec_core.data.sql_guard import check_select
from metarec_core.data.store import Store
from metarec_core.errors import ValidationError

MAX_RESULT_BYTES = 64 * 2**20  # an analyst result larger than this is refused, not shown
_BATCH_ROWS = 2048


@dataclass(frozen=True)
class QueryResult:
    """Rows of an analyst query (at most ``limit``), how long it took and whether rows were cut."""

    frame: pd.DataFrame
    elapsed_s: float
    truncated: bool
    sql: str


def run_analyst_sql(
    store: Store,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    dataset: str | None = None,
    limit: int | None = 10_000,
    timeout_s: float | None = 30.0,
    max_bytes: int = MAX_RESULT_BYTES,
) -> QueryResult:
    """Run one SELECT in a READ ONLY transaction on a fresh cursor (no file access).

    The one statement DuckDB extracted and ``check_select`` judged is what runs (wrapped in a
    LIMIT by the relation API, never by editing text). At most ``limit`` + 1 rows and
    ``max_bytes`` of Arrow data are read; the store's memory limit caps the rest.
    ``dataset`` makes its tables (interactions, items, users) reachable without a prefix.
    Raises ValidationError for rejected, failing, oversized or timed-out queries.
    """
    stmt = check_select(sql)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive integer, got {limit!r}")
    path = store.schema_path(dataset) if dataset else None
    cur = store.cursor()
    timer = threading.Timer(timeout_s, cur.interrupt) if timeout_s else None
    try:
        if path:  # the dataset's tables first, then the registry
            main = path.rsplit(".", 1)[0] + ".main"
            cur.execute("SET search_path = '" + f"{path},{main}".replace("'", "''") + "'")
        cur.execute("BEGIN TRANSACTION READ ONLY")
        if timer:
            timer.start()
        t0 = time.perf_counter()
        # the text DuckDB itself extracted as the one statement (a lazy relation, so the LIMIT
        # below stops the scan early; the statement object would be materialised whole)
        rel = cur.sql(stmt.query, params=params if params else None)
        if limit is not None:
            rel = rel.limit(int(limit) + 1)
        frame = _read_capped(rel, max_bytes)
        elapsed = time.perf_counter() - t0
    except duckdb.InterruptException as exc:
        raise ValidationError(f"query stopped after {timeout_s:g} s; narrow it down") from exc
    except duckdb.PermissionException as exc:
        raise ValidationError("file and network access are disabled for analyst queries") from exc
    except duckdb.OutOfMemoryException as exc:
        raise ValidationError(
            "query needs more memory than the store allows; aggregate or filter more"
        ) from exc
    except duckdb.Error as exc:
        msg = str(exc).strip().splitlines()[0]
        if "read-only" in msg:
            msg = "the analyst connection is read-only"
        raise ValidationError(f"query failed: {msg}") from exc
    finally:
        if timer:
            timer.cancel()
        cur.close()  # the read-only transaction ends with the cursor
    truncated = limit is not None and len(frame) > limit
    if truncated:
        frame = frame.head(limit)
    return QueryResult(frame.reset_index(drop=True), elapsed, truncated, stmt.query)


def _read_capped(rel: duckdb.DuckDBPyRelation, max_bytes: int) -> pd.DataFrame:
    """The relation's rows as a DataFrame, read batch by batch; refused past ``max_bytes``."""
    reader = rel.to_arrow_reader(_BATCH_ROWS)
    batches, size = [], 0
    for batch in reader:
        size += batch.nbytes
        if size > max_bytes:
            reader.close()  # release the stream before the cursor closes
            raise ValidationError(
                f"query result is over {max_bytes / 2**20:g} MB; select fewer rows or columns"
            )
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema).to_pandas()


# ---- parameterised slices ------------------------------------------------------------------------
def _refs(store: Store, name: str) -> tuple[str, str]:
    return store.ref(name, "interactions"), store.ref(name, "items")


def _stats(store: Store, name: str, table: str) -> str:
    """The import-time stats table (``user_stats``/``item_stats``), or the same rows computed
    from the interactions where the dataset has none (views over Parquet, older stores)."""
    if store.has_table(name, table):
        return store.ref(name, table)
    return f"({STATS_TABLES[table].format(inter=store.ref(name, 'interactions'))})"


def dataset_summary(store: Store, name: str, cold_k: int = 5) -> pd.DataFrame:
    """One row: users, items, interactions, categories, cold users (<= cold_k), activity stats."""
    _, items = _refs(store, name)
    users, per_item = _stats(store, name, "user_stats"), _stats(store, name, "item_stats")
    return store._fetch_df(
        f"""
        WITH per_user AS (SELECT n_interactions AS n, first_ts, last_ts FROM {users})
        SELECT
          (SELECT count(*) FROM per_user) AS n_users,
          (SELECT count(*) FROM {items}) AS n_items,
          (SELECT count(*) FROM {per_item}) AS n_items_with_interactions,
          (SELECT coalesce(sum(n), 0)::BIGINT FROM per_user) AS n_interactions,
          (SELECT count(DISTINCT category) FROM {items}) AS n_categories,
          (SELECT count(*) FROM per_user WHERE n <= ?) AS n_cold_users,
          (SELECT median(n) FROM per_user) AS median_per_user,
          (SELECT avg(n) FROM per_user) AS mean_per_user,
          (SELECT min(first_ts) FROM per_user) AS ts_min,
          (SELECT max(last_ts) FROM per_user) AS ts_max
        """,
        [int(cold_k)],
    )


def user_history(store: Store, name: str, user_id: str, limit: int | None = None) -> pd.DataFrame:
    """One user's interactions in order, with item title and category."""
    inter, items = _refs(store, name)
    return store._fetch_df(
        f"SELECT i.* EXCLUDE (user_id), it.title, it.category FROM {inter} i "
        f"LEFT JOIN {items} it USING (item_id) WHERE i.user_id = ? "
        "ORDER BY i.position LIMIT ?",
        [str(user_id), limit if limit is not None else 2**62],
    )


def item_popularity(
    store: Store, name: str, top_n: int = 20, category: str | None = None
) -> pd.DataFrame:
    """The most interacted items (optionally within one category) with counts and share."""
    _, items = _refs(store, name)
    per_item = _stats(store, name, "item_stats")
    return store._fetch_df(
        f"""
        SELECT s.item_id, it.title, it.category, s.n_interactions, s.n_users,
               s.n_interactions / sum(s.n_interactions) OVER () AS share
        FROM {per_item} s JOIN {items} it USING (item_id)
        WHERE (? IS NULL OR it.category = ?)
        ORDER BY s.n_interactions DESC, s.item_id LIMIT ?
        """,
        [category, category, int(top_n)],
    )


def category_mix(
    store: Store, name: str, top_n: int | None = None, user_id: str | None = None
) -> pd.DataFrame:
    """Per category: catalogue items, interactions and their share (optionally for one user)."""
    inter, items = _refs(store, name)
    if user_id is None:  # the whole log: per-item counts from the import-time stats
        per_item = f"SELECT item_id, n_interactions AS n FROM {_stats(store, name, 'item_stats')}"
    else:
        per_item = f"SELECT item_id, count(*) AS n FROM {inter} WHERE user_id = ? GROUP BY 1"
    return store._fetch_df(
        f"""
        WITH c AS (SELECT category, count(*) AS n_items FROM {items} GROUP BY category),
        x AS (SELECT it.category, sum(i.n)::BIGINT AS n_interactions FROM ({per_item}) i
              JOIN {items} it USING (item_id) GROUP BY it.category)
        SELECT c.category, c.n_items, coalesce(x.n_interactions, 0) AS n_interactions,
               coalesce(x.n_interactions, 0) / greatest(sum(x.n_interactions) OVER (), 1) AS share
        FROM c LEFT JOIN x ON c.category IS NOT DISTINCT FROM x.category
        ORDER BY n_interactions DESC, c.n_items DESC, c.category LIMIT ?
        """,
        ([] if user_id is None else [str(user_id)]) + [int(top_n) if top_n else 2**62],
    )


def user_activity(store: Store, name: str, detail: bool = True) -> pd.DataFrame:
    """Per user: interactions and, with ``detail``, distinct items and first/last order value."""
    cols = "user_id, n_interactions" + (", n_items, first_ts, last_ts" if detail else "")
    return store._fetch_df(
        f"SELECT {cols} FROM {_stats(store, name, 'user_stats')} "
        "ORDER BY n_interactions DESC, user_id"
    )


def activity_histogram(store: Store, name: str, bins: int = 30) -> pd.DataFrame:
    """Users per bucket of interactions-per-user (equal-width buckets: bucket_lo, bucket_hi, n)."""
    users = _stats(store, name, "user_stats")
    values = f"SELECT user_id AS u, CAST(n_interactions AS DOUBLE) AS x FROM {users}"
    df = store._fetch_df(histogram_sql(values, bins))
    return df.rename(columns={"n": "n_users_in_bucket"}).drop(columns=["n_users"])


def interactions_over_order(
    store: Store, name: str, by: str = "ts", buckets: int = 50
) -> pd.DataFrame:
    """Interactions (and active users) per equal-width bucket of ``ts`` or ``position``."""
    if by not in ("ts", "position"):
        raise ValidationError(f"by must be 'ts' or 'position', got {by!r}")
    inter, _ = _refs(store, name)
    if buckets == ORDER_BUCKETS and store.has_table(name, "order_stats"):  # built at import
        return store._fetch_df(
            "SELECT bucket, bucket_lo, bucket_hi, n_interactions, n_users "
            f"FROM {store.ref(name, 'order_stats')} WHERE axis = ? ORDER BY bucket",
            [by],
        )
    values = f"SELECT user_id AS u, CAST({quote(by)} AS DOUBLE) AS x FROM {inter}"
    df = store._fetch_df(histogram_sql(values, buckets))
    return df.rename(columns={"n": "n_interactions"})


def _slice_filter(
    store: Store,
    name: str,
    category: str | None,
    min_activity: int | None,
    max_activity: int | None,
    ts_min: float | None,
    ts_max: float | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (over interactions ``i``) of a Data Explorer slice, and its parameters.

    Only the filters that are set appear, so an unfiltered slice is a plain scan; each value is
    still a bound parameter.
    """
    _, items = _refs(store, name)
    conds: list[str] = []
    params: list[Any] = []
    if category is not None:
        conds.append(f"i.item_id IN (SELECT item_id FROM {items} WHERE category = ?)")
        params.append(category)
    if min_activity is not None or max_activity is not None:
        conds.append(
            f"i.user_id IN (SELECT user_id FROM {_stats(store, name, 'user_stats')} "
            "WHERE n_interactions >= coalesce(?, 0) "
            "AND n_interactions <= coalesce(?, 9223372036854775807))"
        )
        params += [min_activity, max_activity]
    for op, value in ((">=", ts_min), ("<=", ts_max)):
        if value is not None:
            conds.append(f"i.ts {op} ?")
            params.append(float(value))
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def filtered_slice(
    store: Store,
    name: str,
    category: str | None = None,
    min_activity: int | None = None,
    max_activity: int | None = None,
    ts_min: float | None = None,
    ts_max: float | None = None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Interactions matching every given filter, with item title/category and user activity."""
    inter, items = _refs(store, name)
    where, params = _slice_filter(store, name, category, min_activity, max_activity, ts_min, ts_max)
    # the first `limit` rows first; titles and user activity only for those
    return store._fetch_df(
        f"""
        WITH r AS (SELECT i.user_id, i.position, i.ts, i.item_id FROM {inter} i {where}
                   ORDER BY i.user_id, i.position LIMIT ?),
        act AS (SELECT user_id, count(*) AS user_activity FROM {inter}
                WHERE user_id IN (SELECT user_id FROM r) GROUP BY user_id)
        SELECT r.user_id, r.position, r.ts, r.item_id, it.title, it.category, act.user_activity
        FROM r JOIN {items} it USING (item_id) JOIN act USING (user_id)
        ORDER BY r.user_id, r.position
        """,
        [*params, int(limit)],
    )


@dataclass(frozen=True)
class SliceSummary:
    """Counts over a whole Data Explorer slice, computed in DuckDB (no rows reach Python)."""

    n_matching: int
    top_items: pd.DataFrame  # item_id, title, category, n (most frequent first)
    categories: pd.DataFrame  # category, n


def slice_summary(
    store: Store,
    name: str,
    category: str | None = None,
    min_activity: int | None = None,
    max_activity: int | None = None,
    ts_min: float | None = None,
    ts_max: float | None = None,
    top: int = 25,
) -> SliceSummary:
    """How many interactions match the filters, their top items and their category mix."""
    inter, items = _refs(store, name)
    where, params = _slice_filter(store, name, category, min_activity, max_activity, ts_min, ts_max)
    if min_activity is None and max_activity is None and ts_min is None and ts_max is None:
        # every interaction of the chosen items matches: the import-time counts answer it (the
        # only condition left, on the category, reads i.item_id, which the stats table has too)
        stats = _stats(store, name, "item_stats")
        per_item = f"SELECT i.item_id, i.n_interactions AS n FROM {stats} i {where}"
    else:
        per_item = f"SELECT i.item_id, count(*) AS n FROM {inter} i {where} GROUP BY i.item_id"
    # one pass over the slice: the category mix and the top items come from the same counts
    both = store._fetch_df(
        f"""
        WITH j AS MATERIALIZED (SELECT p.item_id, p.n, it.title, it.category
                                FROM ({per_item}) p JOIN {items} it USING (item_id))
        SELECT 0 AS part, category, NULL AS item_id, NULL AS title, sum(n)::BIGINT AS n
        FROM j GROUP BY category
        UNION ALL
        SELECT * FROM (SELECT 1, category, item_id, title, n::BIGINT FROM j
                       ORDER BY n DESC, item_id LIMIT ?)
        """,
        [*params, int(top)],
    )
    cats = (
        both[both["part"] == 0][["category", "n"]]
        .sort_values(["n", "category"], ascending=[False, True])
        .reset_index(drop=True)
    )
    top_items = (
        both[both["part"] == 1][["item_id", "title", "category", "n"]]
        .sort_values(["n", "item_id"], ascending=[False, True])
        .reset_index(drop=True)
    )
    return SliceSummary(int(cats["n"].sum()), top_items, cats)
