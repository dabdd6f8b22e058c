"""Cached resources (store, encoder, models) and cached query results for the pages.

``st.cache_resource`` holds connections and models (one per process, keyed by path so tests with
their own data folder get their own); ``st.cache_data(ttl=...)`` holds query results.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from metarec_core import services
from metarec_core.config import Paths

TTL = 600  # seconds a cached query result lives


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


@st.cache_resource(show_spinner=False)
def encoder(name: str):
    from metarec_core.embed.encoder import get_encoder

    return get_encoder(name)


@st.cache_resource(show_spinner=False, max_entries=4)
def coldstart_model(path: str, created: float):
    """A loaded cold-start model (``created`` keys the cache so a replaced model reloads)."""
    return services.load_coldstart(Path(path))


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
    """Compile UMAP once per server process in the background (the first map is then fast)."""
    if os.environ.get("METAREC_UMAP_WARMUP", "1") == "0":
        return None
    from metarec_core.viz.projection import start_warm_up

    return start_warm_up()
