"""A shop served by a model trained on another shop, and how that compares as its log grows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from metarec_core.config import Paths
from metarec_core.services.models import ModelInfo, list_models
from metarec_core.types import Progress, no_progress

GROWTH = (0, 100, 1000, -1)  # warm users of the shop the in-shop methods see (-1: all of them)
GROUPS = {
    "adapted": "model from another shop",
    "no-adapt": "model from another shop",
    "text-tfidf": "text only",
    "text-similarity": "text only",
    "popularity": "in-shop",
    "item-knn": "in-shop",
    "ease": "in-shop",
    "transfer+log": "model from another shop",
}


def other_shop_models(paths: Paths | None, dataset: str) -> list[ModelInfo]:
    """Cold-start models trained on any dataset but ``dataset`` (newest first)."""
    return [m for m in list_models(paths, kind="coldstart") if m.dataset and m.dataset != dataset]


def serve_from_other_shop(path: Path, items: pd.DataFrame, progress: Progress = no_progress):
    """The model at ``path`` serving ``items`` (another shop's catalogue) through item text, as
    ``recommend --items`` serves one shopper (coldstart/transfer.py ``serve_new_shop``)."""
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.transfer import serve_new_shop

    return serve_new_shop(ColdStartModel.load(path), items, None, progress=progress)


def new_shop_curve(
    model,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    k: int = 3,
    target_users=GROWTH,
    progress: Progress = no_progress,
) -> pd.DataFrame:
    """NDCG@10 (with a 95% interval) of the shop's held-out new users for the other shop's
    model, text-only similarity and in-shop baselines fit on 0, 100, 1,000 and all warm users
    (evaluate/transfer_eval.py). Columns: method, group, target_users, ndcg@10, lo, hi;
    ``attrs["popularity_share"]``: the share of the new shoppers' item counts in the model's
    score with no log (coldstart/shop_popularity)."""
    from metarec_core.evaluate.transfer_eval import evaluate_transfer

    report = evaluate_transfer(
        model, interactions, items, k=k, seed=0, target_users=target_users, progress=progress
    )
    rows = report.rows
    out = pd.DataFrame(
        {
            "method": rows["method"],
            "group": rows["method"].map(GROUPS),
            "target_users": rows["target_users"],
            "ndcg@10": rows["ndcg@10"],
            "lo": rows["ndcg@10_lo"],
            "hi": rows["ndcg@10_hi"],
        }
    )
    out.attrs["popularity_share"] = float(report.info["catalogue"].get("popularity_share", 0.0))
    return out
