"""Import datasets into the store: generic files with a column mapping, or a known layout.

Both validate everything first in a scratch DuckDB (data/pipeline.py) and then write in one
transaction, so a failed import leaves the store exactly as it was (also with ``replace``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from metarec_core.data.known_layouts import build_layout, get_layout, layout_folder
from metarec_core.data.pipeline import Built, ColumnMapping, build_dataset
from metarec_core.data.schema import validate_name
from metarec_core.data.staging import Source
from metarec_core.data.store import DatasetInfo, Store
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)


def import_files(
    store: Store,
    name: str,
    interactions: Source,
    items: Source,
    users: Source | None = None,
    mapping: ColumnMapping | None = None,
    replace: bool = False,
    drop_unknown_items: bool = False,
    max_bytes: int | None = None,
    source: str | None = None,
    progress: Progress = no_progress,
) -> DatasetInfo:
    """Validate and import CSV/Parquet files (gzip, globs, folders) or DataFrames as ``name``.

    Args:
        store: the target store.
        name: dataset name (letters, digits, '-', '_').
        interactions, items, users: file paths or DataFrames; ``users`` is optional.
        mapping: which columns are user/item/order/text/title/category; None auto-detects.
        replace: replace an existing dataset of that name (atomically).
        drop_unknown_items: drop interactions whose item is not in the catalogue instead of failing.
        max_bytes: refuse any file larger than this (the app passes its upload limit).
        source: free text recorded in the registry (default: the interactions path).
    Raises:
        ValidationError, ConflictError: with a specific message; the store is unchanged.
    """
    validate_name(name)
    store.check_can_write(name, replace)
    progress(ProgressEvent("import", 0, 3, "reading and validating"))
    built = build_dataset(
        interactions, items, users, mapping, drop_unknown_items, max_bytes=max_bytes
    )
    label = source or (str(interactions) if not hasattr(interactions, "columns") else "DataFrame")
    return store_built(store, name, built, label, replace, progress)


def import_layout(
    store: Store,
    layout: str,
    path: str | Path | None = None,
    name: str | None = None,
    replace: bool = False,
    progress: Progress = no_progress,
) -> DatasetInfo:
    """Import a known folder (amazon-beauty, instacart, ml-100k); default SHARED_DATASETS_DIR."""
    get_layout(layout)
    name = validate_name(name or layout)
    store.check_can_write(name, replace)
    folder = layout_folder(layout, path)
    progress(ProgressEvent("import", 0, 3, f"reading {folder}"))
    built = build_layout(layout, folder)
    return store_built(store, name, built, f"{layout}: {folder}", replace, progress)


def _arrow_stream(built: Built, table: str):
    """A scratch table as a streaming Arrow reader (own cursor, so the three can be open at once).

    Streaming keeps the peak memory of a 10M-row import to DuckDB's buffers instead of a whole
    Arrow copy of the table beside the scratch database and the store.
    """
    cur = built.con.cursor()
    return cur.execute(f"SELECT * FROM {table}").fetch_record_batch(122_880)


def store_built(
    store: Store, name: str, built: Built, source: str, replace: bool, progress: Progress
) -> DatasetInfo:
    try:
        for w in built.warnings:
            log.warning("%s: %s", name, w)
        progress(ProgressEvent("import", 1, 3, "writing to the store"))
        info = DatasetInfo(
            name=name,
            source=source,
            order_kind=built.order_kind,
            order_cols=built.order_cols,
            n_users=built.n_users,
            n_items=built.n_items,
            n_interactions=built.n_interactions,
            n_categories=built.n_categories,
            n_items_with_interactions=built.n_items_with_interactions,
            has_users=built.has_users,
        )
        tables = {
            t: _arrow_stream(built, t)
            for t in ("interactions", "items", "users")
            if t != "users" or built.has_users
        }
        stored = store.write_dataset(info, tables, replace=replace)
    finally:
        built.con.close()
    progress(ProgressEvent("import", 3, 3, f"{name}: {info.n_interactions:,} interactions"))
    return stored
