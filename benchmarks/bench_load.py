"""Load: simultaneous browser sessions on one app server while a model trains in the background.

    python -m benchmarks.bench_load [--quick]      (quick: 2 sessions; full: 8)

The step imports DATASET into a scratch data folder, trains a small cold-start model (the
Cold-Start Lab adapts with it) and starts ``streamlit run app.py`` on that folder. One warm-up
session tours every page first: the first visits pay one-off costs of a fresh server (loading the
model, UMAP's compile), which are measured apart. Then a background training job starts (a
categories model, as from Training & Runs) and N sessions run at the same time, each in its own
browser context of one Debian chromium driven by Playwright: every page of the tour, then one
Adapt in the Cold-Start Lab. Afterwards the step waits for the job and compares the store and the
model files byte for byte with a snapshot taken before the server started.

Page time: from the click in the navigation (or the first page load) until the page's heading is
drawn and its script run has finished. Figures: ``load_sessions``, ``load_p95_page_s``
(target <= 3 s on 2 cores), ``load_errors`` (exceptions, error boxes, timeouts in any session),
``load_files_changed`` (store or model files changed or appeared, beside the job's new model, plus
one if that model is missing), ``load_page_p50_s``, ``load_adapt_p95_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, WORK, Skip, Step, StepContext, bench_main, percentile

# The one dataset choice: imported with `python -m metarec_core demo --name DATASET` (shipped in
# data/demo/, offline), and the one dataset in the scratch store, so the app opens on it.
DATASET = "beauty-shop"
IMPORT_ARGS = ("demo", "--name", DATASET)
# The cold-start model the sessions adapt with: small, since only the Lab's path matters here.
SETUP_COLDSTART = {"epochs": 1, "min_steps": 0, "max_steps": 40, "dim": 16, "batch_size": 64,
                   "neighbours": 20, "ease_max_items": 2000}  # fmt: skip
JOB_MODEL = "load-categories"  # trained in the background while the sessions run
JOB_CATEGORIES = {"episodes": 400}
CACHE = WORK / "load-cache"  # embeddings and projections, kept between runs

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TOUR = ("Overview", "Data Explorer", "Cold-Start Lab", "New Category Lab", "Embedding Map",
        "Training & Runs")  # fmt: skip
ADAPT_PAGE = "Cold-Start Lab"
PAGE_TIMEOUT_S = 180.0  # a page slower than this counts as an error

# Everything the sessions look for on a page, in one place: page texts and widget keys change,
# these should not. A script run has finished when stApp's script state is notRunning.
SEL = {
    "idle": "[data-testid=stApp][data-test-script-state=notRunning]",
    "main": "stMain",
    "nav": "stSidebarNav",
    "adapt": "Adapt",  # the button's visible text
    "table": "stDataFrame",  # a results table
    "errors": ("stException", "stAlertContentError"),
}


# ---- the scratch data folder -------------------------------------------------------------------
def _env(data: Path) -> dict[str, str]:
    env = {**os.environ, "METAREC_DATA_DIR": str(data), "METAREC_AUTOTRAIN": "0", "HOME": str(data),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    for key in ("METAREC_DB", "METAREC_ENCODER"):
        env.pop(key, None)
    return env


def _prepare(data: Path, device: str) -> None:
    """Import DATASET and train the small cold-start model the Lab needs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    (data / "cache").symlink_to(CACHE, target_is_directory=True)
    res = subprocess.run([sys.executable, "-m", "metarec_core", *IMPORT_ARGS], cwd=ROOT,
                         env=_env(data), capture_output=True, text=True, timeout=900)  # fmt: skip
    if res.returncode != 0:
        raise Skip(f"could not import {DATASET}: {res.stderr.strip()[-300:]}")
    job_id = _start_job(data, "coldstart", "load-coldstart", SETUP_COLDSTART, device)
    view = _wait_job(data, job_id, timeout_s=1200)
    if view.state != "done":
        raise RuntimeError(f"the cold-start model did not train: {view.state} {view.error}")


