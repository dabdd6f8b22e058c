"""What a training job runs: one model of a job's spec trained into a folder.

The job runner (jobs.py) looks tasks up by name in ``jobs.TASKS``; "train" is ``train_task``
here. It sits below services, so the runner never calls back up into them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

import pandas as pd

from metarec_core.types import Progress

log = logging.getLogger(__name__)

EVAL_KS = (1, 3, 5, 10)  # support sizes the evaluation of an app-trained model reports
COLD_USERS_FILE = "cold_users.json"  # the held-out users, kept beside the model


def build_config(cls, overrides: dict, **extra):
    """Build an engine config from overrides, ignoring keys it does not know."""
    names = {f.name for f in fields(cls)}
    merged = {**extra, **overrides}
    unknown = sorted(set(merged) - names)
    if unknown:
        log.warning("ignoring unknown %s settings: %s", cls.__name__, ", ".join(unknown))
    return cls(**{k: v for k, v in merged.items() if k in names})


def train_task(spec, task, frames: dict[str, pd.DataFrame], out_dir: Path, progress: Progress):
    """Train one job task (``task.kind``: "coldstart" or "categories") into ``out_dir``; returns
    the follow-up the runner calls once the model is in place (a cold-start model's evaluation),
    or None."""
    if task.kind == "categories":
        from metarec_core.categories import CategoryConfig, train_category_model

        cfg = build_config(CategoryConfig, task.config, encoder=spec.encoder, device=spec.device)
        model = train_category_model(frames["items"], cfg, progress)
        model.save(out_dir)
        return
    return train_coldstart(spec, task, frames, out_dir, progress)


def train_coldstart(spec, task, frames, out_dir: Path, progress: Progress):
    """Hold out the protocol's cold users, meta-train on the warm ones and save; returns the
    evaluation on the cold ones (``fn(model_dir)`` writing ``evaluation.json``:
    evaluate.coldstart_eval.evaluate_model's rows), or None when the task does not evaluate."""
    from metarec_core.coldstart import METHODS, ColdStartConfig, train_model
    from metarec_core.evaluate.coldstart_eval import evaluate_model
    from metarec_core.evaluate.protocol import split_users

    inter, items = frames["interactions"], frames["items"]
    cfg = build_config(ColdStartConfig, task.config, device=spec.device)
    warm_users, cold_users = split_users(inter, seed=cfg.seed)
    warm = inter[inter["user_id"].isin(set(warm_users))]
    encoder = None
    if spec.encoder != "minilm":  # MiniLM goes through the persistent cache when None
        from metarec_core.embed.encoder import get_encoder

        encoder = get_encoder(spec.encoder)
    model = train_model(warm, items, cfg, progress, encoder)
    model.save(out_dir)
    (out_dir / COLD_USERS_FILE).write_text(json.dumps([str(u) for u in cold_users]))
    if not (task.evaluate and len(cold_users)):
        return None

    def evaluate(model_dir: Path) -> None:
        cold = inter[inter["user_id"].isin(set(cold_users))]
        rows = evaluate_model(model, cold, cold_users, list(EVAL_KS), list(METHODS), progress)
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        tmp = model_dir / ".evaluation.json.tmp"
        tmp.write_text(json.dumps({"rows": rows}, indent=1))
        tmp.replace(model_dir / "evaluation.json")

    return evaluate
