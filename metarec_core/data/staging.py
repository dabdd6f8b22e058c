"""Stage user files (CSV, gzip CSV, Parquet, globs, partitioned folders) or DataFrames as tables.

Staging happens in a scratch in-memory DuckDB that may read files; the store never does.
CSV id columns are read as text so that ids such as ``007`` keep their leading zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from metarec_core.data.files import file_kind
from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class RawSource:
    """A DuckDB table expression with parameters, e.g. ``read_csv(?, delim='\\t')``."""

    expr: str
    params: tuple = ()
    label: str = "input"


Source = str | Path | pd.DataFrame | RawSource


def find_column(names: Sequence[str], aliases: Sequence[str]) -> str | None:
    """The first of ``names`` matching an alias (case-insensitive), or None."""
    lower = {str(c).lower(): c for c in names}
    return next((lower[a] for a in aliases if a in lower), None)


# ---- staging ---------------------------------------------------------------------------------
def label_of(src: Source) -> str:
    if isinstance(src, pd.DataFrame):
        return "DataFrame"
    return src.label if isinstance(src, RawSource) else str(src)


def _file_size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def _scan(src: str | Path, varchar: Sequence[str]) -> tuple[str, list]:
    p = Path(src)
    target: Any = str(src)
    kind = file_kind(src)
    if p.is_dir():
        if any(p.rglob("*.parquet")):
            target, kind = str(p / "**" / "*.parquet"), "parquet"
        else:
            files = sorted(str(f) for f in p.iterdir() if f.name.endswith((".csv", ".csv.gz")))
            if not files:
                raise ValidationError(f"{src}: folder has no .parquet or .csv files")
            target, kind = files, "csv"
    if kind == "parquet":
        return "read_parquet(?, hive_partitioning=true, union_by_name=true)", [target]
    if varchar:
        types = {c: "VARCHAR" for c in varchar}
        return "read_csv(?, header=true, sample_size=-1, types=?)", [target, types]
    return "read_csv(?, header=true, sample_size=-1)", [target]


def _check_file(src: str | Path, what: str, max_bytes: int | None) -> None:
    p = Path(src)
    if "*" in str(src):
        return
    if not p.exists():
        raise ValidationError(f"{what}: file not found: {src}")
    size = _file_size(p)
    if size == 0:
        raise ValidationError(f"{what}: file is empty: {src}")
    if max_bytes is not None and size > max_bytes:
        raise ValidationError(
            f"{what}: {src} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit"
        )


def _sniff_columns(con: duckdb.DuckDBPyConnection, src: Source) -> list[str]:
    """Column names of a CSV source from a quick sample (to force id columns to text)."""
    if isinstance(src, pd.DataFrame | RawSource) or file_kind(src) == "parquet":
        return []
    try:
        expr, params = _scan(src, ())
        expr = expr.replace("sample_size=-1", "sample_size=2048")
        return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {expr}", params).fetchall()]
    except (duckdb.Error, ValidationError):
        return []


def stage(
    con: duckdb.DuckDBPyConnection,
    table: str,
    src: Source,
    what: str,
    id_aliases: Sequence[Sequence[str]] = (),
    max_bytes: int | None = None,
) -> None:
    """Load a source into scratch table ``table`` (file order kept in ``rowid``)."""
    label = label_of(src)
    if isinstance(src, pd.DataFrame):
        if src.empty:
            raise ValidationError(f"{what}: no rows ({label})")
        con.register("_metarec_df", src)
        expr, params = "_metarec_df", []
    elif isinstance(src, RawSource):
        expr, params = src.expr, list(src.params)
    else:
        _check_file(src, what, max_bytes)
        names = _sniff_columns(con, src)
        varchar = [c for aliases in id_aliases if (c := find_column(names, aliases))]
        expr, params = _scan(src, varchar)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {expr}", params)
    except duckdb.Error as exc:
        raise ValidationError(f"{what}: cannot read {label}: {_first_line(exc)}") from exc
    finally:
        if isinstance(src, pd.DataFrame):
            con.unregister("_metarec_df")
    if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0:
        raise ValidationError(f"{what}: no rows in {label}")


def apply_transform(con: duckdb.DuckDBPyConnection, table: str, sql: str, what: str) -> None:
    """Replace ``table`` by ``sql`` (a SELECT over a table called ``src``), keeping row order."""
    con.execute(f"ALTER TABLE {table} RENAME TO _metarec_src")
    try:
        con.execute(
            f"CREATE TABLE {table} AS WITH src AS (SELECT * FROM _metarec_src ORDER BY rowid) {sql}"
        )
    except duckdb.Error as exc:
        raise ValidationError(f"{what}: unexpected columns: {_first_line(exc)}") from exc
    con.execute("DROP TABLE _metarec_src")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
