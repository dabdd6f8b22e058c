"""Quality smoke test of the cold-start protocol on real shared data (slow; skipped without data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _shared_amazon() -> Path | None:
    from metarec_core.config import PROJECT_ROOT, SHARED_DATASETS_DIR

    for root in (Path(SHARED_DATASETS_DIR), PROJECT_ROOT.parent / "shared" / "datasets"):
        folder = root / "amazon-beauty"
        if (folder / "interactions.csv.gz").exists() and (folder / "items.csv.gz").exists():
            return folder
    return None


def test_adapted_beats_popularity_on_amazon_beauty():
    """Protocol run on 4,000 random amazon-beauty users (k=3, seed 0): adapted >> popularity."""
    folder = _shared_amazon()
    if folder is None:
        pytest.skip("shared datasets not found (../shared/datasets/amazon-beauty)")
    from metarec_core.cli.coldstart_cmds import read_interactions, read_items
    from metarec_core.coldstart import ColdStartConfig
    from metarec_core.embed.encoder import FakeEncoder
    from metarec_core.evaluate.coldstart_eval import evaluate_dataset

    inter = read_interactions(str(folder / "interactions.csv.gz"))
    items = read_items(str(folder / "items.csv.gz"))
    users = np.sort(inter["user_id"].unique())
    keep = set(np.random.default_rng(0).choice(users, 4000, replace=False))
    inter = inter[inter["user_id"].isin(keep)]
    items = items[items["item_id"].isin(set(inter["item_id"]))]
    cfg = dataclasses.replace(ColdStartConfig(device="cpu"), epochs=2, min_steps=0, dim=32)
    report = evaluate_dataset(
        inter,
        items,
        ks=(3,),
        seeds=(0,),
        methods=("adapted", "popularity"),
        config=cfg,
        encoder=FakeEncoder(),  # the text encoder is not what this test checks; keep it fast
    )
    ndcg = report.results.set_index("method")["ndcg@10"]
    assert ndcg["adapted"] > 1.5 * ndcg["popularity"], ndcg.to_dict()
