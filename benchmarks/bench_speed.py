"""Speed: adaptation latency and throughput, recommend end to end, training, encoder, classify, UMAP.

Each step runs in a fresh process (peak RSS per step); ``--device cuda`` runs the same suite on a
GPU. Figures (keys of latest.json):
  train          train_beauty_s (full) / train_ml100k_s (quick): ``metarec_core train`` CLI, cold
                 embedding cache included
  adapt          adapt_ms_p{50,95}_k{1,5,20,50}: one user, k support items, adapted top-20;
                 adapt_users_per_s_{100,1000,10000}: one batched call for N users (k = 5)
  recommend      recommend_2000_s: ``metarec_core recommend`` CLI for 2,000 users, model load incl.
  encode         encode_titles_per_s (new titles through MiniLM), cache_hits_per_s;
                 encode_<name>_titles_per_s for every other installed encoder (mpnet, multilingual)
  classify       classify_10k_s: 10,000 cached items against 50 prototypes (MiniLM, 384-d);
                 classify_10k_768d_s the same at mpnet's 768 dimensions (cached embeddings make
                 classification independent of the encoder that made them, so a 768-d stand-in)
  train_categories  train_categories_instacart_s: ``metarec_core train-categories`` CLI on the
                 shared Instacart catalogue, cold embedding cache included
  umap_cold      umap_5k_cold_s: 5k points in a fresh process (numba compiles per process)
  umap_warm      umap_5k_warm_s, umap_20k_cold_s, umap_20k_warm_s

Run: ``python -m benchmarks.bench_speed [--quick|--tiny] [--device cuda] [--only adapt]``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import (
    Skip,
    Step,
    StepContext,
    bench_main,
    child_env,
    percentile,
    require,
    run_child,
    timed,
    tiny_config,
)
from metarec_core.config import SHARED_DATASETS_DIR

ADAPT_KS = (1, 5, 20, 50)
BATCH_USERS = (100, 1000, 10000)


def _train_dataset(ctx: StepContext) -> str:
    return ctx.pick("tiny", "ml-100k", "amazon-beauty")


def _dataset_files(ctx: StepContext) -> tuple[Path, Path]:
    """(interactions, items) files of the dataset the cold-start steps use in this mode."""
    name = _train_dataset(ctx)
    if name == "tiny":  # a 5k-row synthetic log written by the quality bench's tiny mode
        from benchmarks.bench_coldstart_quality import _tiny_dataset

        folder = Path(_tiny_dataset(ctx))
        return folder / "interactions.csv", folder / "items.csv"
    folder = SHARED_DATASETS_DIR / name
    inter, items = folder / "interactions.csv.gz", folder / "items.csv.gz"
    if not inter.exists():
        raise Skip(f"shared dataset {name} not found under {SHARED_DATASETS_DIR}")
    return inter, items


def _model_dir(ctx: StepContext) -> Path:
    return ctx.work / "models" / f"coldstart-{_train_dataset(ctx)}-{ctx.device.replace(':', '')}"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "metarec_core", *args]


# ---- cold-start ---------------------------------------------------------------------------------
def step_train(ctx: StepContext) -> None:
    """``metarec_core train`` on the dataset with a fresh data dir (the embedding cache is cold).
    Tiny mode trains in process with the fake encoder for one epoch (plumbing only)."""
    require("metarec_core.cli.coldstart_cmds", "register")
    name = _train_dataset(ctx)
    inter, items = _dataset_files(ctx)
    out, home = _model_dir(ctx), ctx.work / "train-home"
    for p in (out, home):
        shutil.rmtree(p, ignore_errors=True)
    if ctx.tiny:
        _train_tiny(ctx, inter.parent, out)
        return
    cmd = _cli("train", "--interactions", str(inter), "--items", str(items), "--out", str(out),
               "--k", "3", "--device", ctx.device, "--seed", "0")  # fmt: skip
    child = run_child(cmd, timeout_s=3000, env=child_env({"METAREC_DATA_DIR": str(home)}))
    if child.returncode != 0:
        raise RuntimeError(f"train failed (exit {child.returncode}): {child.output_tail[-800:]}")
    key = "train_beauty_s" if name == "amazon-beauty" else "train_ml100k_s"
    ctx.add(key, child.wall_s, "s")
    ctx.info.update(dataset=name, train_peak_rss_mb=round(child.peak_rss_mb, 1))
    report = out / "training_report.json"
    if report.exists():
        ctx.info["training_report"] = _shorten(json.loads(report.read_text()))


def _shorten(obj, keep: int = 8):
    """The training report with long lists (loss curves) cut to their first and last values."""
    if isinstance(obj, dict):
        return {k: _shorten(v, keep) for k, v in obj.items()}
    if isinstance(obj, list) and len(obj) > 2 * keep:
        return [*obj[:keep], f"... {len(obj) - 2 * keep} more ...", *obj[-keep:]]
    return obj


def _train_tiny(ctx: StepContext, folder: Path, out: Path) -> None:
    config_cls, train_model = require("metarec_core.coldstart", "ColdStartConfig", "train_model")
    from metarec_core.data.sources import load_frames
    from metarec_core.embed.encoder import FakeEncoder

    interactions, items = load_frames(str(folder))
    cfg = tiny_config(config_cls, device=ctx.device)
    seconds, model = timed(lambda: train_model(interactions, items, cfg, encoder=FakeEncoder()))
    model.save(out)
    ctx.add("train_tiny_s", seconds, "s")


def _load_model(ctx: StepContext):
    model_cls = require("metarec_core.coldstart", "ColdStartModel")
    out = _model_dir(ctx)
    if not out.exists():
        raise Skip(f"no trained model at {out}: run the train step first")
    return model_cls.load(out, device=ctx.device)


def _supports(ctx: StepContext, n_users: int, k: int, seed: int = 0) -> pd.DataFrame:
    """Support sets of new users: k items each, drawn from real users' first interactions."""
    inter, _ = _dataset_files(ctx)
    import duckdb

    con = duckdb.connect()
    order = "timestamp" if _train_dataset(ctx) == "ml-100k" else "position"
    rows = con.execute(
        f"SELECT user_id::VARCHAR AS src, item_id::VARCHAR AS item_id, "
        f"row_number() OVER (PARTITION BY user_id ORDER BY {order}) - 1 AS position "
        "FROM read_csv_auto(?) QUALIFY position < ?",
        [str(inter), k],
    ).df()
    con.close()
    rows = rows.sort_values(["src", "position"])
    counts = rows.groupby("src").size()
    eligible = counts[counts >= k].index.to_numpy()
    pick = np.random.default_rng(seed).choice(
        eligible, size=n_users, replace=n_users > len(eligible)
    )
    frame = rows.set_index("src").loc[pick].reset_index(drop=True)  # k rows per pick, in order
    frame["user_id"] = np.repeat([f"new{n:05d}" for n in range(n_users)], k)
    return frame[["user_id", "item_id", "position"]]


