"""Scale: synthetic logs of 1M and 10M rows -> import, page queries, Parquet-direct, episodes/s.

Steps per size (tiny: 20k rows; quick: 1M; full: 1M and 10M):
  synth_<size>     generate the log with DuckDB SQL (benchmarks.synthetic) -> Parquet
  import_<size>    import the Parquet into a fresh store file with the data layer's importer
  queries_<size>   every query the Overview and Data Explorer pages run, p50 over runs
  parquet_<size>   the same queries answered from the Parquet files through views (no import)
  episodes_<size>  meta-training episodes sampled by SQL from the store (and from Parquet)

Run: ``python -m benchmarks.bench_scale [--quick|--tiny] [--only queries_10m]`` (JSON on stdout).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.common import Skip, Step, StepContext, bench_main, percentile, timed

SIZES = {"20k": 20_000, "1m": 1_000_000, "10m": 10_000_000}
SIZE_MODES = {"20k": ("tiny",), "1m": ("quick", "full"), "10m": ("full",)}


def _dir(ctx: StepContext, size: str) -> Path:
    return ctx.work / "scale" / size


def _files(ctx: StepContext, size: str):
    from benchmarks.synthetic import SyntheticFiles

    marker = _dir(ctx, size) / "synthetic.json"
    if not marker.exists():
        raise Skip(f"no synthetic {size} log: run the synth_{size} step first")
    d = json.loads(marker.read_text())
    return SyntheticFiles(
        out_dir=Path(d["out_dir"]),
        items_path=Path(d["items_path"]),
        interactions_path=Path(d["interactions_path"]),
        interactions_glob=d["interactions_glob"],
        n_rows=d["n_rows"],
        n_items=d["n_items"],
        seconds=d["seconds"],
    )


def _store_path(ctx: StepContext, size: str) -> Path:
    return _dir(ctx, size) / "store.duckdb"


# ---- steps ------------------------------------------------------------------------------------
def step_synth(ctx: StepContext, size: str) -> None:
    """Generate the synthetic log (hive-partitioned by month) and the catalogue."""
    from benchmarks.synthetic import SyntheticConfig, write_synthetic

    out = _dir(ctx, size) / "parquet"
    shutil.rmtree(out, ignore_errors=True)
    files = write_synthetic(
        out, SyntheticConfig(n_rows=SIZES[size], seed=0), partition_by_month=True
    )
    ctx.add(f"synth_{size}_s", files.seconds, "s")
    bytes_ = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    ctx.info.update(rows=files.n_rows, items=files.n_items, parquet_mb=round(bytes_ / 2**20, 1))
    (_dir(ctx, size) / "synthetic.json").write_text(
        json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in files.__dict__.items()})
    )


def step_import(ctx: StepContext, size: str) -> None:
    """Import the partitioned Parquet folder into a fresh store file with the data importer."""
    from metarec_core.data.importers import import_files
    from metarec_core.data.pipeline import ColumnMapping
    from metarec_core.data.store import Store

    files = _files(ctx, size)
    path = _store_path(ctx, size)
    for p in (path, path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    mapping = ColumnMapping(order_cols=("timestamp",), title_col="title", category_col="category")
    with Store(path) as store:
        seconds, info = timed(
            lambda: import_files(
                store,
                f"syn{size}",
                str(files.interactions_path),
                str(files.items_path),
                mapping=mapping,
            )
        )
    ctx.add(f"import_{size}_s", seconds, "s")
    ctx.info.update(
        n_interactions=info.n_interactions,
        n_users=info.n_users,
        n_items=info.n_items,
        store_mb=round(path.stat().st_size / 2**20, 1),
    )


def page_queries(store, name: str) -> dict[str, Callable[[], object]]:
    """Every query the Overview and Data Explorer pages run (through the same helpers)."""
    from metarec_core import services
    from metarec_core.data import queries as q

    cur = store.cursor()
    try:
        row = cur.execute(
            f'SELECT user_id FROM "{name}".interactions USING SAMPLE 1 ROWS'
        ).fetchall()
        cat = cur.execute(
            f'SELECT category FROM "{name}".items GROUP BY 1 ORDER BY count(*) DESC LIMIT 1'
        ).fetchall()
        lo, hi = cur.execute(f'SELECT min(ts), max(ts) FROM "{name}".interactions').fetchall()[0]
    finally:
        cur.close()
    user, category = row[0][0], cat[0][0]
    month = (lo, lo + (hi - lo) / 12)
    qs: dict[str, Callable[[], object]] = {
        "overview.dataset_summary": lambda: q.dataset_summary(store, name),
        "overview.user_activity": lambda: q.user_activity(store, name),
        "overview.interactions_over_ts": lambda: q.interactions_over_order(store, name, by="ts"),
        "overview.category_mix": lambda: q.category_mix(store, name),
        "overview.activity_histogram": lambda: q.activity_histogram(store, name),
        "explorer.slice_any": lambda: services.explore(store, name),
        "explorer.slice_category": lambda: services.explore(store, name, category=category),
        "explorer.slice_cold_users": lambda: services.explore(store, name, activity="cold (≤ 5)"),
        "explorer.slice_one_month": lambda: services.explore(store, name, ts_range=month),
        "explorer.item_popularity": lambda: q.item_popularity(store, name),
        "explorer.user_history": lambda: q.user_history(store, name, user),
        "explorer.user_category_mix": lambda: q.category_mix(store, name, user_id=user),
    }
    for title, sql in services.example_queries(name).items():
        qs[f"explorer.sql: {title}"] = partial(services.run_sql, store, sql, name)
    return qs


def _measure_queries(ctx: StepContext, store, name: str, key: str) -> None:
    runs = ctx.pick(2, 5, 7)
    per_query: dict[str, list[float]] = {}
    for label, fn in page_queries(store, name).items():
        fn()  # warm-up: first touch of the data
        per_query[label] = [timed(fn)[0] * 1000 for _ in range(runs)]
        err = getattr(fn(), "error", None)
        if err:
            raise RuntimeError(f"{label}: {err}")
    p50 = {k: percentile(v, 50) for k, v in per_query.items()}
    worst = max(p50, key=p50.get)
    for v in per_query[worst]:
        ctx.add(key, v, "ms")
    ctx.info["worst_query"] = worst
    ctx.info["p50_ms"] = {k: round(v, 1) for k, v in sorted(p50.items(), key=lambda kv: -kv[1])}
    ctx.info["p95_ms"] = {k: round(percentile(v, 95), 1) for k, v in per_query.items()}
    ctx.info["median_of_queries_ms"] = round(float(np.median(list(p50.values()))), 1)


def step_queries(ctx: StepContext, size: str) -> None:
    """p50 latency of each page query on the imported store; the figure is the slowest one."""
    from metarec_core.data.store import Store

    path = _store_path(ctx, size)
    if not path.exists():
        raise Skip(f"no {size} store: run import_{size} first")
    with Store(path, read_only=True) as store:
        _measure_queries(ctx, store, f"syn{size}", f"explorer_{size}_p50_ms")
        t, _ = timed(
            lambda: __import__("metarec_core.services").services.overview(store, f"syn{size}")
        )
        ctx.info["overview_service_s"] = round(t, 3)


def step_parquet(ctx: StepContext, size: str) -> None:
    """The same page queries answered from the Parquet files through DuckDB views (no import)."""
    from benchmarks.parquet_direct import parquet_store

    files = _files(ctx, size)
    seconds, store = timed(
        lambda: parquet_store(f"syn{size}", files.interactions_glob, str(files.items_path))
    )
    ctx.info["attach_s"] = round(seconds, 3)
    try:
        _measure_queries(ctx, store, f"syn{size}", f"parquet_{size}_p50_ms")
    finally:
        store.close()


def step_episodes(ctx: StepContext, size: str) -> None:
    """Episodes/s sampled by SQL from the store (global shuffle and block shuffle), from the
    Parquet files, and with a reference first-order meta-training step on each batch."""
    from benchmarks.episodes import EpisodeConfig, EpisodeSampler
    from metarec_core.data.store import Store

    path = _store_path(ctx, size)
    if not path.exists():
        raise Skip(f"no {size} store: run import_{size} first")
    n_batches, repeats = ctx.pick(3, 8, 10), ctx.pick(2, 3, 3)
    cfg = dict(k_support=5, n_query=20, batch_users=256)
    with Store(path, read_only=True) as store:
        t0 = time.perf_counter()
        sampler = EpisodeSampler.from_store(store, f"syn{size}", cfg=EpisodeConfig(**cfg))
        ctx.info["sampler_init_s"] = round(time.perf_counter() - t0, 3)
        ctx.info["eligible_users"] = sampler.n_users
        _rate(ctx, f"episodes_per_s_{size}", sampler, n_batches, repeats)
        block = EpisodeSampler.from_store(
            store, f"syn{size}", cfg=EpisodeConfig(**cfg, block_users=4096)
        )
        _rate(ctx, f"episodes_block_per_s_{size}", block, n_batches, repeats)
        # the recommended setup: block shuffle, next batch fetched while the step runs
        _meta_train_rate(ctx, f"meta_train_episodes_per_s_{size}", block, n_batches, repeats)
        _meta_train_rate(
            ctx, f"meta_train_global_episodes_per_s_{size}", sampler, n_batches, repeats
        )
    files = _files(ctx, size)
    pq = EpisodeSampler.from_parquet(files.interactions_glob, cfg=EpisodeConfig(**cfg))
    _rate(ctx, f"episodes_parquet_per_s_{size}", pq, n_batches, repeats)


def _rate(ctx: StepContext, key: str, sampler, n_batches: int, repeats: int) -> None:
    for r in range(repeats):
        t0 = time.perf_counter()
        n = sum(len(b) for b in _take(sampler.epoch(r), n_batches))
        ctx.add(key, n / (time.perf_counter() - t0), "episodes/s")


def _take(it, n):
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x


def _meta_train_rate(ctx: StepContext, key: str, sampler, n_batches: int, repeats: int) -> None:
    """A reference first-order MAML step (user vector adapted on the support, sampled softmax on
    the query) on every batch, to show sampling keeps up with training."""
    import torch

    from benchmarks.episodes import prefetch

    torch.manual_seed(0)
    n_items, dim = len(sampler.item_ids), 64
    emb = torch.nn.Embedding(n_items, dim)
    user0 = torch.nn.Parameter(torch.zeros(dim))
    opt = torch.optim.Adam([*emb.parameters(), user0], lr=1e-2)

    def loss(u, items, mask, neg):  # u (B, D), items (B, L), mask (B, L), neg (N,)
        pos = (emb(items.clamp(min=0)) * u[:, None]).sum(-1)  # (B, L)
        negs = u @ emb(neg).T  # (B, N)
        lse = torch.logsumexp(
            torch.cat([pos[..., None], negs[:, None].expand(-1, pos.shape[1], -1)], -1), -1
        )
        return ((lse - pos) * mask).sum() / mask.sum().clamp(min=1)

    for r in range(repeats):
        t0, n = time.perf_counter(), 0
        for b in prefetch(_take(sampler.epoch(100 + r), n_batches)):
            s, q = torch.as_tensor(b.support), torch.as_tensor(b.query)
            neg = torch.randint(0, n_items, (512,))
            u = user0.expand(len(b), dim).clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(u, s, (s >= 0).float(), neg), u)
            outer = loss(user0 - 0.5 * g.detach(), q, (q >= 0).float(), neg)  # first order
            opt.zero_grad()
            outer.backward()
            opt.step()
            n += len(b)
        ctx.add(key, n / (time.perf_counter() - t0), "episodes/s")


# ---- step table --------------------------------------------------------------------------------
def _steps() -> list[Step]:
    steps: list[Step] = []
    for size in SIZES:
        modes = SIZE_MODES[size]
        big = size == "10m"
        to = {"tiny": 120, "quick": 300, "full": 900 if big else 300}
        reps = {"tiny": 1, "quick": 3, "full": 3}  # generate / import repeated: median of 3
        steps += [
            Step(f"synth_{size}", partial(step_synth, size=size), (f"synth_{size}_s",), to, reps, modes),
            Step(f"import_{size}", partial(step_import, size=size), (f"import_{size}_s",), to, reps, modes),
            Step(f"queries_{size}", partial(step_queries, size=size), (f"explorer_{size}_p50_ms",), to, modes=modes),
            Step(f"parquet_{size}", partial(step_parquet, size=size), (f"parquet_{size}_p50_ms",), to, modes=modes),
            Step(
                f"episodes_{size}",
                partial(step_episodes, size=size),
                (f"episodes_per_s_{size}", f"episodes_block_per_s_{size}",
                 f"episodes_parquet_per_s_{size}", f"meta_train_episodes_per_s_{size}",
                 f"meta_train_global_episodes_per_s_{size}"),
                to,
                modes=modes,
            ),
        ]  # fmt: skip
    return steps


STEPS = _steps()

if __name__ == "__main__":
    sys.exit(bench_main("bench_scale", "scale", STEPS))
