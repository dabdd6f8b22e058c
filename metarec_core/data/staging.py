"""Stage user files (CSV, gzip CSV, Parquet, globs, partitioned folders) or DataFrames as tables.

Staging happens in a scratch in-memory DuckDB that may read files; the store never does.
CSV id columns are read as text so that ids such as ``007`` keep their leading zeros.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from metarec_core.data.files import file_kind
from metarec_core.errors import ValidationError

MAX_LINE_BYTES = 2_000_000  # DuckDB's default max_line_size for CSV
_CHUNK = 1 << 20
_PAR1 = b"PAR1"


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
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        problem = check_complete(f) or (long_line(f) if file_kind(f) == "csv" else None)
        if problem:
            raise ValidationError(f"{what}: cannot read {f}: {problem}")


def long_line(path: Path) -> str | None:
    """The first line over DuckDB's CSV line limit, if any (checked in 1 MB chunks, because
    DuckDB takes tens of seconds to give up on a line of 20 MB)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    line_no, current = 1, 0
    with opener(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            parts = chunk.split(b"\n")
            for n, part in enumerate(parts):
                current += len(part)
                if current > MAX_LINE_BYTES:
                    return (
                        f"line {line_no} is over the {MAX_LINE_BYTES / 1e6:g} MB line limit; "
                        "shorten that field"
                    )
                if n < len(parts) - 1:
                    line_no, current = line_no + 1, 0
    return None


def check_complete(path: Path) -> str | None:
    """Why a gzip or Parquet file is incomplete (truncated, damaged), or None when it is whole.

    A truncated gzip stream otherwise reads as a shorter file with a broken last row, so the
    whole stream is decompressed once and its CRC checked; Parquet needs its footer.
    """
    name = path.name.lower()
    if name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(_CHUNK):
                    pass
        except EOFError:
            return "it is a truncated gzip file (the stream ends early); copy it again"
        except (OSError, zlib.error) as exc:
            return f"it is not a valid gzip file ({_first_line(exc)})"
    elif file_kind(path) == "parquet":
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(max(size - 8, 0))
            tail = fh.read(8)
        if head != _PAR1 or len(tail) < 8 or tail[4:] != _PAR1:
            return "it is not a complete Parquet file (no Parquet header or footer: truncated?)"
        if int.from_bytes(tail[:4], "little") > size - 12:
            return "it is not a complete Parquet file (its footer is damaged)"
    return None


def diagnose_csv(path: Path) -> str | None:
    """The first line of a CSV file that cannot be read cleanly, and why (None: none found).

    Used after DuckDB refused or misread the file, to replace its generic message with the
    line and the reason: not UTF-8, a line over DuckDB's line limit, or the wrong number of
    fields. The delimiter is the most frequent of , ; tab | in the header line.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    delim = ","
    try:
        with opener(path, "rb") as raw:
            for n, line in enumerate(raw, start=1):
                if n == 1:
                    delim = max(",;\t|", key=lambda d: line.count(d.encode()))
                if len(line) > MAX_LINE_BYTES:
                    return (
                        f"line {n} is {len(line) / 1e6:.1f} MB long, over the "
                        f"{MAX_LINE_BYTES / 1e6:g} MB line limit; shorten that field"
                    )
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (
                        f"line {n} is not UTF-8 text (byte 0x{line[exc.start]:02x}); "
                        "save the file as UTF-8"
                    )
        csv.field_size_limit(MAX_LINE_BYTES)
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter=delim)
            width = None
            for row in reader:
                if width is None:
                    width = len(row)
                elif len(row) != width and any(row):
                    return f"line {reader.line_num} has {len(row)} field(s), the header has {width}"
    except csv.Error as exc:
        return f"is not valid CSV: {exc}"
    except (OSError, EOFError) as exc:
        return f"cannot be read: {_first_line(exc)}"
    return None


def _header_width(path: Path) -> int:
    """Fields in the header line, split on its most frequent delimiter."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as raw:
        line = raw.readline(MAX_LINE_BYTES).rstrip(b"\r\n")
    return 1 + max(line.count(d) for d in (b",", b";", b"\t", b"|"))


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
    names: list[str] = []
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
        reason = _csv_reason(src) or _first_line(exc)
        raise ValidationError(f"{what}: cannot read {label}: {reason}") from exc
    finally:
        if isinstance(src, pd.DataFrame):
            con.unregister("_metarec_df")
    if con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0:
        reason = _csv_reason(src)
        raise ValidationError(
            f"{what}: {label} {reason}" if reason else f"{what}: no rows in {label}"
        )
    path = _csv_file(src)
    n_cols = len(con.execute(f"DESCRIBE {table}").fetchall())
    if path and (not names or n_cols != _header_width(path)):  # DuckDB may have misread it
        reason = diagnose_csv(path)
        if reason:
            raise ValidationError(f"{what}: {label} {reason}")


def _csv_file(src: Source) -> Path | None:
    """The path of a single CSV file source (None for anything else)."""
    if isinstance(src, pd.DataFrame | RawSource) or "*" in str(src):
        return None
    p = Path(src)
    return p if p.is_file() and file_kind(p) == "csv" else None


def _csv_reason(src: Source) -> str | None:
    path = _csv_file(src)
    return diagnose_csv(path) if path else None


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