def _start_job(data: Path, kind: str, name: str, config: dict, device: str) -> str:
    """A background training job through the same job runner the app's Training page uses."""
    from metarec_core import services
    from metarec_core.config import Paths
    from metarec_core.jobs import JobSpec, TrainTask, start_job

    paths = Paths(data)
    store = services.open_store(paths)
    try:  # read here, so the job starts even while the server holds the store
        frames = {"interactions": store.interactions(DATASET), "items": store.items(DATASET)}
    finally:
        store.close()
    spec = JobSpec(DATASET, (TrainTask(kind, name, dict(config), False),), device, "minilm",
                   label="load benchmark")  # fmt: skip
    return start_job(spec, frames, paths)


def _wait_job(data: Path, job_id: str, timeout_s: float):
    from metarec_core import jobs
    from metarec_core.config import Paths

    paths = Paths(data)
    deadline = time.monotonic() + timeout_s
    while (view := jobs.read_job(job_id, paths)).active and time.monotonic() < deadline:
        time.sleep(1.0)
    if view.active:
        jobs.cancel_job(job_id, paths)
        view = jobs.read_job(job_id, paths)
    return view


def _snapshot(data: Path) -> dict[str, str]:
    """sha256 of the store file(s) and of every file under models/, by path in the data folder."""
    files = sorted(data.glob("metarec.duckdb*")) + sorted(
        p for p in (data / "models").rglob("*") if p.is_file()
    )
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _compare(before: dict[str, str], after: dict[str, str], model: str) -> list[str]:
    """Files changed, gone, or new other than the new model folder ``model`` (a path in the data
    folder) and its lock files."""
    allowed = (f"{model}/", f"{model}.lock", f"{model}.owner.json")
    changed = [f"changed {k}" for k in before if k in after and after[k] != before[k]]
    gone = [f"gone {k}" for k in before if k not in after]
    new = [f"new {k}" for k in after if k not in before and not k.startswith(allowed)]
    return changed + gone + new


# ---- the server --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(data: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]  # fmt: skip
    with (data / "streamlit.log").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(data), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    _stop_server(proc)
    raise TimeoutError("streamlit did not become healthy within 120 s")


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---- where the CPU went ------------------------------------------------------------------------
def _ticks(pid: int, children: dict[int, list[int]], stats: dict[int, int]) -> int:
    """CPU clock ticks of ``pid`` and its descendants (reaped children included)."""
    return stats.get(pid, 0) + sum(_ticks(c, children, stats) for c in children.get(pid, []))


def _cpu_now(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the app server's process tree, this process's other children (the
    browser: Playwright's driver and chromium), and the whole machine (busy time, all cores)."""
    stats: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)
        stats[pid] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    hz = os.sysconf("SC_CLK_TCK")
    mine = [c for c in children.get(os.getpid(), []) if c != server_pid]
    browser = [c for c in mine if b"metarec_core.jobs" not in _cmdline(c)]
    busy = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(busy[3]) + int(busy[4])  # idle + iowait
    return {"server": _ticks(server_pid, children, stats) / hz,
            "browser": sum(_ticks(c, children, stats) for c in browser) / hz,
            "machine": (sum(int(x) for x in busy[:8]) - idle) / hz}  # fmt: skip


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _cpu_split(start: dict[str, float], end: dict[str, float], wall: float) -> dict[str, Any]:
    """CPU seconds over a window: server, browser, the rest (training job and other work)."""
    used = {k: round(end[k] - start[k], 1) for k in start}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"server_s": used["server"], "browser_s": used["browser"],
            "rest_s": round(used["machine"] - used["server"] - used["browser"], 1),
            "machine_s": used["machine"], "available_s": round(wall * (cores or 1), 1)}  # fmt: skip


