"""The DuckDB store: one database file holding any number of named datasets (see data/schema.py).

The store's DuckDB instance runs with external file access disabled: it only ever touches its own
file. Importers read user files in a separate scratch DuckDB (data/pipeline.py) and hand the
finished tables over as Arrow streams, so the analyst read path (``query``) cannot reach files.

Every method opens its own cursor, so one ``Store`` may be shared between threads (Streamlit
sessions); DuckDB allows one read-write process per file, so a second process (e.g. the CLI while
the app runs) gets a clear "in use" error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from metarec_core.config import Paths
from metarec_core.data.schema import (
    REGISTRY_COLUMNS,
    REGISTRY_DDL,
    STATS_TABLES,
    TABLES,
    quote,
    table_ref,
    validate_name,
)
from metarec_core.errors import ConflictError, MetaRecError, NotFoundError, ValidationError

log = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT = "2GB"
DUCKDB_MAGIC = b"DUCK"  # bytes 8-12 of every DuckDB database file
_DATA_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".gz", ".parquet", ".parq", ".pq", ".json", ".jsonl")


@dataclass(frozen=True)
class DatasetInfo:
    """One registry row: what ``list_datasets`` shows for a dataset."""

    name: str
    source: str
    order_kind: str  # "timestamp" | "sequence" | "file"
    order_cols: str  # comma-separated source columns that define the order
    n_users: int
    n_items: int
    n_interactions: int
    n_categories: int
    n_items_with_interactions: int
    has_users: bool
    created_at: datetime | None = None


class Store:
    """Named datasets in one DuckDB file. ``Store(":memory:")`` for tests.

    Args:
        path: database file; None means ``Paths().db_path`` (env METAREC_DB overrides).
        read_only: open the file read-only (several processes may then read it at once).
    """

    def __init__(self, path: str | Path | None = None, read_only: bool = False) -> None:
        self.path = str(path) if path is not None else str(Paths().db_path)
        self.read_only = read_only
        if self.path != ":memory:":
            if read_only and not Path(self.path).exists():
                raise NotFoundError(f"store not found: {self.path}")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._attach(_connect(self.path, read_only))
        if not read_only:
            self._con.execute(REGISTRY_DDL)

    @classmethod
    def over_connection(cls, con: duckdb.DuckDBPyConnection, read_only: bool = True) -> Store:
        """A Store over a connection someone else configured (e.g. views over Parquet files)."""
        store = cls.__new__(cls)
        store.path, store.read_only = ":memory:", read_only
        store._attach(con)
        return store

    def _attach(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._catalog = str(con.execute("SELECT current_database()").fetchall()[0][0])

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (the file stays)."""
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the store (one per thread); prefer the methods below."""
        return self._con.cursor()

    def _fetch_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        cur = self._con.cursor()
        try:
            return cur.execute(sql, list(params or [])).df()
        finally:
            cur.close()

    # ---- registry --------------------------------------------------------------------------
    def list_datasets(self) -> pd.DataFrame:
        """One row per dataset: name, source, order_kind, counts, created_at (sorted by name)."""
        if not self._has_registry():
            return pd.DataFrame(columns=list(REGISTRY_COLUMNS))
        cols = ", ".join(REGISTRY_COLUMNS)
        return self._fetch_df(f"SELECT {cols} FROM main.datasets ORDER BY name")

    def has_dataset(self, name: str) -> bool:
        """True when a dataset of that name (case-insensitive) exists."""
        return self._registered_name(name) is not None

    def info(self, name: str) -> DatasetInfo:
        """The registry row of a dataset (NotFoundError when absent)."""
        real = self._resolve(name)
        cols = ", ".join(REGISTRY_COLUMNS)
        row = self._fetch_df(f"SELECT {cols} FROM main.datasets WHERE name = ?", [real])
        rec = row.iloc[0].to_dict()
        rec["created_at"] = pd.Timestamp(rec["created_at"]).to_pydatetime()
        for k in ("n_users", "n_items", "n_interactions", "n_categories"):
            rec[k] = int(rec[k])
        rec["n_items_with_interactions"] = int(rec["n_items_with_interactions"])
        rec["has_users"] = bool(rec["has_users"])
        return DatasetInfo(**rec)

    def _has_registry(self) -> bool:
        cur = self._con.cursor()
        try:
            return bool(
                cur.execute(
                    "SELECT count(*) FROM duckdb_tables() "
                    "WHERE schema_name = 'main' AND table_name = 'datasets' "
                    "AND database_name = current_database()"
                ).fetchall()[0][0]
            )
        finally:
            cur.close()

    def _registered_name(self, name: str) -> str | None:
        validate_name(name)
        if not self._has_registry():
            return None
        df = self._fetch_df("SELECT name FROM main.datasets WHERE lower(name) = lower(?)", [name])
        return None if df.empty else str(df.iloc[0, 0])

    def _resolve(self, name: str) -> str:
        real = self._registered_name(name)
        if real is None:
            names = ", ".join(self.list_datasets()["name"].astype(str)) or "none"
            raise NotFoundError(f"dataset '{name}' not found (available: {names})")
        return real

    # ---- reading ---------------------------------------------------------------------------
    def ref(self, name: str, table: str) -> str:
        """Fully qualified ``"catalog"."dataset".table`` of an existing dataset (for SQL)."""
        return self._qualified(self._resolve(name), table)

    def has_table(self, name: str, table: str) -> bool:
        """Whether an existing dataset has ``table`` (the stats tables are absent from views over
        Parquet and from stores written before they existed)."""
        rows = self._con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? "
            "AND table_schema = ? AND table_name = ?",
            [self._catalog, self._resolve(name), table],
        ).fetchall()
        return bool(rows)

    def schema_path(self, name: str) -> str:
        """The ``"catalog"."dataset"`` of an existing dataset (for a search path)."""
        return f"{quote(self._catalog)}.{quote(self._resolve(name))}"

    def _qualified(self, name: str, table: str | None = None) -> str:
        # dataset schemas are always qualified: a dataset named like the catalog
        # (the file stem, e.g. "metarec") would otherwise be ambiguous
        schema = f"{quote(self._catalog)}.{quote(validate_name(name))}"
        return schema if table is None else f"{quote(self._catalog)}.{table_ref(name, table)}"

    def interactions(self, name: str, user_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Canonical interactions in (user_id, position) order; optionally only some users."""
        ref = self.ref(name, "interactions")
        if user_ids is None:
            return self._fetch_df(f"SELECT * FROM {ref}")
        return self._fetch_df(
            f"SELECT * FROM {ref} WHERE list_contains(?, user_id) ORDER BY user_id, position",
            [[str(u) for u in user_ids]],
        )

    def items(self, name: str) -> pd.DataFrame:
        """Canonical items: item_id, title, text, category, extra attributes."""
        return self._fetch_df(f"SELECT * FROM {self.ref(name, 'items')}")

    def users(self, name: str) -> pd.DataFrame | None:
        """The users table, or None when the dataset was imported without one."""
        real = self._resolve(name)
        if not self.info(real).has_users:
            return None
        return self._fetch_df(f"SELECT * FROM {self._qualified(real, 'users')}")

    def query(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        dataset: str | None = None,
        limit: int | None = 10_000,
    ) -> pd.DataFrame:
        """Analyst SQL: one read-only SELECT, no file access (see data/queries.py)."""
        from metarec_core.data.queries import run_analyst_sql

        return run_analyst_sql(self, sql, params=params, dataset=dataset, limit=limit).frame

    # ---- writing (used by the importers) ---------------------------------------------------
    @contextmanager
    def _transaction(self):
        cur = self._con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def check_can_write(self, name: str, replace: bool) -> None:
        """Raise before any work when ``name`` exists and ``replace`` is False."""
        if self.read_only:
            raise MetaRecError(f"the store {self.path} is open read-only")
        existing = self._registered_name(name)
        if existing is not None and not replace:
            raise ConflictError(
                f"dataset '{existing}' already exists; choose another name or replace it "
                "(--replace / replace=True)"
            )

    def write_dataset(
        self, info: DatasetInfo, tables: Mapping[str, Any], replace: bool = False
    ) -> DatasetInfo:
        """Create (or atomically replace) a dataset from Arrow tables/readers or DataFrames.

        Everything happens in one transaction: on any error the store is exactly as before.
        """
        validate_name(info.name)
        self.check_can_write(info.name, replace)
        unknown = set(tables) - set(TABLES)
        if unknown or not {"interactions", "items"} <= set(tables):
            raise ValueError(f"tables must be interactions, items[, users]; got {sorted(tables)}")
        created = datetime.now().replace(microsecond=0)
        with self._transaction() as cur:
            old = cur.execute(
                "SELECT name FROM main.datasets WHERE lower(name) = lower(?)", [info.name]
            ).fetchall()
            if old and not replace:  # another writer got there first
                raise ConflictError(f"dataset '{old[0][0]}' already exists")
            for (old_name,) in old:
                cur.execute(f"DROP SCHEMA IF EXISTS {self._qualified(old_name)} CASCADE")
                cur.execute("DELETE FROM main.datasets WHERE name = ?", [old_name])
            cur.execute(f"CREATE SCHEMA {self._qualified(info.name)}")
            for table, data in tables.items():
                cur.register("_metarec_import_src", data)
                try:
                    cur.execute(
                        f"CREATE TABLE {self._qualified(info.name, table)} AS "
                        "SELECT * FROM _metarec_import_src"
                    )
                finally:
                    cur.unregister("_metarec_import_src")
            inter = self._qualified(info.name, "interactions")
            for table, select in STATS_TABLES.items():
                cur.execute(
                    f"CREATE TABLE {self._qualified(info.name, table)} AS "
                    + select.format(inter=inter)
                )
            values = [getattr(info, c) for c in REGISTRY_COLUMNS[:-1]] + [created]
            marks = ", ".join("?" for _ in REGISTRY_COLUMNS)
            cur.execute(f"INSERT INTO main.datasets VALUES ({marks})", values)
        self._checkpoint()
        log.info("stored dataset %s (%d interactions)", info.name, info.n_interactions)
        return self.info(info.name)

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset and its registry row (NotFoundError when absent)."""
        real = self._resolve(name)
        with self._transaction() as cur:
            cur.execute(f"DROP SCHEMA IF EXISTS {self._qualified(real)} CASCADE")
            cur.execute("DELETE FROM main.datasets WHERE name = ?", [real])
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self.path != ":memory:":
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # another cursor is mid-transaction; the WAL keeps data
                log.debug("checkpoint skipped: %s", exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def memory_limit() -> str:
    """The store instance's DuckDB memory limit: env METAREC_DUCKDB_MEMORY, default 2GB.

    It caps every query on the store, analyst SQL included (sorts and joins spill to disk
    below it; a query that cannot is refused with DuckDB's out-of-memory error).
    """
    return os.environ.get("METAREC_DUCKDB_MEMORY", DEFAULT_MEMORY_LIMIT)


def _check_is_duckdb(path: str) -> None:
    """Refuse an existing file that is not a DuckDB database (e.g. ``--db data.csv``)."""
    p = Path(path)
    if p.name.lower().endswith(_DATA_FILE_SUFFIXES):
        raise ValidationError(
            f"the store {path} looks like a data file; give --db a .duckdb file "
            "(import CSV/Parquet files with `import --interactions ... --items ...`)"
        )
    if p.is_dir():
        raise ValidationError(f"the store {path} is a folder, not a DuckDB file")
    if not p.exists() or p.stat().st_size == 0:
        return
    with p.open("rb") as fh:
        head = fh.read(16)
    if len(head) < 12 or head[8:12] != DUCKDB_MAGIC:
        raise ValidationError(
            f"the store {path} is not a DuckDB database; give --db a .duckdb file "
            "(import CSV/Parquet files with `import --interactions ... --items ...`)"
        )


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the store's DuckDB instance (no external file access) with one-line errors."""
    if path != ":memory:":
        _check_is_duckdb(path)
    config = {"enable_external_access": False, "memory_limit": memory_limit()}
    try:
        return duckdb.connect(path, read_only=read_only, config=config)
    except duckdb.IOException as exc:
        raise MetaRecError(
            f"cannot open the store {path}: it is in use by another process "
            f"(is the app running?) or unreadable ({_first_line(exc)})"
        ) from exc
    except duckdb.ConnectionException as exc:
        if "different configuration" not in str(exc):
            raise MetaRecError(f"cannot open the store {path}: {_first_line(exc)}") from exc
        raise MetaRecError(
            f"cannot open the store {path} {'read-only' if read_only else 'for writing'}: it is "
            "already open in this process in the other mode; close that Store first"
        ) from exc
    except duckdb.Error as exc:
        raise MetaRecError(f"cannot open the store {path}: {_first_line(exc)}") from exc
