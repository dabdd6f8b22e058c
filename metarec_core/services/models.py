"""Models, background jobs and training: listing, the active model, the demo models."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from metarec_core.coldstart.config import ColdStartConfig
from metarec_core.config import Paths
from metarec_core.errors import ConflictError, ValidationError
from metarec_core.training import build_config as build_config  # re-exported by services
from metarec_core.training import train_task as train_task

if TYPE_CHECKING:
    from metarec_core.data.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """A trained model directory and what is known about it."""

    name: str
    dataset: str
    kind: str  # "coldstart" | "categories"
    path: Path
    created: float
    meta: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int | None:
        """Catalogue size the model was trained for (None when its metadata does not say)."""
        value = self.meta.get("n_items")
        return int(value) if isinstance(value, int | float) else None

    @property
    def label(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))
        return f"{self.name} ({when})"


def list_models(
    paths: Paths | None = None, dataset: str | None = None, kind: str | None = None
) -> list[ModelInfo]:
    """Trained models (newest first), optionally of one dataset and kind.

    The app's models live in ``<models_dir>/<dataset>/<name>/``; models the command line wrote
    elsewhere (``--out DIR``) are registered in ``<models_dir>/external.json`` and listed too
    (their dataset is "" when the command line did not know it: listed only without a filter).
    """
    from metarec_core.registry import meta_files, read_json

    paths = paths or Paths()
    root = paths.models_dir.resolve()
    out: list[ModelInfo] = []
    for meta_file in meta_files(paths):
        meta = read_json(meta_file)
        d = meta_file.parent
        if not isinstance(meta, dict) or ".partial-" in d.name:
            continue
        inside = d.resolve().parent.parent == root  # <models_dir>/<dataset>/<name>
        info = ModelInfo(
            name=d.name,
            dataset=d.parent.name if inside else str(meta.get("dataset") or ""),
            kind=str(meta.get("kind", "coldstart")),
            path=d,
            created=float(meta.get("created", d.stat().st_mtime)),
            meta=meta,
        )
        if not _current_format(info):
            log.info("skipping %s: written by an older MetaRec (retrain it)", d)
            continue
        if (dataset is None or info.dataset == dataset) and (kind is None or info.kind == kind):
            out.append(info)
    return sorted(out, key=lambda m: m.created, reverse=True)


def register_model(
    model_dir: Path,
    kind: str,
    n_items: int,
    dataset: str = "",
    config: dict | None = None,
    paths: Paths | None = None,
    **extra,
) -> ModelInfo:
    """Give a model folder written outside a job (the command line) the app's metadata and list
    it in the registry; returns it as ``list_models`` will show it."""
    from metarec_core.registry import model_meta, register_external, write_meta

    paths = paths or Paths()
    d = Path(model_dir).resolve()
    meta = model_meta(d.name, kind, dataset, n_items, config, source="command line", **extra)
    write_meta(d, meta)
    register_external(paths, d)
    return ModelInfo(d.name, dataset, kind, d, meta["created"], meta)


def _current_format(info: ModelInfo) -> bool:
    """Whether a cold-start model directory is in the format this version loads (older ones are
    hidden, so the first-run demo training replaces them instead of failing to load them)."""
    if info.kind != "coldstart":
        return True
    from metarec_core.coldstart.model import FORMAT

    try:
        return json.loads((info.path / "config.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return True  # unreadable: let loading report the real problem


def _active_file(paths: Paths) -> Path:
    return paths.models_dir / "active.json"


def active_model(paths: Paths | None, dataset: str, kind: str = "coldstart") -> ModelInfo | None:
    """The model chosen as active for (dataset, kind), else the newest one, else None."""
    paths = paths or Paths()
    models = list_models(paths, dataset, kind)
    if not models:
        return None
    try:
        chosen = json.loads(_active_file(paths).read_text()).get(f"{dataset}/{kind}")
    except (OSError, ValueError):
        chosen = None
    for m in models:
        if m.name == chosen:
            return m
    return models[0]


def set_active_model(paths: Paths | None, model: ModelInfo) -> None:
    """Remember ``model`` as the active one for its dataset and kind."""
    paths = paths or Paths()
    f = _active_file(paths)
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        data = {}
    data[f"{model.dataset}/{model.kind}"] = model.name
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(f)


def delete_model(paths: Paths | None, model: ModelInfo) -> None:
    """Delete a model directory (refused while a job writes it)."""
    from metarec_core.jobs import model_busy

    paths = paths or Paths()
    job_id = model_busy(paths, model.dataset, model.name)
    if job_id is not None:
        raise ConflictError(f"model '{model.name}' is being written by job {job_id}")
    if paths.models_dir.resolve() not in model.path.resolve().parents:
        raise ValidationError(f"refusing to delete {model.path}: not under {paths.models_dir}")
    shutil.rmtree(model.path)


def evaluation_table(model: ModelInfo) -> pd.DataFrame:
    """The model's evaluation report as a methods × k table (empty when there is none)."""
    f = model.path / "evaluation.json"
    if not f.exists():
        return pd.DataFrame()
    try:
        rows = json.loads(f.read_text()).get("rows", [])
    except (OSError, ValueError):
        return pd.DataFrame()
    return pd.DataFrame(rows)


def training_report(model: ModelInfo) -> dict:
    """The model's ``training_report.json`` (sizes, timings, curves; {} when there is none)."""
    from metarec_core.registry import read_json

    report = read_json(model.path / "training_report.json")
    return report if isinstance(report, dict) else {}


