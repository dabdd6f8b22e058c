"""Validate raw files and build canonical tables in a scratch DuckDB (SQL only, no per-row Python).

``build_dataset`` stages the interactions/items/users sources (CSV, gzip CSV, Parquet, globs,
partitioned Parquet folders, DataFrames), resolves the column mapping (explicit names or the alias
lists of data/canonical.py), checks everything a user can get wrong, and leaves three canonical
tables (interactions, items, users) in the scratch connection it returns. The store copies them in
one transaction; data/sources.py reads them straight into DataFrames.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from metarec_core.data.canonical import (
    CATEGORY_ALIASES,
    EVENT_ALIASES,
    ITEM_ALIASES,
    ORDER_ALIASES,
    TITLE_ALIASES,
    USER_ALIASES,
    VALUE_ALIASES,
)
from metarec_core.data.schema import quote as q
from metarec_core.data.staging import Source, apply_transform, find_column, label_of, stage
from metarec_core.errors import ValidationError

log = logging.getLogger(__name__)

TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date", "event_time", "unix_time")
MULTI_VALUED = ("categories", "genres")
_NUMERIC_TYPES = tuple(
    [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
        "BOOLEAN",
    ]
)
_ID_SUFFIXES = ("_id", "id", "asin", "sku", "url", "ean", "upc")
_INTER_CANON = ("user_id", "item_id", "position", "ts", "event", "value")
_ITEM_CANON = ("item_id", "title", "text", "category")


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns play which role; None means auto-detect from the alias lists.

    ``order_cols`` sorts each user's interactions (later columns break ties, then file order);
    a comma-separated string is accepted. ``item_col`` names the item id in both files.
    """

    user_col: str | None = None
    item_col: str | None = None
    order_cols: tuple[str, ...] = ()
    text_col: str | None = None
    title_col: str | None = None
    category_col: str | None = None
    value_col: str | None = None
    event_col: str | None = None

    def __post_init__(self) -> None:
        cols = self.order_cols
        if isinstance(cols, str):
            cols = cols.split(",")
        cols = tuple(c.strip() for part in cols for c in str(part).split(",") if c.strip())
        object.__setattr__(self, "order_cols", cols)