# ---- one browser session -----------------------------------------------------------------------
async def _ready(page, label: str) -> None:
    """The page ``label`` has drawn its heading and its script run has finished."""
    timeout = PAGE_TIMEOUT_S * 1000
    heading = page.get_by_test_id(SEL["main"]).locator("h1", has_text=label).first
    await heading.wait_for(timeout=timeout)
    await page.locator(SEL["idle"]).wait_for(state="attached", timeout=timeout)


async def _problems(page) -> list[str]:
    """Exceptions and error boxes on the page, one line each."""
    out = []
    for test_id in SEL["errors"]:
        boxes = page.get_by_test_id(test_id)
        if await boxes.count():
            text = (await boxes.first.inner_text()).strip().splitlines() or [""]
            out.append(f"{test_id}: {text[0][:200]}")
    return out


async def _adapt(page) -> float:
    """Click Adapt in the Cold-Start Lab; seconds until a new results table has drawn."""
    main = page.get_by_test_id(SEL["main"])
    button = main.get_by_role("button", name=SEL["adapt"], exact=True)
    await button.wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    tables = main.get_by_test_id(SEL["table"])
    n_before = await tables.count()
    t0 = time.perf_counter()
    await button.click()
    await tables.nth(n_before).wait_for(state="attached", timeout=PAGE_TIMEOUT_S * 1000)
    await page.locator(SEL["idle"]).wait_for(state="attached", timeout=PAGE_TIMEOUT_S * 1000)
    return time.perf_counter() - t0


async def _session(browser, url: str, n: int) -> dict[str, Any]:
    """One user: the page tour, then one adaptation. Errors are recorded, never raised."""
    rec: dict[str, Any] = {"session": n, "pages": [], "adapt_s": None, "errors": []}
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    context.set_default_timeout(PAGE_TIMEOUT_S * 1000)  # clicks too: a slow page is not an error
    page = await context.new_page()
    label = TOUR[0]
    try:
        t0 = time.perf_counter()
        await page.goto(url)
        await _ready(page, label)
        rec["pages"].append((label, time.perf_counter() - t0))
        rec["errors"] += [f"{label}: {p}" for p in await _problems(page)]
        for label in (*TOUR[1:], ADAPT_PAGE):
            t0 = time.perf_counter()
            await page.get_by_test_id(SEL["nav"]).get_by_role("link", name=label).first.click()
            await _ready(page, label)
            rec["pages"].append((label, time.perf_counter() - t0))
            rec["errors"] += [f"{label}: {p}" for p in await _problems(page)]
        label = f"{ADAPT_PAGE} Adapt"
        rec["adapt_s"] = await _adapt(page)
        rec["errors"] += [f"{label}: {p}" for p in await _problems(page)]
    except Exception as exc:  # noqa: BLE001 - a session's failure is a measured error
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        rec["errors"].append(f"{label}: {type(exc).__name__}: {first}")
    finally:
        await context.close()
    return rec