def step_adapt(ctx: StepContext) -> None:
    """Single-user adaptation latency per k, and batched throughput per number of users."""
    model = _load_model(ctx)
    calls, repeats = ctx.pick(5, 20, 50), ctx.pick(1, 3, 3)
    for k in ctx.pick((1, 5), ADAPT_KS, ADAPT_KS):
        sup = _supports(ctx, calls, k, seed=k)
        groups = [g for _, g in sup.groupby("user_id", sort=False)]
        model.recommend(groups[0], top=20)  # warm-up (lazy init, first kernel launches)
        for _ in range(repeats):
            lat = [timed(lambda g=g: model.recommend(g, top=20))[0] * 1000 for g in groups]
            ctx.add(f"adapt_ms_p50_k{k}", percentile(lat, 50), "ms")
            ctx.add(f"adapt_ms_p95_k{k}", percentile(lat, 95), "ms")
    sizes = ctx.pick((100,), (100, 1000), BATCH_USERS)
    for n in sizes:
        sup = _supports(ctx, n, 5, seed=n)
        for _ in range(repeats if n < 10000 else 1):
            seconds, recs = timed(lambda sup=sup: model.recommend(sup, top=20))
            ctx.add(f"adapt_users_per_s_{n}", n / seconds, "users/s")
        ctx.info[f"recs_rows_{n}"] = len(recs.frame)


def step_recommend(ctx: StepContext) -> None:
    """``metarec_core recommend`` for 2,000 new users, end to end (process start + model load)."""
    require("metarec_core.cli.coldstart_cmds", "register")
    out = _model_dir(ctx)
    if not out.exists():
        raise Skip(f"no trained model at {out}: run the train step first")
    n = ctx.pick(200, 2000, 2000)
    support = ctx.work / f"support-{n}.csv"
    _supports(ctx, n, 5).to_csv(support, index=False)
    for r in range(ctx.pick(1, 2, 3)):
        recs = ctx.work / f"recs-{r}.csv"
        cmd = _cli("recommend", "--model", str(out), "--support", str(support), "--top", "20",
                   "--out", str(recs), "--device", ctx.device)  # fmt: skip
        child = run_child(cmd, timeout_s=600, env=child_env())
        if child.returncode != 0:
            raise RuntimeError(f"recommend failed: {child.output_tail[-800:]}")
        ctx.add(f"recommend_{n}_s", child.wall_s, "s")
        ctx.info["recommend_peak_rss_mb"] = round(child.peak_rss_mb, 1)
        ctx.info["recs_rows"] = int(sum(1 for _ in recs.open()) - 1)


