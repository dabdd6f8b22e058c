"""Dataset names, SQL identifiers and the store's table layout (one DuckDB schema per dataset).

Layout of the store file::

    main.datasets            registry: one row per dataset (see REGISTRY_COLUMNS)
    "<name>".interactions    user_id, item_id, position, ts, [event], [value], extra columns
    "<name>".items           item_id, title, text, category, extra columns
    "<name>".users           user_id, extra columns (optional)

``interactions`` is stored sorted by (user_id, position) so one user's rows are read quickly.
"""

from __future__ import annotations

import re

from metarec_core.errors import ValidationError

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,62}\Z")
RESERVED_NAMES = frozenset({"main", "temp", "system", "information_schema", "pg_catalog"})
TABLES = ("interactions", "items", "users")


def histogram_sql(values_sql: str, buckets: int) -> str:
    """Equal-width histogram of ``x`` from ``values_sql`` (columns u, x): bucket, bucket_lo,
    bucket_hi, n, n_users (distinct u). ``buckets`` is written in as an integer literal."""
    b = int(buckets)
    return f"""
        WITH v AS ({values_sql}),
        b AS (SELECT min(x) AS lo, greatest((max(x) - min(x)) / {b}, 1e-9) AS width FROM v),
        k AS (SELECT least(CAST(floor((x - lo) / width) AS BIGINT), {b - 1}) AS bucket, u, lo, width
              FROM v, b)
        SELECT bucket, any_value(lo + bucket * width) AS bucket_lo,
               any_value(lo + (bucket + 1) * width) AS bucket_hi,
               count(*) AS n, count(DISTINCT u) AS n_users
        FROM k GROUP BY bucket ORDER BY bucket
    """


ORDER_BUCKETS = 50  # the bucket count baked into order_stats


def _order_stats_sql() -> str:
    """order_stats: interactions and active users per ORDER_BUCKETS bucket of ts and of position
    (``{inter}`` is left for the caller to fill, like the other stats tables)."""
    parts = []
    for axis in ("ts", "position"):
        values = f"SELECT user_id AS u, CAST({axis} AS DOUBLE) AS x FROM " + "{inter}"
        parts.append(
            f"SELECT '{axis}' AS axis, bucket, bucket_lo, bucket_hi, n AS n_interactions, n_users "
            f"FROM ({histogram_sql(values, ORDER_BUCKETS)})"
        )
    return " UNION ALL ".join(parts)


# derived at import, in the same transaction, so the pages' queries scan users/items, not the log
STATS_TABLES = {
    "user_stats": (
        "SELECT user_id, count(*) AS n_interactions, count(DISTINCT item_id) AS n_items, "
        "min(ts) AS first_ts, max(ts) AS last_ts FROM {inter} GROUP BY user_id"
    ),
    "item_stats": (
        "SELECT item_id, count(*) AS n_interactions, count(DISTINCT user_id) AS n_users "
        "FROM {inter} GROUP BY item_id"
    ),
    "order_stats": _order_stats_sql(),
}

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS main.datasets (
    name VARCHAR PRIMARY KEY,
    source VARCHAR,
    order_kind VARCHAR,
    order_cols VARCHAR,
    n_users BIGINT,
    n_items BIGINT,
    n_interactions BIGINT,
    n_categories BIGINT,
    n_items_with_interactions BIGINT,
    has_users BOOLEAN,
    created_at TIMESTAMP
)
"""
REGISTRY_COLUMNS = (
    "name",
    "source",
    "order_kind",
    "order_cols",
    "n_users",
    "n_items",
    "n_interactions",
    "n_categories",
    "n_items_with_interactions",
    "has_users",
    "created_at",
)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name (letters, digits, '-', '_'), else raise."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            f"invalid dataset name {name!r}: use 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValidationError(f"invalid dataset name {name!r}: the name is reserved")
    return name


def quote(identifier: str) -> str:
    """A DuckDB identifier in double quotes (embedded quotes doubled)."""
    return '"' + str(identifier).replace('"', '""') + '"'


def table_ref(name: str, table: str) -> str:
    """``"<dataset>".<table>`` for a validated dataset name and a known table."""
    if table not in TABLES and table not in STATS_TABLES:
        raise ValueError(f"unknown table {table!r}")
    return f"{quote(validate_name(name))}.{table}"
