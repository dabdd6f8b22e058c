"""Run the cold-start protocol end to end: split, train on warm users, rank for cold users, score."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from metarec_core.errors import ValidationError
from metarec_core.evaluate.protocol import (
    EvalReport,
    cold_tasks,
    paired_differences,
    score_rankings,
    split_users,
    summarise,
    user_ndcg,
)
from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)


def evaluate_model(
    model,
    interactions: pd.DataFrame,
    cold: np.ndarray,
    ks: Sequence[int],
    methods: Sequence[str],
    progress: Progress = no_progress,
    per_user: dict | None = None,
) -> list[dict]:
    """Metrics rows (method, k, n_users, metrics..., seconds) of a trained model on cold users.

    ``per_user``, when given, receives each (method, k)'s per-user NDCG@10 (users in one order
    for every method), for paired comparisons.
    """
    from metarec_core.coldstart.recommend import rank_users

    ids, index = model.catalogue.item_ids, model.index
    popularity = {str(i): float(c) for i, c in zip(ids, model.pop, strict=True)}
    rows = []
    for k in ks:
        users, supports, queries = cold_tasks(interactions, cold, k)
        if not users:
            log.warning("k=%d: no cold user has more than %d interactions", k, k)
            continue
        support_rows = [np.array([index[i] for i in s if i in index], np.int64) for s in supports]
        for n, method in enumerate(methods):
            t0 = time.perf_counter()
            ranked = rank_users(model, support_rows, method, 20)
            rankings = [list(ids[r]) for r in ranked.items]
            row = {"method": method, "k": int(k), "n_users": len(users)}
            ndcg = user_ndcg(rankings, queries)
            row.update(score_rankings(rankings, queries, len(ids), popularity, ndcg))
            if per_user is not None:
                per_user[(method, int(k))] = ndcg
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
    """The issue-3 protocol over ``seeds`` and support sizes ``ks``; see evaluate/protocol.py.

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
    rows, info = [], {"n_users": int(len(users)), "n_items": int(len(items)), "train_seconds": {}}
    pooled: dict[tuple[str, int], list[np.ndarray]] = {}
    for seed in seeds:
        warm, cold = split_users(interactions, int(seed))
        train = interactions[interactions["user_id"].astype(str).isin(set(warm))]
        cfg = dataclasses.replace(base, seed=int(seed))
        t0 = time.perf_counter()
        model = train_model(train, items, cfg, progress=progress, encoder=encoder)
        info["train_seconds"][str(seed)] = round(time.perf_counter() - t0, 1)
        info["n_cold_users"] = int(len(cold))
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