# ---- encoder, cache, classification --------------------------------------------------------------
def _titles() -> list[str]:
    path = SHARED_DATASETS_DIR / "instacart" / "items.csv.gz"
    if path.exists():
        return pd.read_csv(path, usecols=["name"])["name"].dropna().astype(str).tolist()
    from benchmarks.synthetic import _ADJECTIVES, _BRANDS, _NOUNS

    return [f"{b} {a} {n} {i}" for i, (b, a, n) in enumerate(
        (b, a, n) for b in _BRANDS for a in _ADJECTIVES for n in _NOUNS)]  # fmt: skip


def _encoder(ctx: StepContext, dim: int = 384):
    from metarec_core.embed.encoder import FakeEncoder, MiniLMEncoder

    if ctx.tiny or dim != 384:
        ctx.info["encoder"] = "fake (tiny mode)" if ctx.tiny else ctx.info.get("encoder")
        return FakeEncoder(dim=dim)
    ctx.info["encoder"] = "all-MiniLM-L6-v2"
    return MiniLMEncoder(device=ctx.device)


def _throughput(ctx: StepContext, enc, titles: list[str], key: str, n: int, runs: int = 3) -> None:
    enc.encode(titles[:32])  # warm-up
    for r in range(runs):
        batch = titles[1000 + r * n : 1000 + (r + 1) * n]
        cpu0 = time.process_time()
        seconds, _ = timed(lambda b=batch: enc.encode(b, batch_size=64))
        ctx.add(f"{key}_titles_per_s", len(batch) / seconds, "titles/s")
        # per CPU-second of this process (all its threads): what contention cannot take away
        ctx.add(
            f"{key}_titles_per_cpu_s", len(batch) / (time.process_time() - cpu0), "titles/CPU-s"
        )


def step_encode(ctx: StepContext) -> None:
    """New titles/s through each installed encoder (distinct titles each run), then cache hits/s."""
    from metarec_core.embed.cache import EmbeddingCache
    from metarec_core.embed.encoder import get_encoder
    from metarec_core.embed.registry import installed_encoders

    enc = _encoder(ctx)
    titles = _titles()
    n, runs = ctx.pick(200, 300, 1000), 3
    _throughput(ctx, enc, titles, "encode", n, runs)
    for name in [] if ctx.tiny else [e for e in installed_encoders() if e != "minilm"]:
        _throughput(ctx, get_encoder(name), titles, f"encode_{name}", ctx.pick(64, 128, 300), 2)
    cache = EmbeddingCache(enc, ctx.work / "encode-cache")
    known = titles[1000 : 1000 + n]
    cache.embed(known)  # all hits from here on
    lookups = [known[i % len(known)] for i in range(ctx.pick(20_000, 100_000, 200_000))]
    for _ in range(runs):
        seconds, _ = timed(lambda: cache.embed(lookups))
        ctx.add("cache_hits_per_s", len(lookups) / seconds, "texts/s")


def step_classify(ctx: StepContext) -> None:
    """classify(): 50 categories x 5 shots, 10,000 query items whose embeddings are cached."""
    classify = require("metarec_core.categories", "classify")
    path = SHARED_DATASETS_DIR / "instacart" / "items.csv.gz"
    if not path.exists():
        raise Skip("instacart items not found")
    items = pd.read_csv(path)
    items = items.rename(columns={"name": "title", "aisle": "category"})
    cats = items.category.value_counts().index[:50]
    pool = items[items.category.isin(cats)].sample(frac=1.0, random_state=0)
    support = pool.groupby("category").head(5)
    n_query = ctx.pick(1000, 10_000, 10_000)
    query = items.drop(support.index).sample(n=n_query, random_state=0)[["item_id", "title"]]
    enc = _encoder(ctx)
    cache_dir = ctx.work / "classify-cache"
    classify(support[["item_id", "title", "category"]], query, encoder=enc, cache_dir=cache_dir)
    for _ in range(ctx.pick(2, 3, 5)):
        seconds, res = timed(
            lambda: classify(
                support[["item_id", "title", "category"]], query, encoder=enc, cache_dir=cache_dir
            )
        )
        ctx.add(f"classify_{'10k' if n_query == 10_000 else '1k'}_s", seconds, "s")
    ctx.info.update(n_query=n_query, n_categories=len(cats), model_used=res.model_used)
    wide = _encoder(ctx, dim=768)  # mpnet's width, on the same cached-embedding path
    support, cache_dir = support[["item_id", "title", "category"]], cache_dir / "768d"
    classify(support, query, encoder=wide, cache_dir=cache_dir)
    for _ in range(ctx.pick(2, 3, 5)):
        seconds, _ = timed(lambda: classify(support, query, encoder=wide, cache_dir=cache_dir))
        ctx.add(f"classify_{'10k' if n_query == 10_000 else '1k'}_768d_s", seconds, "s")


