"""Shared helpers for the app tests: a tiny fixture dataset in a temp store, tiny trained models.

The dataset is written through the real importer; models are trained through the real job runner
(inline, in the test process) with the fake encoder and tiny configs. Nothing of ours is mocked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

DATASET = "tiny"
GENRES = {
    "Fruit": ["apple", "banana", "cherry", "mango", "pear", "plum", "grape", "lemon"],
    "Tools": ["hammer", "wrench", "drill", "saw", "pliers", "chisel", "level", "clamp"],
    "Books": ["novel", "atlas", "poetry", "memoir", "thriller", "biography", "comic", "essay"],
    "Music": ["guitar", "piano", "violin", "drum", "flute", "cello", "banjo", "harp"],
    "Garden": ["hose", "rake", "shovel", "seeds", "planter", "mower", "trowel", "sprinkler"],
    "Toys": ["puzzle", "robot", "doll", "kite", "yoyo", "blocks", "marbles", "teddy"],
}
ENV = {"METAREC_ENCODER": "fake", "METAREC_AUTOTRAIN": "0"}


def fixture_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~96 items in 6 categories; 80 users who each favour one or two categories."""
    rng = np.random.default_rng(seed)
    rows, n = [], 0
    for cat, words in GENRES.items():
        for w in words:
            for variant in ("classic", "deluxe"):
                n += 1
                rows.append((str(n), f"{variant} {w} {cat.lower()}", cat))
    items = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    cats = list(GENRES)
    inter = []
    for u in range(80):
        fav = rng.choice(cats, size=2, replace=False)
        pool = items[items["category"].isin(fav)]["item_id"].to_numpy()
        n_int = int(rng.integers(6, 25))
        picks = rng.choice(pool, size=min(n_int, len(pool)), replace=False)
        for pos, it in enumerate(picks):
            inter.append((f"u{u}", it, 1_000_000 + pos * 3600 + u))
    interactions = pd.DataFrame(inter, columns=["user_id", "item_id", "timestamp"])
    return interactions, items


def build_store(data_dir: Path) -> None:
    """Write the fixture dataset into ``data_dir``'s store through the real importer."""
    from metarec_core.config import Paths
    from metarec_core.data.importers import import_files
    from metarec_core.data.store import Store

    inter, items = fixture_frames()
    with Store(Paths(data_dir).db_path) as store:
        import_files(store, DATASET, inter, items)


def train_models(data_dir: Path, coldstart: bool = True, categories: bool = True) -> None:
    """Tiny models through the real job path (run inline, not in a child process)."""
    from metarec_core import services
    from metarec_core.config import Paths
    from metarec_core.jobs import run_job

    paths = Paths(data_dir)
    store = services.open_store(paths)
    tasks = []
    if coldstart:
        tasks.append(("coldstart", "tiny-coldstart", dict(services.TEST_COLDSTART)))
    if categories:
        tasks.append(("categories", "tiny-categories", {"episodes": 20, "rank": 8, "n_way": 3}))
    from metarec_core.jobs import JobSpec, TrainTask, start_job

    spec = JobSpec(DATASET, tuple(TrainTask(k, n, c) for k, n, c in tasks), "cpu", "fake")
    frames = {"interactions": store.interactions(DATASET), "items": store.items(DATASET)}
    store.close()
    start_job(spec, frames, paths, runner=run_job)


class env:
    """Context manager setting environment variables (restored on exit)."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.old: dict[str, str | None] = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.old[k] = os.environ.get(k)
            os.environ[k] = v
        return self

    def __exit__(self, *exc):
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def force_navigation_mode() -> None:
    """Make AppTest behave like the running server after its first script run.

    AppTest resets ``PagesManager.uses_pages_directory`` before every run, and because our
    screens live in ``pages/`` Streamlit would treat each run as an old-style (v1) multipage app
    and execute a switched-to page *without* app.py. The server flips the flag off for good as
    soon as app.py calls ``st.navigation``; this does the same for every AppTest run.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import app_test

    if getattr(app_test.PagesManager, "_metarec_v2", False):
        return

    class _NavigationPagesManager(PagesManager):
        _metarec_v2 = True

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    app_test.PagesManager = _NavigationPagesManager


# ---- pytest fixtures (import them into a test module to use them) -------------------------------
import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def app_data_master(tmp_path_factory) -> Path:
    """A data folder with the fixture dataset and tiny trained models (built once per session)."""
    d = tmp_path_factory.mktemp("metarec-app")
    with env(METAREC_DATA_DIR=str(d), **ENV):
        build_store(d)
        train_models(d)
    return d


@pytest.fixture
def app_data(app_data_master, tmp_path, monkeypatch) -> Path:
    """A private copy of the master data folder, with the environment pointing at it."""
    return private_copy(app_data_master, tmp_path, monkeypatch)


OTHER_SHOP = "tiny-b"  # a second shop: other ids, the same kinds of products, its own model


@pytest.fixture(scope="session")
def two_shops_master(app_data_master, tmp_path_factory) -> Path:
    """The master data folder plus OTHER_SHOP and its cold-start model (built once per session)."""
    from metarec_core import services
    from metarec_core.config import Paths
    from metarec_core.data.importers import import_files
    from metarec_core.data.store import Store
    from metarec_core.jobs import JobSpec, TrainTask, run_job, start_job

    d = tmp_path_factory.mktemp("two-shops") / "data"
    shutil.copytree(app_data_master, d, ignore=shutil.ignore_patterns("*.lock", "*.wal"))
    inter, items = fixture_frames(seed=1)
    items = items.assign(item_id="b" + items["item_id"])
    inter = inter.assign(item_id="b" + inter["item_id"], user_id="b" + inter["user_id"])
    with env(METAREC_DATA_DIR=str(d), **ENV):
        paths = Paths(d)
        with Store(paths.db_path) as store:
            import_files(store, OTHER_SHOP, inter, items)
        task = TrainTask("coldstart", "shop-b-coldstart", dict(services.TEST_COLDSTART))
        store = services.open_store(paths)
        frames = {"interactions": store.interactions(OTHER_SHOP), "items": store.items(OTHER_SHOP)}
        store.close()
        start_job(JobSpec(OTHER_SHOP, (task,), "cpu", "fake"), frames, paths, runner=run_job)
    return d


@pytest.fixture
def two_shops(two_shops_master, tmp_path, monkeypatch) -> Path:
    """A private copy of ``two_shops_master``, with the environment pointing at it."""
    return private_copy(two_shops_master, tmp_path, monkeypatch)


def private_copy(master: Path, tmp_path: Path, monkeypatch) -> Path:
    """Copy a master data folder into ``tmp_path`` and point the app's environment at it."""
    d = tmp_path / "data"
    shutil.copytree(master, d, ignore=shutil.ignore_patterns("*.lock", "*.wal"))
    monkeypatch.setenv("METAREC_DATA_DIR", str(d))
    monkeypatch.delenv("METAREC_DB", raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("METAREC_UMAP_WARMUP", "0")
    return d


def app_test(timeout: float = 120):
    """An AppTest of app.py, already run once."""
    from streamlit.testing.v1 import AppTest

    force_navigation_mode()
    root = Path(__file__).resolve().parent.parent
    return AppTest.from_file(str(root / "app.py"), default_timeout=timeout).run()


def assert_clean(at) -> None:
    """No uncaught exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