async def _sessions(
    url: str, n: int, home: Path, server_pid: int
) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    """``n`` sessions at once in one chromium: their records, the wall time they took and where
    the CPU went meanwhile."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS,
                                          env={**os.environ, "HOME": str(home)})  # fmt: skip
        try:
            cpu0, t0 = _cpu_now(server_pid), time.perf_counter()
            recs = await asyncio.gather(*(_session(browser, url, i) for i in range(n)))
            wall = time.perf_counter() - t0
            return list(recs), wall, _cpu_split(cpu0, _cpu_now(server_pid), wall)
        finally:
            await browser.close()


# ---- the step ----------------------------------------------------------------------------------
def step_load(ctx: StepContext) -> None:
    """Warm-up tour, then N simultaneous sessions while a categories model trains."""
    if not CHROMIUM.exists():
        raise Skip(f"{CHROMIUM} is missing: `apt-get install -y chromium`")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        raise Skip("the playwright package is missing (requirements-dev.txt)") from exc
    from metarec_core import jobs
    from metarec_core.config import Paths

    n = ctx.pick(2, 2, 8)
    with tempfile.TemporaryDirectory(dir=ctx.work, prefix="load-") as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        _prepare(data, ctx.device)
        ctx.info["prepare_s"] = round(time.perf_counter() - t0, 1)
        before = _snapshot(data)
        server, url = _start_server(data)
        job_id = None
        try:
            warm, warm_s, _ = asyncio.run(_sessions(url, 1, data, server.pid))
            ctx.info["warmup"] = {"seconds": round(warm_s, 1), "pages": _rounded(warm[0]["pages"]),
                                  "errors": warm[0]["errors"]}  # fmt: skip
            job_id = _start_job(data, "categories", JOB_MODEL, JOB_CATEGORIES, ctx.device)
            t_start = time.time()
            recs, wall, cpu = asyncio.run(_sessions(url, n, data, server.pid))
            t_end = time.time()
            job = _wait_job(data, job_id, timeout_s=900)
        finally:
            if job_id and jobs.read_job(job_id, Paths(data)).active:
                jobs.cancel_job(job_id, Paths(data))
            _stop_server(server)
        model = jobs.model_dir(Paths(data), DATASET, JOB_MODEL)
        lost = _compare(before, _snapshot(data), str(model.relative_to(data)))
        if job.state != "done" or not (model.is_dir() and any(model.iterdir())):
            lost.append(f"job {job.state}: no new model {JOB_MODEL} ({job.error or 'no error'})")
    _record(ctx, n, warm[0]["errors"], recs, wall, lost)
    started, finished = job.started or t_start, job.finished or t_end
    overlap = max(0.0, min(finished, t_end) - max(started, t_start)) / max(t_end - t_start, 1e-9)
    ctx.info["cpu_during_sessions"] = cpu
    ctx.info["job"] = {"state": job.state, "seconds": round(job.elapsed, 1),
                       "share_of_sessions_overlapped": round(overlap, 3)}  # fmt: skip


def _rounded(pages: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(label, round(s, 2)) for label, s in pages]


def _record(ctx: StepContext, n: int, warm_errors: list[str], recs: list[dict], wall: float,
            lost: list[str]) -> None:  # fmt: skip
    """Figures and details of the loaded sessions (the warm-up's errors count too)."""
    times = [s for r in recs for _, s in r["pages"]]
    adapts = [r["adapt_s"] for r in recs if r["adapt_s"] is not None]
    errors = [f"warm-up: {e}" for e in warm_errors]
    errors += [f"session {r['session']}: {e}" for r in recs for e in r["errors"]]
    ctx.add("load_sessions", n, "sessions")
    ctx.add("load_errors", len(errors), "errors")
    ctx.add("load_files_changed", len(lost), "files")
    if times:
        ctx.add("load_p95_page_s", percentile(times, 95), "s")
        ctx.add("load_page_p50_s", percentile(times, 50), "s")
    if adapts:
        ctx.add("load_adapt_p95_s", percentile(adapts, 95), "s")
    by_page: dict[str, list[float]] = {}
    for r in recs:
        for label, s in r["pages"]:
            by_page.setdefault(label, []).append(s)
    ctx.info.update(
        sessions_wall_s=round(wall, 1),
        page_visits=len(times),
        adaptations=len(adapts),
        page_p95_s={k: round(percentile(v, 95), 2) for k, v in by_page.items()},
        page_max_s=round(max(times), 2) if times else None,
        adapt_s=[round(a, 2) for a in adapts],
        errors=errors[:40],
        files_changed=lost[:40],
        dataset=DATASET,
    )


STEPS = [
    Step("load", step_load, ("load_sessions", "load_p95_page_s", "load_errors",
                             "load_files_changed", "load_page_p50_s", "load_adapt_p95_s"),
         {"tiny": 60, "quick": 1800, "full": 2700}, modes=("quick", "full")),
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(bench_main("bench_load", "load", STEPS))