def step_train_categories(ctx: StepContext) -> None:
    """``metarec_core train-categories`` on the shared Instacart catalogue (98 aisles, 36k
    products) with a fresh data dir: every name goes through the encoder (cold cache)."""
    require("metarec_core.cli.category_cmds", "register")
    path = SHARED_DATASETS_DIR / "instacart" / "items.csv.gz"
    if not path.exists():
        raise Skip("instacart items not found")
    out, home = ctx.work / "models" / "categories-instacart", ctx.work / "train-categories-home"
    for p in (out, home):
        shutil.rmtree(p, ignore_errors=True)
    cmd = _cli("train-categories", "--items", str(path), "--category-column", "aisle",
               "--text-column", "name", "--out", str(out), "--device", ctx.device)  # fmt: skip
    child = run_child(cmd, timeout_s=1800, env=child_env({"METAREC_DATA_DIR": str(home)}))
    if child.returncode != 0:
        raise RuntimeError(
            f"train-categories failed (exit {child.returncode}): {child.output_tail[-800:]}"
        )
    ctx.add("train_categories_instacart_s", child.wall_s, "s")
    report_file = out / "training_report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    ctx.info.update(
        peak_rss_mb=round(child.peak_rss_mb, 1),
        seconds=report.get("seconds"),
        projection_kept=report.get("validation", {}).get("projection_kept"),
        stderr_tail=child.output_tail.strip().splitlines()[-1:],
    )


# ---- UMAP ---------------------------------------------------------------------------------------
def _points(n: int, seed: int) -> np.ndarray:
    """n unit vectors in 384-d around 50 cluster centres (item-embedding-like geometry)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, 384)).astype(np.float32)
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _project(n: int, seed: int) -> float:
    project = require("metarec_core.viz.projection", "project")
    x = _points(n, seed)
    seconds, proj = timed(lambda: project(np.arange(n), x, cache_dir=None))
    assert proj.coords.shape == (n, 2) and not proj.cached
    return seconds


def step_umap_cold(ctx: StepContext) -> None:
    """A 5k map in a fresh process (imports and numba compilation included)."""
    ctx.add("umap_5k_cold_s", _project(5000, seed=int(time.time()) % 1000), "s")


def step_umap_warm(ctx: StepContext) -> None:
    """20k cold in a fresh process, then 5k and 20k again with new points (compiled already)."""
    big = ctx.pick(2000, 5000, 20000)
    ctx.add(f"umap_{big // 1000}k_cold_s", _project(big, seed=1), "s")
    for r in range(ctx.pick(1, 2, 3)):
        ctx.add("umap_5k_warm_s", _project(5000, seed=10 + r), "s")
    if big == 20000:
        ctx.add("umap_20k_warm_s", _project(20000, seed=20), "s")


STEPS = [
    Step("train", step_train, ("train_beauty_s", "train_ml100k_s", "train_tiny_s"),
         {"tiny": 180, "quick": 900, "full": 3100}),
    Step("adapt", step_adapt,
         tuple(f"adapt_ms_p{p}_k{k}" for k in ADAPT_KS for p in (50, 95))
         + tuple(f"adapt_users_per_s_{n}" for n in BATCH_USERS),
         {"tiny": 120, "quick": 300, "full": 600}),
    Step("recommend", step_recommend, ("recommend_2000_s",),
         {"tiny": 120, "quick": 300, "full": 600}),
    Step("encode", step_encode, ("encode_titles_per_s", "encode_titles_per_cpu_s", "cache_hits_per_s",
         "encode_mpnet_titles_per_s", "encode_multilingual_titles_per_s")),
    Step("classify", step_classify, ("classify_10k_s", "classify_1k_s", "classify_10k_768d_s",
         "classify_1k_768d_s")),
    Step("train_categories", step_train_categories, ("train_categories_instacart_s",),
         {"tiny": 60, "quick": 1900, "full": 1900}, modes=("quick", "full")),
    Step("umap_cold", step_umap_cold, ("umap_5k_cold_s",), {"tiny": 60, "quick": 240, "full": 240},
         processes={"tiny": 1, "quick": 1, "full": 3}, modes=("quick", "full")),
    Step("umap_warm", step_umap_warm, ("umap_5k_warm_s", "umap_20k_cold_s", "umap_20k_warm_s"),
         {"tiny": 60, "quick": 300, "full": 600}, modes=("quick", "full")),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_speed", "speed", STEPS))
