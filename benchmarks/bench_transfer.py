"""Cross-shop transfer: quality on held-out shops, serving speed on a new catalogue, and the
cost of ``train --init-from``.

Figures (keys of latest.json):
  serve      transfer_serve_2000_cold_s: ``recommend --items`` for 2,000 new users of a 20,000-item
             catalogue the model has never seen (Instacart product names), in a fresh process
             with an empty embedding cache (so it embeds every title once);
             transfer_serve_2000_warm_s: the same command again (titles cached)
  init_from  transfer_init_from_s: ``train --init-from`` on 10% of the users of a 300,000-row
             synthetic log (20,000 items), both trainings (from the source model and from
             scratch) and the choice between them
  quality    for each development pair (source -> target shop), the cross-shop protocol
             (evaluate/transfer_eval.py, k = 3, seed 0): transfer_<pair>_adapted (NDCG@10 of
             ``recommend --items`` with no target log), transfer_<pair>_tfidf, _ease_all (in-shop
             EASE on every warm target user), and _init10 / _ease10 (``--init-from`` and in-shop
             EASE on 10% of the warm target users). Pairs: amazon-beauty without Hair Care ->
             Hair Care, amazon-beauty without Tools & Accessories -> Tools & Accessories,
             amazon-beauty -> instacart, instacart -> amazon-beauty (an Amazon shop whose
             words the source never saw).

Run: ``python -m benchmarks.bench_transfer [--quick] [--only serve,init_from,quality]``.
Quick mode trains the source model with few steps (speed only); quality runs in full mode.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd

from benchmarks.common import Skip, Step, StepContext, bench_main, child_env, run_child
from metarec_core.config import SHARED_DATASETS_DIR

# pair -> the amazon-beauty top-level category served as a new shop; "instacart": amazon-beauty
# serves instacart; "beauty": instacart serves amazon-beauty
PAIRS = {"hair": "Hair Care", "tools": "Tools & Accessories", "instacart": None, "beauty": None}
SOURCE_MODEL = {"instacart": "beauty", "beauty": "instacart"}  # cached source model per pair
QUICK_TRAIN = {"epochs": 1, "min_steps": 0, "max_steps": 30}


def _shared(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) of a shared dataset folder, as the command line reads them."""
    from metarec_core.cli.coldstart_cmds import read_interactions, read_items

    folder = SHARED_DATASETS_DIR / name
    if not folder.is_dir():
        raise Skip(f"shared dataset {name} is absent")
    return (
        read_interactions(str(folder / "interactions.csv.gz")),
        read_items(str(folder / "items.csv.gz")),
    )


def _source_model(ctx: StepContext, name: str, inter: pd.DataFrame, items: pd.DataFrame):
    """A model trained on ``inter`` (default settings; quick mode: a few steps), cached by name."""
    from metarec_core.coldstart import ColdStartConfig
    from metarec_core.coldstart.model import ColdStartModel
    from metarec_core.coldstart.train import train_model

    folder = ctx.work / f"transfer-{ctx.mode}-{name}"
    if (folder / "config.json").exists():
        return ColdStartModel.load(folder, device=ctx.device)
    cfg = ColdStartConfig(device=ctx.device)
    if ctx.mode != "full":
        cfg = dataclasses.replace(cfg, **QUICK_TRAIN)
    model = train_model(inter, items, cfg)
    model.save(folder)
    return model


def step_serve(ctx: StepContext) -> None:
    """``recommend --items``: 2,000 new users of 20,000 unseen products, cold and warm cache."""
    folder = SHARED_DATASETS_DIR / "instacart"
    if not folder.is_dir():
        raise Skip("shared dataset instacart is absent")
    _source_model(ctx, "beauty", *_shared("amazon-beauty"))
    model_dir = ctx.work / f"transfer-{ctx.mode}-beauty"
    items = pd.read_csv(folder / "items.csv.gz").head(20_000)
    rng = np.random.default_rng(0)
    picks = rng.choice(items["item_id"].to_numpy(), size=(2000, 3))
    support = pd.DataFrame(
        {
            "user_id": np.repeat([f"new{u}" for u in range(2000)], 3),
            "item_id": picks.ravel(),
            "position": np.tile(np.arange(3), 2000),
        }
    )
    work = ctx.work / "transfer-serve"
    work.mkdir(parents=True, exist_ok=True)
    items.to_csv(work / "items.csv", index=False)
    support.to_csv(work / "support.csv", index=False)
    cache = work / "data"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    env = child_env({"METAREC_DATA_DIR": str(cache)})
    cmd = [sys.executable, "-m", "metarec_core", "recommend", "--model", str(model_dir),
           "--items", str(work / "items.csv"), "--support", str(work / "support.csv"),
           "--top", "10", "--out", str(work / "recs.csv"), "--device", ctx.device]  # fmt: skip
    for key in ("transfer_serve_2000_cold_s", "transfer_serve_2000_warm_s"):
        child = run_child(cmd, 900, env=env)
        if child.returncode != 0:
            raise RuntimeError(f"recommend --items failed: {child.output_tail[-600:]}")
        ctx.add(key, child.wall_s, "s")
    recs = pd.read_csv(work / "recs.csv")
    ctx.info["users_served"] = int(recs["user_id"].nunique())


