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