def compact_report(report, max_items: int = 12):
    """A training report for people: long lists (per-step losses, per-epoch validation) become
    one line each (count, first, last, min, max); everything else is kept as it is."""
    if isinstance(report, dict):
        return {k: compact_report(v, max_items) for k, v in report.items()}
    if isinstance(report, list) and len(report) > max_items:
        numbers = [v for v in report if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(report):
            return (
                f"{len(report)} values: first {report[0]:.4g}, last {report[-1]:.4g}, "
                f"min {min(numbers):.4g}, max {max(numbers):.4g}"
            )
        return [compact_report(v, max_items) for v in report[:max_items]] + [
            f"... {len(report) - max_items} more"
        ]
    if isinstance(report, list):
        return [compact_report(v, max_items) for v in report]
    return report


def default_model_name(kind: str) -> str:
    """A fresh model directory name, e.g. coldstart-20261123-0915."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_training(
    store: Store,
    dataset: str,
    tasks: list[tuple[str, str, dict]],
    device: str = "auto",
    encoder: str = "minilm",
    paths: Paths | None = None,
    label: str = "",
    auto: bool = False,
    evaluate: bool = True,
) -> str:
    """Start a background job training ``tasks`` = [(kind, name, config overrides)]; its id."""
    from metarec_core.jobs import JobSpec, TrainTask, start_job

    spec = JobSpec(
        dataset=dataset,
        tasks=tuple(TrainTask(k, n, dict(c), evaluate) for k, n, c in tasks),
        device=device,
        encoder=encoder,
        label=label,
        auto=auto,
    )
    frames = {"interactions": store.interactions(dataset), "items": store.items(dataset)}
    return start_job(spec, frames, paths)


# Settings of the models trained automatically on first start: the engine's defaults with at most
# 100 optimiser steps per net (the demo shop's model is usable in about 5 minutes on 2 cores and
# its adaptation still beats no-adapt on every held-out shopper, benchmark step demo/first_run),
# and fewer steps on small logs (min_steps=200 takes ~10 minutes on ml-100k).
DEMO_COLDSTART: dict = {"min_steps": 32, "max_steps": 100}
DEMO_CATEGORIES = {"episodes": 400}
# METAREC_DEMO_TRAINING=quick (the browser smoke test): the same path with smaller settings.
DEMO_QUICK_COLDSTART = {"epochs": 1, "dim": 32, "min_steps": 0, "max_steps": 20}
DEMO_QUICK_CATEGORIES = {"episodes": 60}


def demo_settings() -> tuple[dict, dict, bool]:
    """(cold-start overrides, category overrides, evaluate?) of the automatic demo training."""
    if os.environ.get("METAREC_DEMO_TRAINING", "").lower() == "quick":
        return dict(DEMO_QUICK_COLDSTART), dict(DEMO_QUICK_CATEGORIES), False
    return dict(DEMO_COLDSTART), dict(DEMO_CATEGORIES), True


TRAIN_METHODS = [
    "Meta-SGD (learned inner rates, first order)",
    "MAML (second order)",
    "First-order MAML",
]
TRAIN_K_MAX = ColdStartConfig().k_max  # the largest support size a model is trained for


def coldstart_overrides(method: str, k: int, epochs: int) -> dict:
    """ColdStartConfig overrides for the Training page's choices: Meta-SGD learns its inner rates,
    both MAML variants keep them fixed; only "MAML (second order)" back-propagates through the
    inner loop."""
    if method not in TRAIN_METHODS:
        raise ValidationError(f"unknown training method '{method}'")
    if not 1 <= int(k) <= TRAIN_K_MAX:
        raise ValidationError(f"k must be between 1 and {TRAIN_K_MAX}, got {k}")
    return {
        "k": int(k),
        "epochs": int(epochs),
        "learn_inner_lr": method == TRAIN_METHODS[0],
        "first_order": method != TRAIN_METHODS[1],  # only "MAML (second order)" is second order
    }


def ensure_demo_models(
    store: Store, dataset: str, paths: Paths | None = None, encoder: str = "minilm"
) -> str | None:
    """Start the automatic first-run training when ``dataset`` has no cold-start model yet.

    Returns the id of the job that trains (or trained) the demo models, None when models exist
    or an earlier automatic attempt for this dataset failed (the user can retry in Training).
    """
    from metarec_core.jobs import list_jobs

    paths = paths or Paths()
    jobs = [j for j in list_jobs(paths, dataset) if j.spec.auto]
    if jobs and jobs[0].active:
        return jobs[0].job_id
    if list_models(paths, dataset, "coldstart"):
        return jobs[0].job_id if jobs and time.time() - (jobs[0].finished or 0) < 30 else None
    if jobs:  # an automatic attempt ended without a model: do not loop; Training offers a retry
        return jobs[0].job_id
    coldstart, categories, evaluate = demo_settings()
    tasks = [("coldstart", "demo-coldstart", coldstart)]
    if not list_models(paths, dataset, "categories"):
        tasks.append(("categories", "demo-categories", categories))
    try:
        return start_training(
            store,
            dataset,
            tasks,
            encoder=encoder,
            paths=paths,
            label="demo models",
            auto=True,
            evaluate=evaluate,
        )
    except ConflictError:
        return None
