"""The model registry the pages and the first-run training read: listing and format checks."""

from __future__ import annotations

import json

from metarec_core.coldstart.model import FORMAT
from metarec_core.config import Paths
from metarec_core.services import list_models


def _model(paths: Paths, dataset: str, name: str, kind: str, fmt: str | None, created: float):
    d = paths.models_dir / dataset / name
    d.mkdir(parents=True)
    (d / "metarec_meta.json").write_text(json.dumps({"kind": kind, "created": created}))
    if fmt is not None:
        (d / "config.json").write_text(json.dumps({"format": fmt}))
    return d


def test_models_of_an_older_format_are_hidden_so_the_demo_retrains(tmp_path):
    paths = Paths(tmp_path)
    _model(paths, "ml-100k", "old", "coldstart", "metarec-coldstart/2", 1.0)
    assert list_models(paths, "ml-100k", "coldstart") == []
    _model(paths, "ml-100k", "new", "coldstart", FORMAT, 2.0)
    _model(paths, "ml-100k", "cats", "categories", None, 3.0)
    _model(paths, "other", "elsewhere", "coldstart", FORMAT, 4.0)
    assert [m.name for m in list_models(paths, "ml-100k", "coldstart")] == ["new"]
    assert [m.name for m in list_models(paths, "ml-100k")] == ["cats", "new"]
    assert [m.name for m in list_models(paths)] == ["elsewhere", "cats", "new"]


def test_compact_report_shortens_long_lists_for_people():
    from metarec_core.services import compact_report

    report = {
        "meta": {"loss": [3.0, 2.5] + [2.0] * 98 + [1.5], "best_epoch": 4},
        "names": [f"n{i}" for i in range(20)],
        "short": [1, 2, 3],
    }
    out = compact_report(report)
    assert out["meta"]["loss"] == "101 values: first 3, last 1.5, min 1.5, max 3"
    assert out["meta"]["best_epoch"] == 4 and out["short"] == [1, 2, 3]
    assert out["names"][:2] == ["n0", "n1"] and out["names"][-1] == "... 8 more"
    assert len(report["meta"]["loss"]) == 101  # the stored report is untouched


def test_models_registered_from_elsewhere_are_listed_with_the_apps_metadata(tmp_path):
    from metarec_core.services.models import register_model

    paths = Paths(tmp_path / "data")
    _model(paths, "ml-100k", "app-model", "categories", None, 1.0)
    outside = tmp_path / "cli" / "cats"
    outside.mkdir(parents=True)
    info = register_model(outside, "categories", 42, "ml-100k", {"episodes": 5}, paths)
    unknown = tmp_path / "cli" / "other"
    unknown.mkdir()
    register_model(unknown, "categories", 7, "", {}, paths)
    register_model(unknown, "categories", 7, "", {}, paths)  # registering twice lists it once
    meta = json.loads((outside / "metarec_meta.json").read_text())
    assert meta["kind"] == "categories" and meta["dataset"] == "ml-100k"
    assert meta["n_items"] == 42 and meta["config"] == {"episodes": 5} and meta["created"] > 1.0
    listed = list_models(paths, "ml-100k")
    assert [m.name for m in listed] == ["cats", "app-model"] and listed[0].n_items == 42
    assert listed[0].path == outside.resolve() == info.path
    assert [m.name for m in list_models(paths)] == ["other", "cats", "app-model"]
    # a folder deleted by hand drops out of the list
    import shutil

    shutil.rmtree(unknown)
    assert [m.name for m in list_models(paths)] == ["cats", "app-model"]


def test_training_report_is_read_from_the_model_folder(tmp_path):
    from metarec_core.services import training_report

    paths = Paths(tmp_path)
    d = _model(paths, "ml-100k", "m", "categories", None, 1.0)
    (info,) = list_models(paths)
    assert training_report(info) == {}
    (d / "training_report.json").write_text(json.dumps({"n_items": 5}))
    assert training_report(info) == {"n_items": 5}
