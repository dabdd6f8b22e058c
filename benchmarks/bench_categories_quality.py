"""New-category quality: the category engine's evaluation on held-out Instacart departments.

Calls ``metarec_core.categories.evaluate_categories`` (meta-train on the other departments'
aisles, then 5-way 1/5-shot episodes, all-way and open-set on the held-out ones, with the
TF-IDF / plain-prototype / kNN / logistic-regression baselines in the same run). The 15
departments are split into folds of 5 (a fixed shuffle); each fold is one sample of every figure,
so the median/min/max are over folds. Full: 3 folds, 200 episodes; quick: 1 fold, 50 episodes;
tiny: a fake encoder on a few hundred items, seconds.

Figures: cat_5way_acc_k1, cat_5way_acc_k5, cat_allway_acc_k5, cat_allway_f1_k5,
cat_openset_precision_k5, cat_openset_recall_k5, cat_one_category_f1_k5 (the engine), and the same with a
``_<baseline>`` suffix for each baseline found in the report.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from benchmarks.common import Skip, Step, StepContext, bench_main, require
from metarec_core.config import SHARED_DATASETS_DIR

ENGINE = "metarec"
HEADLINE = {
    ("5-way 1-shot", "accuracy"): "cat_5way_acc_k1",
    ("5-way 5-shot", "accuracy"): "cat_5way_acc_k5",
    ("all-way 5-shot", "accuracy"): "cat_allway_acc_k5",
    ("all-way 5-shot", "macro_f1"): "cat_allway_f1_k5",
    ("open-set 5-shot", "precision"): "cat_openset_precision_k5",
    ("open-set 5-shot", "recall"): "cat_openset_recall_k5",
    ("one category 5-shot", "f1"): "cat_one_category_f1_k5",
}


def folds(departments: list[str], size: int = 5, seed: int = 0) -> list[list[str]]:
    """The departments shuffled once (seeded) and cut into folds of ``size``."""
    perm = list(np.random.default_rng(seed).permutation(sorted(departments)))
    return [perm[i : i + size] for i in range(0, len(perm) - size + 1, size)]


def step_evaluate(ctx: StepContext) -> None:
    evaluate_categories, config_cls = require(
        "metarec_core.categories", "evaluate_categories", "CategoryConfig"
    )
    path = SHARED_DATASETS_DIR / "instacart" / "items.csv.gz"
    if not path.exists():
        raise Skip("instacart items not found under the shared datasets")
    items = pd.read_csv(path).dropna(subset=["name", "aisle", "department"])
    kwargs: dict = {}
    if ctx.tiny:
        from metarec_core.embed.encoder import FakeEncoder

        keep = items.groupby("aisle").head(8)
        items = keep[keep.department.isin(keep.department.unique()[:6])]
        kwargs = dict(encoder=FakeEncoder(dim=64), config=config_cls(encoder="fake", episodes=20,
                      device=ctx.device), n_episodes=10, allway_repeats=1)  # fmt: skip
        chosen = [sorted(items.department.unique())[:3]]
    else:
        # quality, not speed: embeddings come from the app's persistent cache (Paths().cache_dir),
        # like the cold-start evaluation's; the encoder's speed is measured by bench_speed
        kwargs = dict(config=config_cls(device=ctx.device), n_episodes=ctx.pick(0, 50, 200),
                      allway_repeats=ctx.pick(1, 1, 3))  # fmt: skip
        chosen = folds(list(items.department.unique()))[: ctx.pick(1, 1, 3)]
    tables = []
    for n, held_out in enumerate(chosen):
        report = evaluate_categories(
            items, category_column="aisle", held_out=held_out, group_column="department",
            text_column="name", shots=(1, 5), **kwargs,
        )  # fmt: skip
        t = report.table.assign(fold=n)
        tables.append(t)
        for row in t.itertuples():
            key = HEADLINE.get((row.setting, row.metric))
            if key:
                ctx.add(key if row.method == ENGINE else f"{key}_{row.method}", row.mean)
        ctx.info.setdefault("folds", []).append(
            {"held_out": list(held_out), "train_s": report.info.get("meta_train_seconds")}
        )
    table = pd.concat(tables)
    ctx.info["table"] = table.to_dict(orient="records")


STEPS = [
    Step("evaluate", step_evaluate, tuple(HEADLINE.values()),
         {"tiny": 120, "quick": 900, "full": 5400}),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_categories_quality", "categories_quality", STEPS))
