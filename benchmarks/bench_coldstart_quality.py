"""Cold-start quality: every method x k in {1, 3, 5, 10} x 3 datasets x 3 seeds, 95% intervals.

Calls the cold-start engine's ``evaluate_dataset`` (the protocol of the cold-start issue: 10%
cold users, at most 2,000; first k interactions = support; later distinct items = query; full
catalogue ranking minus the support). One step per dataset, each in its own process.
Full: amazon-beauty, instacart, ml-100k, k = 1, 3, 5, 10, seeds 0, 1, 2. Quick: ml-100k, k = 3,
seed 0. Tiny: a 5k-row synthetic log, k = 3, seed 0 (checks the plumbing, not the quality).

``METAREC_BENCH_KS=3 METAREC_BENCH_SEEDS=0`` narrows a run (e.g. ``--only amazon-beauty`` when
the whole grid does not fit); the k values and seeds used are stored with the step.

Figures: ``cs_<dataset>_k<k>_<method>_ndcg10`` (samples = seeds when the report has them);
the whole table (HR@10, NDCG@10, Recall@20, coverage, popularity, intervals) goes to info.
"""

from __future__ import annotations

import os
import sys
import time
from functools import partial

import pandas as pd

from benchmarks.common import Skip, Step, StepContext, bench_main, require, tiny_config
from metarec_core.config import SHARED_DATASETS_DIR

DATASETS = ("amazon-beauty", "instacart", "ml-100k")
METRICS = ("hr@10", "ndcg@10", "recall@20", "coverage@10", "mean_pop@10")
SHORT = {"amazon-beauty": "beauty", "instacart": "instacart", "ml-100k": "ml100k", "tiny": "tiny"}


def _tiny_dataset(ctx: StepContext) -> str:
    """A small synthetic folder (interactions.csv + items.csv) for tiny mode."""
    from benchmarks.synthetic import SyntheticConfig, write_synthetic

    folder = ctx.work / "coldstart-tiny"
    if not (folder / "interactions.csv").exists():
        files = write_synthetic(folder / "parquet", SyntheticConfig(n_rows=5_000, n_users=300,
                                                                     n_items=300, seed=0))  # fmt: skip
        pd.read_parquet(files.interactions_glob).to_csv(folder / "interactions.csv", index=False)
        pd.read_parquet(files.items_path).to_csv(folder / "items.csv", index=False)
    return str(folder)


def _override(var: str) -> tuple[int, ...] | None:
    """k values or seeds from the environment ("3" or "0,1"), for a partial run that fits the
    time available; the values used are recorded with the step and shown in the table."""
    raw = os.environ.get(var, "").strip()
    return tuple(int(x) for x in raw.split(",") if x.strip()) or None


def step_dataset(ctx: StepContext, dataset: str) -> None:
    """evaluate_dataset on one dataset: every method, every k, every seed (one model per seed)."""
    evaluate_dataset = require("metarec_core.evaluate", "evaluate_dataset")
    config_cls = require("metarec_core.coldstart", "ColdStartConfig")
    load_frames = require("metarec_core.data.sources", "load_frames")
    if dataset == "tiny":
        source = _tiny_dataset(ctx)
    elif not (SHARED_DATASETS_DIR / dataset).is_dir():
        raise Skip(f"shared dataset {dataset} not found")
    else:
        source = dataset
    ks = _override("METAREC_BENCH_KS") or ctx.pick((3,), (3,), (1, 3, 5, 10))
    seeds = _override("METAREC_BENCH_SEEDS") or ctx.pick((0,), (0,), (0, 1, 2))
    interactions, items = load_frames(source)
    kwargs: dict = {"config": config_cls(device=ctx.device)}
    if ctx.tiny:
        from metarec_core.embed.encoder import FakeEncoder

        kwargs = {"config": tiny_config(config_cls, device=ctx.device), "encoder": FakeEncoder()}
    t0 = time.perf_counter()
    report = evaluate_dataset(interactions, items, ks=ks, seeds=seeds, **kwargs)
    ctx.info["seconds"] = round(time.perf_counter() - t0, 1)
    for r in report.results.to_dict(orient="records"):  # one sample per seed
        ctx.add(f"cs_{SHORT[dataset]}_k{r['k']}_{r['method']}_ndcg10", float(r["ndcg@10"]))
    table = []
    for r in report.summary.to_dict(orient="records"):
        row = {"method": r["method"], "k": int(r["k"]), "n_seeds": int(r["n_seeds"])}
        for m in METRICS:
            row[m] = r.get(f"{m}_mean")
            row[f"{m}_ci95"] = r.get(f"{m}_ci95")
        table.append(row)
    ctx.info.update(
        dataset=dataset,
        seeds=list(seeds),
        ks=list(ks),
        table=table,
        paired=report.paired.to_dict(orient="records"),
        train_seconds=report.info.get("train_seconds"),
        n_cold_users=report.info.get("n_cold_users"),
    )


STEPS = [
    Step(name, partial(step_dataset, dataset=name), (),
         {"tiny": 480, "quick": 1800, "full": 4 * 3600},
         modes=("tiny",) if name == "tiny" else ("quick", "full") if name == "ml-100k" else ("full",))
    for name in ("tiny", *DATASETS)
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_coldstart_quality", "coldstart_quality", STEPS))
