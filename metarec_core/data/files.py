"""Read user-supplied CSV/Parquet files (gzip allowed) into pandas through DuckDB, with clear errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from metarec_core.data.canonical import ITEM_ALIASES, USER_ALIASES
from metarec_core.errors import ValidationError

_PARQUET = (".parquet", ".parq", ".pq")
ID_COLUMNS = frozenset((*USER_ALIASES, *ITEM_ALIASES))


def file_kind(path: str | Path) -> str:
    """'parquet' or 'csv' from the file name (.csv, .tsv, .txt, .csv.gz, .parquet, ...)."""
    name = str(path).lower()
    if name.endswith(_PARQUET) or ("*" in name and name.rstrip("/").endswith(_PARQUET)):
        return "parquet"
    return "csv"


def scan_sql(path: str | Path, types: dict[str, str] | None = None) -> tuple[str, list]:
    """A DuckDB table expression (and its parameters) that scans the file without loading it;
    ``types`` fixes the type of some CSV columns (e.g. {"item_id": "VARCHAR"})."""
    if file_kind(path) == "parquet":
        return "read_parquet(?)", [str(path)]
    if types:
        return "read_csv(?, auto_detect=true, header=true, sample_size=-1, types=?)", [
            str(path),
            types,
        ]
    return "read_csv(?, auto_detect=true, header=true, sample_size=-1)", [str(path)]


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Load a CSV/Parquet file into a DataFrame. A CSV's user and item id columns (by their
    usual names) are read as text, so ids come back exactly as written.

    Raises ValidationError naming the file when it is missing, empty or unreadable.
    """
    p = Path(path)
    if "*" not in str(path):
        if not p.exists():
            raise ValidationError(f"file not found: {path}")
        if p.is_file() and p.stat().st_size == 0:
            raise ValidationError(f"file is empty: {path}")
        if p.is_file():
            from metarec_core.data.staging import check_complete

            problem = check_complete(p)
            if problem:
                raise ValidationError(f"cannot read {path}: {problem}")
    expr, params = scan_sql(path)
    con = duckdb.connect()
    try:
        if file_kind(path) == "csv":  # id columns as written: 0042, 29602.10, 20-digit numbers
            head = "DESCRIBE SELECT * FROM read_csv(?, auto_detect=true, header=true)"
            names = [r[0] for r in con.execute(head, [str(path)]).fetchall()]  # a sample's sniff
            ids = {c: "VARCHAR" for c in names if str(c).lower() in ID_COLUMNS}
            expr, params = scan_sql(path, ids)
        df = con.execute(f"SELECT * FROM {expr}", params).df()
    except duckdb.Error as exc:
        from metarec_core.data.staging import diagnose_csv

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if p.is_file() and file_kind(p) == "csv":
            first = diagnose_csv(p) or first
        raise ValidationError(f"cannot read {path}: {first}") from exc
    finally:
        con.close()
    if df.empty and len(df.columns) == 0:
        raise ValidationError(f"file has no columns: {path}")
    if columns is not None:
        require_columns(df, columns, what=str(path))
    return df


def require_columns(df: pd.DataFrame, columns: list[str], what: str = "input") -> None:
    """Raise ValidationError listing missing columns and the columns that were found."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{what}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}"
        )
