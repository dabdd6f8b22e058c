"""The shop demo on a fresh machine: how soon its model is usable, whether adaptation visibly pays,
and how fast the Cold-Start Lab answers.

Figures (keys of latest.json):
  first_run  demo_import_s: ``metarec_core demo`` into an empty data folder (both shops);
             demo_model_ready_s: from the app's automatic demo training start (the same job
             the app starts) until the cold-start model is listed; demo_models_all_s: until the
             job (cold-start and category models) has finished;
             demo_lift_noadapt_low / demo_lift_popularity_low: lower end of the paired 95%
             interval of adapted minus no-adapt / popularity (NDCG@10, k = 3) over every
             held-out shopper of the demo model (above zero = adaptation visibly pays);
             demo_cohort_s: that cohort's wall time
  lab        adapt_render_s: the Cold-Start Lab's script run after pressing Adapt (AppTest: the
             adaptation and every table and chart of the page, server side);
             replay_render_s: the same for a 10-step replay; replay_10_s: the replay service alone

Run: ``python -m benchmarks.bench_demo [--quick] [--only first_run,lab]``. Quick mode trains the
demo model with the quick settings the browser test uses (METAREC_DEMO_TRAINING=quick).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, Step, StepContext, bench_main, child_env, run_child, timed

SHOP = "beauty-shop"


def _data_dir(ctx: StepContext) -> Path:
    return ctx.work / "demo-data"


def step_first_run(ctx: StepContext) -> None:
    """A fresh data folder: import the demo, start the app's demo training, wait for the model."""
    data = _data_dir(ctx)
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = child_env({"METAREC_DATA_DIR": str(data)})
    if ctx.quick:
        env["METAREC_DEMO_TRAINING"] = "quick"
    child = run_child([sys.executable, "-m", "metarec_core", "demo"], 600, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"demo import failed: {child.output_tail[-600:]}")
    ctx.add("demo_import_s", child.wall_s, "s")
    os.environ.update({k: v for k, v in env.items() if k.startswith("METAREC")})
    from metarec_core import jobs, services
    from metarec_core.config import Paths

    paths = Paths(data)
    store = services.open_store(paths)
    t0 = time.perf_counter()
    job = services.ensure_demo_models(store, SHOP, paths)
    store.close()
    ready = None
    while True:
        view = jobs.read_job(job, paths)
        if ready is None and services.list_models(paths, SHOP, "coldstart"):
            ready = time.perf_counter() - t0
        if not view.active:
            break
        time.sleep(1)
    if view.state != "done":
        raise RuntimeError(f"demo training {view.state}: {view.error}")
    ctx.add("demo_model_ready_s", ready or time.perf_counter() - t0, "s")
    ctx.add("demo_models_all_s", time.perf_counter() - t0, "s")
    _lift(ctx, paths)


def _lift(ctx: StepContext, paths) -> None:
    """adapted minus no-adapt / popularity over every held-out shopper of the demo model, k = 3."""
    from metarec_core import services

    info = services.active_model(paths, SHOP, "coldstart")
    model = services.load_coldstart(info.path, device=ctx.device)
    store = services.open_store(paths)
    inter = store.interactions(SHOP)
    store.close()
    users = services.held_out_users(info, inter, 3)["user_id"].tolist()
    seconds, co = timed(
        lambda: services.cohort(model, inter, users, 3, ["adapted", "no-adapt", "popularity"])
    )
    ctx.add("demo_cohort_s", seconds, "s")
    lift = co.lift.set_index("adapted minus")
    ctx.add("demo_lift_noadapt_low", float(lift.loc["no-adapt", "95% low"]), "NDCG@10")
    ctx.add("demo_lift_popularity_low", float(lift.loc["popularity", "95% low"]), "NDCG@10")
    ctx.info["demo_lift"] = co.lift.round(5).to_dict("records")
    ctx.info["demo_held_out_users"] = len(users)


def step_lab(ctx: StepContext) -> None:
    """The Cold-Start Lab on the demo model: Adapt and a 10-step replay, as the page runs them."""
    data = _data_dir(ctx)
    if not (data / "models").exists():
        from benchmarks.common import Skip

        raise Skip("no demo model: run the first_run step first")
    os.environ.update(METAREC_DATA_DIR=str(data), METAREC_AUTOTRAIN="0", METAREC_UMAP_WARMUP="0")
    sys.path.insert(0, str(ROOT / "tests"))
    from app_support import app_test

    from metarec_core import services
    from metarec_core.config import Paths

    at = app_test(timeout=300)
    at.switch_page("pages/coldstart_lab.py").run()  # loads the model and the shop's tables
    for _ in range(ctx.pick(1, 3, 5)):
        seconds, _ = timed(lambda: at.button(key="cs_adapt").click().run())
        assert not at.exception, [e.value for e in at.exception]
        ctx.add("adapt_render_s", seconds, "s")
        seconds, _ = timed(lambda: at.button(key="cs_rp_run").click().run())
        assert not at.exception, [e.value for e in at.exception]
        ctx.add("replay_render_s", seconds, "s")
    rp = at.session_state["cs_replay"]
    ctx.info["replay_user"], ctx.info["replay_steps"] = rp.user, len(rp.frames) - 1
    paths = Paths(data)
    info = services.active_model(paths, SHOP, "coldstart")
    model = services.load_coldstart(info.path, device=ctx.device)
    store = services.open_store(paths)
    items, inter = store.items(SHOP), store.interactions(SHOP)
    store.close()
    history = inter[inter["user_id"] == rp.user]
    for _ in range(ctx.pick(1, 3, 5)):
        seconds, _ = timed(lambda: services.replay_held_out(model, items, history))
        ctx.add("replay_10_s", seconds, "s")


STEPS = [
    Step("first_run", step_first_run,
         ("demo_import_s", "demo_model_ready_s", "demo_models_all_s", "demo_cohort_s",
          "demo_lift_noadapt_low", "demo_lift_popularity_low"),
         {"tiny": 60, "quick": 1800, "full": 2400}, modes=("quick", "full")),
    Step("lab", step_lab, ("adapt_render_s", "replay_render_s", "replay_10_s"),
         {"tiny": 60, "quick": 600, "full": 600}, modes=("quick", "full")),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_demo", "demo", STEPS))
