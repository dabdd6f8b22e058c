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
