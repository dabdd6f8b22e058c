"""The one cold-start evaluation: split, train on warm users, rank for cold users, score.

The CLI's ``evaluate``, the benchmarks (``evaluate_dataset``), the models the app trains
(``evaluate_model`` on their held-out users) and the Lab's cohort view (``per_user_metrics``) all
rank through ``rank_tasks`` and score through evaluate/protocol.py, so one model scores the same
everywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError
from metarec_core.evaluate.metrics import mean_ci95
from metarec_core.evaluate.protocol import (
    EvalReport,
    cold_tasks,
    paired_differences,
    per_user_scores,
    score_rankings,
    split_users,
    summarise,
)
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)


PER_USER = ("hr@10", "ndcg@10", "recall@20")  # metrics with a value per user (and an interval)


def rank_tasks(model, supports: list[list[str]], method: str, top: int = 20) -> list[list[str]]:
    """Each user's top-``top`` item ids for their support item ids (unknown items skipped)."""
    from metarec_core.coldstart.recommend import rank_users

    ids, index = model.catalogue.item_ids, model.index
    support_rows = [np.array([index[i] for i in s if i in index], np.int64) for s in supports]
    return [list(ids[r]) for r in rank_users(model, support_rows, method, top).items]


def per_user_metrics(
    model, interactions: pd.DataFrame, k: int, methods, users: list[str] | None = None
) -> pd.DataFrame:
    """HR@10, NDCG@10 and Recall@20 of each method for each user (support = their first k).

    ``users`` limits the users (default: everyone in ``interactions``); users with nothing
    after their support are left out. Columns: user_id, method, hr@10, ndcg@10, recall@20.
    """
    users = interactions["user_id"].unique() if users is None else users
    ids, supports, queries = cold_tasks(interactions, users, k)
    frames = []
    for method in methods:
        rankings = rank_tasks(model, supports, method)
        frames.append(
            pd.DataFrame({"user_id": ids, "method": method, **per_user_scores(rankings, queries)})
        )
    if not frames:
        return pd.DataFrame(columns=["user_id", "method", *PER_USER])
    return pd.concat(frames, ignore_index=True)


def evaluate_model(
    model,
    interactions: pd.DataFrame,
    cold,
    ks: Sequence[int],
    methods: Sequence[str],
    progress: Progress = no_progress,
    per_user: dict | None = None,
) -> list[dict]:
    """Metrics rows of a trained model on its cold users: method, k, n_users, each metric's
    mean (HR@10, NDCG@10 and Recall@20 also with ``<metric>_lo`` / ``_hi``, a 95% interval
    over users), coverage@10, mean_pop@10, seconds.

    ``per_user``, when given, receives each (method, k)'s per-user NDCG@10 (users in one order
    for every method), for paired comparisons.
    """
    ids = model.catalogue.item_ids
    popularity = {str(i): float(c) for i, c in zip(ids, model.pop, strict=True)}
    rows = []
    for k in ks:
        users, supports, queries = cold_tasks(interactions, cold, k)
        if not users:
            log.warning("k=%d: no cold user has more than %d interactions", k, k)
            continue
        for n, method in enumerate(methods):
            t0 = time.perf_counter()
            rankings = rank_tasks(model, supports, method)
            scores = per_user_scores(rankings, queries)
            row = {"method": method, "k": int(k), "n_users": len(users)}
            row.update(score_rankings(rankings, queries, len(ids), popularity, scores["ndcg@10"]))
            for metric in PER_USER:
                mean, half = mean_ci95(scores[metric])
                row.update({f"{metric}_lo": mean - half, f"{metric}_hi": mean + half})
            if per_user is not None:
                per_user[(method, int(k))] = scores["ndcg@10"]
            row["seconds"] = round(time.perf_counter() - t0, 3)
            rows.append(row)
            progress(
                ProgressEvent(
                    "evaluate", n + 1, len(methods), f"k={k} {method}", {"ndcg@10": row["ndcg@10"]}
                )
            )
    return rows


def evaluate_dataset(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    ks: Sequence[int] = (3,),
    seeds: Sequence[int] = (0, 1, 2),
    methods: Sequence[str] | None = None,
    config=None,
    progress: Progress = no_progress,
    encoder=None,
) -> EvalReport:
    """The cold-start protocol over ``seeds`` and support sizes ``ks``; see evaluate/protocol.py.

    Cold users' interactions never reach training: each seed trains a fresh model (and fits every
    baseline) on the warm users' interactions only.
    """
    from metarec_core.coldstart import METHODS, ColdStartConfig
    from metarec_core.coldstart.train import train_model

    methods = tuple(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValidationError(f"unknown method(s) {', '.join(unknown)}: use {', '.join(METHODS)}")
    if not ks or any(int(k) < 1 for k in ks):
        raise ValidationError("k values must be positive integers")
    base = config or ColdStartConfig()
    users = interactions["user_id"].astype(str).unique()
    if len(users) < 10:
        raise ValidationError(f"need at least 10 users to evaluate, found {len(users)}")
    rows, info = [], {"n_users": len(users), "n_items": len(items), "train_seconds": {}}
    pooled: dict[tuple[str, int], list[np.ndarray]] = {}
    for seed in seeds:
        warm, cold = split_users(interactions, int(seed))
        train = interactions[interactions["user_id"].astype(str).isin(set(warm))]
        cfg = dataclasses.replace(base, seed=int(seed))
        t0 = time.perf_counter()
        model = train_model(train, items, cfg, progress=progress, encoder=encoder)
        info["train_seconds"][str(seed)] = round(time.perf_counter() - t0, 1)
        info["n_cold_users"] = len(cold)
        per_user: dict = {}
        for row in evaluate_model(
            model, interactions, cold, [int(k) for k in ks], methods, progress, per_user
        ):
            rows.append({**row, "seed": int(seed)})
        for key, values in per_user.items():
            pooled.setdefault(key, []).append(values)
        del model
    results = pd.DataFrame(rows)
    if results.empty:
        raise ValidationError(
            "no cold user had interactions beyond the support: nothing to evaluate"
        )
    cols = [
        "method",
        "k",
        "seed",
        "n_users",
        "hr@10",
        "ndcg@10",
        "recall@20",
        "coverage@10",
        "mean_pop@10",
        "seconds",
    ]
    info["config"] = base.to_dict()
    merged = {key: np.concatenate(v) for key, v in pooled.items()}
    return EvalReport(results[cols], summarise(results), info, paired_differences(merged))
