"""One entry point for engines: canonical frames from a store dataset, shared folder or path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metarec_core.config import SHARED_DATASETS_DIR, Paths
from metarec_core.data.known_layouts import LAYOUTS, build_layout
from metarec_core.data.pipeline import build_dataset
from metarec_core.data.schema import NAME_RE
from metarec_core.data.store import Store
from metarec_core.errors import MetaRecError, NotFoundError


def load_frames(
    name_or_path: str | Path, store: Store | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical ``(interactions, items)`` for a dataset name, shared key or folder.

    Lookup order: a dataset in ``store`` (or in the default store file when it exists and no
    store is given); a shared dataset key (amazon-beauty, instacart, ml-100k) read from
    SHARED_DATASETS_DIR without touching the store; a folder holding ``interactions.*`` and
    ``items.*`` (CSV, gzip CSV or Parquet). Raises NotFoundError when none matches.
    """
    key = str(name_or_path)
    if NAME_RE.match(key):
        frames = _from_store(key, store)
        if frames is not None:
            return frames
        if key in LAYOUTS and (SHARED_DATASETS_DIR / key).is_dir():
            return _frames(build_layout(key))
    folder = Path(name_or_path)
    if folder.is_dir():
        if folder.name in LAYOUTS:
            return _frames(build_layout(folder.name, folder))
        inter, items = _has(folder, "interactions"), _has(folder, "items")
        if inter is None or items is None:
            raise NotFoundError(f"{folder}: expected interactions.* and items.* files")
        return _frames(build_dataset(inter, items))
    raise NotFoundError(
        f"no dataset '{key}': not in the store, not a shared dataset "
        f"({', '.join(LAYOUTS)}) and not a folder"
    )


def _from_store(name: str, store: Store | None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if store is not None:
        return (store.interactions(name), store.items(name)) if store.has_dataset(name) else None
    if not Paths().db_path.exists():
        return None
    try:
        default = Store()
    except MetaRecError:  # in use by another process: fall through to files
        return None
    try:
        if default.has_dataset(name):
            return default.interactions(name), default.items(name)
        return None
    finally:
        default.close()


def _has(folder: Path, stem: str) -> Path | None:
    for ext in (".csv.gz", ".csv", ".parquet"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return None


def _frames(built) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return built.frame("interactions"), built.frame("items")
    finally:
        built.con.close()