def step_init_from(ctx: StepContext) -> None:
    """``train --init-from`` on 10% of the users of a 300k-row synthetic log."""
    from benchmarks.synthetic import SyntheticConfig, write_synthetic

    _source_model(ctx, "beauty", *_shared("amazon-beauty"))
    model_dir = ctx.work / f"transfer-{ctx.mode}-beauty"
    work = ctx.work / "transfer-init"
    if not (work / "sub.csv").exists():
        files = write_synthetic(work / "log", SyntheticConfig(n_rows=300_000, n_items=20_000))
        log = pd.read_parquet(files.interactions_glob)
        users = log["user_id"].drop_duplicates().sample(frac=0.1, random_state=0)
        log[log["user_id"].isin(set(users))].to_csv(work / "sub.csv", index=False)
        pd.read_parquet(files.items_path).to_csv(work / "items.csv", index=False)
    sub = pd.read_csv(work / "sub.csv", usecols=["user_id"])
    ctx.info["init_from_rows"], ctx.info["init_from_users"] = len(sub), int(sub.nunique().iloc[0])
    env = child_env({"METAREC_DATA_DIR": str(work / "data")})
    cmd = [sys.executable, "-m", "metarec_core", "train", "--init-from", str(model_dir),
           "--interactions", str(work / "sub.csv"), "--items", str(work / "items.csv"),
           "--out", str(work / "model"), "--device", ctx.device]  # fmt: skip
    child = run_child(cmd, 1800, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"train --init-from failed: {child.output_tail[-600:]}")
    ctx.add("transfer_init_from_s", child.wall_s, "s")
    ctx.info["init_from_said"] = child.output_tail.strip().splitlines()[-1][:300]


def _pair(name: str) -> tuple[tuple, tuple]:
    """(source frames, target frames) of a development pair."""
    inter, items = _shared("amazon-beauty")
    if name == "instacart":
        return (inter, items), _shared("instacart")
    if name == "beauty":
        return _shared("instacart"), (inter, items)
    top = items["categories"].fillna("").str.split("|").str[0].str.split(" > ").str[0]

    def shop(mask):
        part = items[mask].reset_index(drop=True)
        return inter[inter["item_id"].isin(set(part["item_id"]))], part

    return shop(top != PAIRS[name]), shop(top == PAIRS[name])


def step_quality(ctx: StepContext) -> None:
    """The cross-shop protocol on each development pair (source model trained once per pair)."""
    from metarec_core.evaluate.protocol import split_users
    from metarec_core.evaluate.transfer_eval import evaluate_transfer

    for name in PAIRS:
        source, target = _pair(name)
        model = _source_model(ctx, SOURCE_MODEL.get(name, f"no-{name}"), *source)
        warm, _ = split_users(target[0], 0)
        tenth = max(1, len(warm) // 10)
        report = evaluate_transfer(
            model, *target, k=3, seed=0, target_users=(0, tenth, -1), train_at=(tenth,)
        )
        rows = report.rows.set_index(["method", "target_users"])["ndcg@10"]
        every = int(report.rows["target_users"].max())
        ctx.add(f"transfer_{name}_adapted", rows[("adapted", 0)], "NDCG@10")
        ctx.add(f"transfer_{name}_noadapt", rows[("no-adapt", 0)], "NDCG@10")
        ctx.add(f"transfer_{name}_tfidf", rows[("text-tfidf", 0)], "NDCG@10")
        ctx.add(f"transfer_{name}_encoder", rows[("text-similarity", 0)], "NDCG@10")
        ctx.add(f"transfer_{name}_ease_all", rows[("ease", every)], "NDCG@10")
        ctx.add(f"transfer_{name}_init10", rows[("init-from", tenth)], "NDCG@10")
        ctx.add(f"transfer_{name}_ease10", rows[("ease", tenth)], "NDCG@10")
        ctx.info[name] = report.to_dict()


STEPS = [
    Step("serve", step_serve, ("transfer_serve_2000_cold_s", "transfer_serve_2000_warm_s"),
         {"tiny": 60, "quick": 1200, "full": 2400}, modes=("quick", "full")),
    Step("init_from", step_init_from, ("transfer_init_from_s",),
         {"tiny": 60, "quick": 1800, "full": 2400}, modes=("quick", "full")),
    Step("quality", step_quality,
         tuple(f"transfer_{p}_{m}" for p in PAIRS
               for m in ("adapted", "noadapt", "tfidf", "encoder", "ease_all", "init10", "ease10")),
         {"tiny": 60, "quick": 60, "full": 4 * 3600}, modes=("full",)),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_transfer", "transfer", STEPS))
