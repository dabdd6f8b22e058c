"""Cached resources (store, encoder, models) and cached query results for the pages.

``st.cache_resource`` holds connections and models (one per process, keyed by path so tests with
their own data folder get their own); ``st.cache_data(ttl=...)`` holds query results.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from metarec_core import services
from metarec_core.config import Paths
from metarec_core.errors import ConflictError

TTL = 600  # seconds a cached query result lives
log = logging.getLogger("metarec.app")


def paths() -> Paths:
    """Where this app keeps its files (METAREC_DATA_DIR / METAREC_DB decide)."""
    return Paths()


def encoder_name() -> str:
    """The text encoder the app uses: METAREC_ENCODER (tests: "fake"), default MiniLM."""
    return os.environ.get("METAREC_ENCODER", "minilm")


@st.cache_resource(show_spinner=False)
def _store(db_path: str, exists: bool):
    return services.open_store(Paths()) if exists else None


def get_store():
    """The read-only store, or None before anything has been imported."""
    p = str(paths().db_path)
    return _store(p, Path(p).exists())


def close_store() -> None:
    """Close the cached store (before the app itself writes to it) and forget it."""
    store = get_store()
    if store is not None:
        store.close()
    _store.clear()
    st.cache_data.clear()


class LazyEncoder:
    """Stands in for the named text encoder and loads it on the first ``encode`` only: with the
    embeddings cached (the usual case once the demo model is trained) pages never pay the several
    seconds that loading MiniLM costs."""

    def __init__(self, name: str) -> None:
        from metarec_core.embed.encoder import MINILM_ID, FakeEncoder, MiniLMEncoder

        self.name = name
        fake = name.startswith("fake")
        self.model_id = FakeEncoder.model_id if fake else MiniLMEncoder.model_id
        self.dim = FakeEncoder().dim if fake else MiniLMEncoder.dim
        if not fake and name not in ("minilm", MINILM_ID):
            raise ValueError(f"unknown encoder '{name}'")

    def encode(self, texts, batch_size: int = 64, progress=None):
        from metarec_core.embed.encoder import get_encoder
        from metarec_core.types import no_progress

        return get_encoder(self.name).encode(texts, batch_size, progress or no_progress)


@st.cache_resource(show_spinner=False)
def encoder(name: str) -> LazyEncoder:
    """The app's text encoder (one per process; the model itself loads when first needed)."""
    return LazyEncoder(name)


def coldstart_model(path: str, created: float, dataset: str | None = None):
    """The cold-start model at ``path``, refused (ConflictError, one line) when its catalogue no
    longer matches the items of its dataset (``dataset``, else the one it was trained for), e.g.
    after ``import --replace`` brought another catalogue: it would rank the wrong items."""
    model = _coldstart_model(path, created)
    dataset = dataset or _dataset_of(path)
    store = get_store()
    if dataset and store is not None and store.has_dataset(dataset):
        problem = _catalogue_problem(path, created, str(paths().db_path), dataset)
        if problem:
            raise ConflictError(problem)
    return model


def _dataset_of(path: str) -> str | None:
    """The dataset a listed model was trained on (None for a model the app does not list)."""
    target = Path(path).resolve()
    for info in services.list_models(paths(), kind="coldstart"):
        if info.path.resolve() == target:
            return info.dataset or None
    return None


@st.cache_data(ttl=TTL, show_spinner=False)
def _catalogue_problem(path: str, created: float, db: str, dataset: str) -> str | None:
    """Why the model cannot serve ``dataset``'s catalogue (None when it can); cached per model
    and store, and cleared with the other query results when the app writes to the store."""
    try:
        _coldstart_model(path, created).check_catalogue(catalogue(db, dataset))
    except ConflictError as exc:
        return f"model {Path(path).name} cannot serve dataset '{dataset}': {exc}"
    return None


@st.cache_resource(show_spinner=False, max_entries=4)
def _coldstart_model(path: str, created: float):
    """A loaded cold-start model (``created`` keys the cache so a replaced model reloads), warmed
    up with one tiny recommendation: its item tables are built lazily (~1.5 s on ml-100k), and
    that belongs to loading the page, not to the first press of "Adapt"."""
    model = services.load_coldstart(Path(path))
    try:
        first = next(iter(model.index))
        support = pd.DataFrame({"user_id": ["warm-up"], "item_id": [first], "position": [0]})
        model.recommend(support, top=10, method="adapted")
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
        log.warning("cold-start model warm-up failed", exc_info=True)
    return model


@st.cache_resource(show_spinner=False, max_entries=2)
def other_shop_model(path: str, created: float, db: str, dataset: str):
    """The cold-start model at ``path`` (trained on another shop) serving ``dataset``'s
    catalogue through item text; one per (model, dataset) and process."""
    return services.serve_from_other_shop(Path(path), catalogue(db, dataset))


@st.cache_resource(show_spinner=False, max_entries=4)
def category_model(path: str, created: float):
    return services.load_category_model(Path(path))


@st.cache_data(ttl=TTL, show_spinner=False)
def overview(db: str, dataset: str, cold_k: int) -> services.Overview:
    return services.overview(get_store(), dataset, cold_k)


@st.cache_data(ttl=TTL, show_spinner=False)
def catalogue(db: str, dataset: str) -> pd.DataFrame:
    return services.catalogue(get_store(), dataset)


@st.cache_data(ttl=TTL, show_spinner=False)
def interactions(db: str, dataset: str) -> pd.DataFrame:
    return get_store().interactions(dataset)


@st.cache_data(ttl=TTL, show_spinner=False)
def explore(db: str, dataset: str, category, activity: str, ts_range, limit: int):
    return services.explore(get_store(), dataset, category, activity, ts_range, limit)


@st.cache_data(ttl=TTL, show_spinner=False)
def categories_of(db: str, dataset: str) -> list[str]:
    items = catalogue(db, dataset)
    return sorted(items["category"].dropna().astype(str).unique().tolist())


@st.cache_resource(show_spinner=False)
def umap_warm_up():
    """Once per server process, in the background after the first page has drawn: import torch
    and the cold-start engine (the Cold-Start Lab's first visit then skips ~3 s) and compile
    UMAP's numba kernels (the first map then skips ~15-45 s)."""
    if os.environ.get("METAREC_UMAP_WARMUP", "1") == "0":
        return None
    from metarec_core.viz.projection import start_warm_up

    def _engines() -> None:
        time.sleep(3.0)  # let the first page draw first
        try:
            import metarec_core.coldstart.model  # noqa: F401 - imports torch
        except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
            log.warning("engine warm-up failed", exc_info=True)

    threading.Thread(target=_engines, name="engine-warm-up", daemon=True).start()
    return start_warm_up()