@dataclass
class Built:
    """Canonical tables left in ``con`` (interactions, items, users?) plus their statistics."""

    con: duckdb.DuckDBPyConnection
    order_kind: str
    order_cols: str
    n_users: int
    n_items: int
    n_interactions: int
    n_categories: int
    n_items_with_interactions: int
    has_users: bool
    n_dropped: int = 0
    warnings: list[str] = field(default_factory=list)

    def frame(self, table: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM {table}").df()


# ---- column resolution ------------------------------------------------------------------------
def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def _pick(
    cols: dict[str, str],
    explicit: str | None,
    aliases: Sequence[str],
    role: str,
    what: str,
    required: bool = True,
) -> str | None:
    found = ", ".join(cols)
    if explicit is not None:
        if explicit not in cols:
            raise ValidationError(f"{what}: no column '{explicit}' for {role}; found {found}")
        return explicit
    col = find_column(list(cols), aliases)
    if col is None and required:
        raise ValidationError(
            f"{what}: missing column {role} (looked for {', '.join(aliases[:5])}); found {found}"
        )
    return col


def _is_temporal(dtype: str) -> bool:
    return dtype.startswith(("TIMESTAMP", "DATE"))


def _is_numeric(dtype: str) -> bool:
    return dtype.startswith(_NUMERIC_TYPES)


def id_expr(col: str, dtype: str) -> str:
    """SQL giving the canonical text id of ``col`` (integral floats lose their '.0'; '' -> NULL)."""
    c = q(col)
    if dtype.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        return (
            f"CASE WHEN {c} = trunc({c}) THEN CAST(CAST({c} AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({c} AS VARCHAR) END"
        )
    return f"nullif(trim(CAST({c} AS VARCHAR)), '')"


def order_expr(col: str, dtype: str) -> str:
    """SQL giving a DOUBLE order value: numbers as they are, dates/times as epoch seconds."""
    c = q(col)
    if _is_numeric(dtype):
        return f"CAST({c} AS DOUBLE)"
    if _is_temporal(dtype):
        return f"CAST(epoch({c}) AS DOUBLE)"
    s = f"nullif(trim(CAST({c} AS VARCHAR)), '')"
    return f"coalesce(TRY_CAST({s} AS DOUBLE), CAST(epoch(TRY_CAST({s} AS TIMESTAMPTZ)) AS DOUBLE))"


def _check_ids(con, table: str, exprs: dict[str, str], what: str) -> None:
    sel = ", ".join(f"count(*) FILTER (WHERE ({e}) IS NULL)" for e in exprs.values())
    counts = con.execute(f"SELECT {sel} FROM {table}").fetchall()[0]
    for role, n in zip(exprs, counts, strict=True):
        if n:
            raise ValidationError(f"{what}: {n} row(s) have an empty {role}")


def _check_orders(con, table: str, orders: dict[str, str], what: str) -> None:
    """One scan: per order column, values that parse to nothing and values that are missing."""
    sel = []
    for col, expr in orders.items():
        v = f"nullif(trim(CAST({q(col)} AS VARCHAR)), '')"
        sel += [
            f"count(*) FILTER (WHERE {v} IS NOT NULL AND ({expr}) IS NULL)",
            f"any_value({v}) FILTER (WHERE {v} IS NOT NULL AND ({expr}) IS NULL)",
            f"count(*) FILTER (WHERE {v} IS NULL)",
            f"count(*) FILTER (WHERE NOT isfinite({expr}))",
            f"any_value({v}) FILTER (WHERE NOT isfinite({expr}))",
        ]
    if not sel:
        return
    row = con.execute(f"SELECT {', '.join(sel)} FROM {table}").fetchall()[0]
    for n, col in enumerate(orders):
        bad, example, missing, infinite, inf_example = row[5 * n : 5 * n + 5]
        if bad:
            raise ValidationError(
                f"{what}: column '{col}' has {bad} value(s) that are neither numbers nor dates "
                f"(e.g. {example!r})"
            )
        if missing:
            raise ValidationError(f"{what}: column '{col}' has {missing} missing value(s)")
        if infinite:
            raise ValidationError(
                f"{what}: column '{col}' has {infinite} value(s) that are not finite numbers "
                f"(e.g. {inf_example!r}); use numbers or dates"
            )


def _check_unique(con, table: str, expr: str, role: str, what: str) -> None:
    n, examples = con.execute(
        f"SELECT count(*), string_agg(k, ', ') FILTER (WHERE rn <= 3) FROM ("
        f"SELECT ({expr}) AS k, row_number() OVER (ORDER BY ({expr})) AS rn FROM {table} "
        f"GROUP BY 1 HAVING count(*) > 1)"
    ).fetchall()[0]
    if n:
        raise ValidationError(f"{what}: {n} duplicate {role}(s), e.g. {examples}")


def _extras(cols: dict[str, str], used: Sequence[str | None], canon: Sequence[str]) -> list[str]:
    skip = {c for c in used if c} | set(canon)
    return [c for c in cols if c not in skip and c.lower() not in canon]


# ---- canonical tables ---------------------------------------------------------------------------
def _build_interactions(con, m: ColumnMapping, what: str) -> tuple[str, str]:
    cols = _columns(con, "raw_interactions")
    u = _pick(cols, m.user_col, USER_ALIASES, "user_id", what)
    i = _pick(cols, m.item_col, ITEM_ALIASES, "item_id", what)
    if m.order_cols:
        orders = [_pick(cols, c, (), "order", what) for c in m.order_cols]
    else:
        orders = [c for c in [find_column(list(cols), ORDER_ALIASES)] if c]
    rest = {k: v for k, v in cols.items() if k not in (u, i, *orders)}
    val = _pick(rest, m.value_col, VALUE_ALIASES, "value", what, required=False)
    ev = _pick(rest, m.event_col, EVENT_ALIASES, "event", what, required=False)
    ids = {"user_id": id_expr(u, cols[u]), "item_id": id_expr(i, cols[i])}
    _check_ids(con, "raw_interactions", ids, what)
    sel = [f"{ids['user_id']} AS user_id", f"{ids['item_id']} AS item_id", "rowid AS __row"]
    order_exprs = {c: order_expr(c, cols[c]) for c in orders}
    _check_orders(con, "raw_interactions", order_exprs, what)
    sel += [f"{e} AS __o{n}" for n, e in enumerate(order_exprs.values())]
    if ev:
        sel.append(f"CAST({q(ev)} AS VARCHAR) AS event")
    if val:
        sel.append(f"TRY_CAST({q(val)} AS DOUBLE) AS value")
    sel += [
        q(c) for c in _extras(cols, [u, i, orders[0] if orders else None, val, ev], _INTER_CANON)
    ]
    con.execute(f"CREATE VIEW t_interactions AS SELECT {', '.join(sel)} FROM raw_interactions")
    if not orders:
        kind = "file"
    elif _is_temporal(cols[orders[0]]) or orders[0].lower() in TIME_NAMES:
        kind = "timestamp"
    else:
        kind = "sequence"
    return kind, ",".join(orders)


def _text_parts(con, cols: dict[str, str], id_col: str) -> list[str]:
    """String columns worth showing the encoder: not ids, not unique space-free codes."""
    cand = [
        c
        for c, t in cols.items()
        if c != id_col and t == "VARCHAR" and not c.lower().endswith(_ID_SUFFIXES)
    ]
    if not cand:
        return []
    checks = ", ".join(
        f"count(DISTINCT {q(c)}) = count({q(c)}) AND count({q(c)}) > 1 "
        f"AND NOT coalesce(bool_or(contains({q(c)}, ' ')), false)"
        for c in cand
    )
    idlike = con.execute(f"SELECT {checks} FROM raw_items").fetchall()[0]
    return [c for c, bad in zip(cand, idlike, strict=True) if not bad]


def _build_items(con, m: ColumnMapping, what: str) -> None:
    cols = _columns(con, "raw_items")
    i = _pick(cols, m.item_col if m.item_col in cols else None, ITEM_ALIASES, "item_id", what)
    iid = id_expr(i, cols[i])
    _check_ids(con, "raw_items", {"item_id": iid}, what)
    _check_unique(con, "raw_items", iid, "item id", what)
    cat = _pick(cols, m.category_col, CATEGORY_ALIASES, "category", what, required=False)
    title = _pick(cols, m.title_col, TITLE_ALIASES, "title", what, required=False)
    if m.text_col is not None:
        text_src = _pick(cols, m.text_col, (), "text", what)
        text = f"coalesce(CAST({q(text_src)} AS VARCHAR), '')"
    elif title is not None:
        text_src, text = title, f"coalesce(CAST({q(title)} AS VARCHAR), '')"
    else:
        text_src, parts = None, _text_parts(con, cols, i)
        if not parts:
            raise ValidationError(
                f"{what}: no text column (title, name or descriptive columns); "
                f"found {', '.join(cols)}"
            )
        text = (
            "concat_ws('; ', "
            + ", ".join(
                f"'{c.replace(chr(39), chr(39) * 2)}: ' || nullif(CAST({q(c)} AS VARCHAR), '')"
                for c in parts
            )
            + ")"
        )
    title_sql = f"nullif(trim(CAST({q(title)} AS VARCHAR)), '')" if title else None
    if cat is None:
        cat_sql = "CAST(NULL AS VARCHAR)"
    elif cat.lower() in MULTI_VALUED:  # first value of the first path
        cat_sql = (
            f"nullif(trim(list_last(string_split(split_part(CAST({q(cat)} AS VARCHAR), '|', 1), "
            f"' > '))), '')"
        )
    else:
        cat_sql = f"nullif(trim(CAST({q(cat)} AS VARCHAR)), '')"
    keep_cat = cat if cat and cat.lower() not in MULTI_VALUED else None
    extra = "".join(f", {q(c)}" for c in _extras(cols, [i, text_src, title, keep_cat], _ITEM_CANON))
    con.execute(
        f"CREATE TABLE items AS SELECT item_id, coalesce(title, text) AS title, text, category"
        f"{extra} FROM (SELECT {iid} AS item_id, {title_sql or 'NULL'} AS title, "
        f"trim({text}) AS text, {cat_sql} AS category{extra}, rowid AS __r FROM raw_items) "
        "ORDER BY __r"
    )
    con.execute("DROP TABLE raw_items")


def _build_users(con, m: ColumnMapping, what: str) -> None:
    cols = _columns(con, "raw_users")
    u = _pick(cols, m.user_col if m.user_col in cols else None, USER_ALIASES, "user_id", what)
    uid = id_expr(u, cols[u])
    _check_ids(con, "raw_users", {"user_id": uid}, what)
    _check_unique(con, "raw_users", uid, "user id", what)
    extra = "".join(f", {q(c)}" for c in _extras(cols, [u], ("user_id",)))
    con.execute(
        f"CREATE TABLE users AS SELECT {uid} AS user_id{extra} FROM raw_users ORDER BY rowid"
    )
    con.execute("DROP TABLE raw_users")


def _unknown_items(con, drop: bool, what: str) -> int:
    n, distinct, examples = con.execute(
        "WITH u AS (SELECT item_id FROM t_interactions ANTI JOIN items USING (item_id)) "
        "SELECT count(*), count(DISTINCT item_id), (SELECT string_agg(item_id, ', ') FROM "
        "(SELECT DISTINCT item_id FROM u ORDER BY 1 LIMIT 3)) FROM u"
    ).fetchall()[0]
    if n and not drop:
        raise ValidationError(
            f"{what}: {n} interaction(s) refer to {distinct} item id(s) not in the items file "
            f"(e.g. {examples}); add them to the catalogue or import with --drop-unknown-items"
        )
    if n:
        con.execute(
            "CREATE OR REPLACE VIEW t_known AS SELECT * FROM t_interactions SEMI JOIN items "
            "USING (item_id)"
        )
        if con.execute("SELECT count(*) FROM t_known").fetchall()[0][0] == 0:
            raise ValidationError(f"{what}: no interactions left after dropping unknown items")
    return int(n)


def _finish_interactions(con, n_orders: int, source: str) -> None:
    """Number each user's rows by the order columns (ties: file order) and sort by user."""
    cols = [c for c in _columns(con, source) if not c.startswith("__")]
    keys = ", ".join([f"__o{n}" for n in range(n_orders)] + ["__row"])
    ts = "__o0" if n_orders else "CAST(__row AS DOUBLE)"
    rest = [c for c in cols if c not in ("user_id", "item_id")]
    con.execute(
        "CREATE TABLE interactions AS SELECT user_id, item_id, "
        f"CAST(row_number() OVER (PARTITION BY user_id ORDER BY {keys}) - 1 AS BIGINT) AS position, "
        f"CAST({ts} AS DOUBLE) AS ts{''.join(', ' + q(c) for c in rest)} "
        f"FROM {source} ORDER BY user_id, position"
    )
    con.execute("DROP VIEW IF EXISTS t_known")
    con.execute("DROP VIEW t_interactions")
    con.execute("DROP TABLE raw_interactions")


def build_dataset(
    interactions: Source,
    items: Source,
    users: Source | None = None,
    mapping: ColumnMapping | None = None,
    drop_unknown_items: bool = False,
    max_bytes: int | None = None,
    transforms: dict[str, Sequence[str]] | None = None,
) -> Built:
    """Stage, validate and canonicalise; raises ValidationError with a specific message.

    ``transforms`` maps a table (interactions/items/users) to SELECTs over ``src`` applied in turn
    after staging (used by the known layouts). The caller owns ``Built.con`` and must close it.
    """
    m = mapping or ColumnMapping()
    con = duckdb.connect()
    try:
        sources = {"interactions": interactions, "items": items, "users": users}
        id_cols = {
            "interactions": [
                (m.user_col,) if m.user_col else USER_ALIASES,
                (m.item_col,) if m.item_col else ITEM_ALIASES,
            ],
            "items": [(m.item_col,) if m.item_col else ITEM_ALIASES],
            "users": [(m.user_col,) if m.user_col else USER_ALIASES],
        }
        for table, src in sources.items():
            if src is None:
                continue
            what = f"{table} ({label_of(src)})"
            stage(con, f"raw_{table}", src, what, id_cols[table], max_bytes)
            for sql in (transforms or {}).get(table, ()):
                apply_transform(con, f"raw_{table}", sql, what)
        kind, order_cols = _build_interactions(con, m, f"interactions ({label_of(interactions)})")
        _build_items(con, m, f"items ({label_of(items)})")
        if users is not None:
            _build_users(con, m, f"users ({label_of(users)})")
        dropped = _unknown_items(
            con, drop_unknown_items, f"interactions ({label_of(interactions)})"
        )
        n_orders = len(order_cols.split(",")) if order_cols else 0
        _finish_interactions(con, n_orders, "t_known" if dropped else "t_interactions")
        stats = con.execute(
            "SELECT (SELECT count(DISTINCT user_id) FROM interactions), "
            "(SELECT count(*) FROM items), (SELECT count(*) FROM interactions), "
            "(SELECT count(DISTINCT category) FROM items), "
            "(SELECT count(DISTINCT item_id) FROM interactions)"
        ).fetchall()[0]
    except BaseException:
        con.close()
        raise
    built = Built(con, kind, order_cols, *map(int, stats), has_users=users is not None)
    built.n_dropped = dropped
    if dropped:
        built.warnings.append(f"dropped {dropped} interaction(s) with unknown items")
    return built
