"""A Store whose dataset tables are DuckDB views over Parquet files: the pages' queries, no import.

``parquet_store(name, interactions_glob, items_path)`` returns an object that the helpers of
``metarec_core.data.queries`` and ``metarec_core.services`` accept like a ``Store``: a registry
row in ``main.datasets`` and a schema ``"<name>"`` whose ``interactions``/``items`` are views
over ``read_parquet`` (a file, a glob, or a hive-partitioned folder). The same code reads
``s3://bucket/logs/*/*.parquet`` once DuckDB's httpfs extension is loaded and credentials are set
(``INSTALL httpfs; LOAD httpfs; CREATE SECRET (TYPE s3, PROVIDER credential_chain)``).

Unlike the real store this connection has external file access switched on (it must read the
files), so it is for trusted files only, never for analyst SQL from the UI. It lives in
``benchmarks/`` as the reference for a ``Store.attach_parquet`` in the data layer.
"""

from __future__ import annotations

import duckdb

from metarec_core.data.schema import REGISTRY_DDL, STATS_TABLES, quote, validate_name
from metarec_core.data.store import Store


def _literal(path: str) -> str:
    return "'" + str(path).replace("'", "''") + "'"  # views cannot take prepared parameters


def parquet_store(
    name: str,
    interactions_glob: str,
    items_path: str,
    order_kind: str = "timestamp",
    threads: int | None = None,
) -> Store:
    """A read-only Store-like object answering queries straight from Parquet (see module doc).

    The interaction files need user_id, item_id, position and timestamp (or a numeric ts);
    the items file needs item_id, title and category (the synthetic generator writes both).
    """
    validate_name(name)
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(REGISTRY_DDL)
    con.execute(f"CREATE SCHEMA {quote(name)}")
    src = f"read_parquet({_literal(interactions_glob)}, hive_partitioning = true)"
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    ts = "epoch(timestamp)::DOUBLE" if "timestamp" in cols else "ts::DOUBLE"
    event = ", event" if "event" in cols else ""
    con.execute(
        f"CREATE VIEW {quote(name)}.interactions AS SELECT user_id::VARCHAR AS user_id, "
        f"item_id::VARCHAR AS item_id, position::BIGINT AS position, {ts} AS ts{event} FROM {src}"
    )
    con.execute(
        f"CREATE VIEW {quote(name)}.items AS SELECT item_id::VARCHAR AS item_id, title, "
        f"title AS text, category, * EXCLUDE (item_id, title, category) "
        f"FROM read_parquet({_literal(items_path)})"
    )
    for table in ("user_stats", "item_stats"):  # computed on the fly: there is no import step
        select = STATS_TABLES[table].format(inter=f"{quote(name)}.interactions")
        con.execute(f"CREATE VIEW {quote(name)}.{table} AS {select}")
    counts = con.execute(
        f"SELECT (SELECT count(DISTINCT user_id) FROM {quote(name)}.interactions), "
        f"(SELECT count(*) FROM {quote(name)}.items), "
        f"(SELECT count(*) FROM {quote(name)}.interactions), "
        f"(SELECT count(DISTINCT category) FROM {quote(name)}.items), "
        f"(SELECT count(DISTINCT item_id) FROM {quote(name)}.interactions)"
    ).fetchall()[0]
    con.execute(
        "INSERT INTO main.datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, false, now())",
        [name, f"parquet: {interactions_glob}", order_kind, "timestamp", *counts],
    )
    return Store.over_connection(con)  # the real class, with a connection that may read files
