"""Real-browser smoke test: Playwright drives Debian's chromium through ``streamlit run app.py``.

The server runs on a temporary data folder seeded by the real demo import (``python -m
metarec_core demo``, MovieLens-100K from the cached recbole wheel), exactly like a first
``make run``: the app itself trains the demo models in the background. The test visits every page,
waits for the demo model, runs an adaptation in the Cold-Start Lab, checks that the before/after
lists appear, and saves a screenshot of each step under ``tests/artifacts/`` (git-ignored) along
with ``browser_timings.json``.

Skipped (with the reason) when /usr/bin/chromium is missing: ``apt-get install -y chromium``
(``.ci/run`` does it). Never ``playwright install``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ["Overview", "Data Explorer", "Cold-Start Lab", "New Shop", "New Category Lab"]
PAGES += ["Embedding Map"]
PAGES += ["Training & Runs"]
DEMO_MODEL_WAIT_S = 420  # the quick demo training of the shop takes about a minute on 2 idle cores

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: `apt-get install -y chromium` to run the browser smoke test",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"streamlit did not become healthy within {timeout:.0f} s")


def _stop_jobs(data_dir: Path) -> None:
    """Cancel background training jobs the app started that still run (never a finished one's
    pid: it may belong to another process by now)."""
    from metarec_core import jobs
    from metarec_core.config import Paths

    paths = Paths(data_dir)
    for view in jobs.list_jobs(paths):
        if view.active:
            jobs.cancel_job(view.job_id, paths)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Streamlit server on a fresh data folder with the demo data imported (first ``make run``)."""
    data = tmp_path_factory.mktemp("browser-data")
    wheels = ROOT / "data" / "cache" / "wheels"  # shared so a machine downloads the wheel once
    wheels.mkdir(parents=True, exist_ok=True)
    (data / "cache").mkdir()
    (data / "cache" / "wheels").symlink_to(wheels, target_is_directory=True)
    env = {
        **os.environ,
        "METAREC_DATA_DIR": str(data),
        "METAREC_DEMO_TRAINING": "quick",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HOME": str(data),
    }
    for key in ("METAREC_DB", "METAREC_ENCODER", "METAREC_AUTOTRAIN", "METAREC_UMAP_WARMUP"):
        env.pop(key, None)
    demo = subprocess.run(
        [sys.executable, "-m", "metarec_core", "demo", "--if-missing"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if demo.returncode != 0:
        pytest.skip(f"the demo data could not be imported: {demo.stderr.strip()[-300:]}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (data / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_healthy(url, proc, timeout=90)
        yield url, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        _stop_jobs(data)
        log.close()


# Text that shows once a page has drawn to the end (any one of them, for the labs' two states).
READY = {
    "Overview": ["Median"],
    "Data Explorer": ["Download this slice as CSV"],
    "Cold-Start Lab": ["The demo model is training", "Download stakeholder report"],
    "New Shop": ["No model of another shop yet", "Model from another shop"],
    "New Category Lab": ["Choose categories and press", "Predicted members"],
    "Embedding Map": ["projection ·"],
    "Training & Runs": ["Yes, delete it", "No trained models"],
}


class Session:
    """One browser tab on the app, with screenshots and timings."""

    def __init__(self, page) -> None:
        self.page = page
        self.main = page.get_by_test_id("stMain")
        self.timings: dict[str, float] = {}
        self.shots = 0

    def shot(self, name: str) -> None:
        self.shots += 1
        self.page.screenshot(path=str(ARTIFACTS / f"{self.shots:02d}-{name}.png"))

    def ready(self, label: str, timeout: float = 60, markers: list[str] | None = None) -> None:
        """Wait until the page ``label`` has drawn its heading and its last part."""
        self.main.locator("h1", has_text=label).first.wait_for(timeout=timeout * 1000)
        markers = [self.main.get_by_text(t, exact=False).first for t in markers or READY[label]]
        either = markers[0]
        for m in markers[1:]:
            either = either.or_(m)
        either.first.wait_for(timeout=timeout * 1000)
        self.page.get_by_test_id("stSkeleton").first.wait_for(state="hidden", timeout=30_000)

    def idle(self, timeout: float = 60) -> None:
        """Wait until no script run is in progress (Streamlit shows its status widget then)."""
        self.page.wait_for_function(
            "() => !document.querySelector('[data-testid=stStatusWidget]')",
            timeout=timeout * 1000,
        )

    def no_traceback(self, where: str) -> None:
        errors = self.page.get_by_test_id("stException")
        assert errors.count() == 0, f"{where}: {errors.first.inner_text()[:500]}"
        assert "Traceback (most recent call last)" not in self.page.inner_text("body"), where
        boxes = self.main.get_by_test_id("stAlertContentError")
        assert boxes.count() == 0, f"{where}: {boxes.first.inner_text()[:500]}"

    def go(self, label: str, timeout: float = 60, markers: list[str] | None = None) -> float:
        """Click a page in the sidebar navigation; seconds until it has drawn."""
        t0 = time.perf_counter()
        nav = self.page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name=label, exact=False).first.click()
        self.ready(label, timeout, markers)
        return time.perf_counter() - t0


def test_click_through_every_page_and_adapt(server):
    url, _data = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        s = Session(browser.new_page(viewport={"width": 1800, "height": 1600}))
        try:
            _click_through(s, url)
        except Exception:
            s.shot("failure")
            raise
        finally:
            (ARTIFACTS / "browser_timings.json").write_text(json.dumps(s.timings, indent=1))
            browser.close()


def _click_through(s: Session, url: str) -> None:
    page = s.page
    t0 = time.perf_counter()
    page.goto(url)
    s.main.locator("h1", has_text="Overview · beauty-shop").wait_for(timeout=30_000)
    s.timings["first_page_heading_s"] = time.perf_counter() - t0
    s.ready("Overview")
    s.timings["first_page_complete_s"] = time.perf_counter() - t0
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Device:").wait_for()
    assert "Dataset" in sidebar.inner_text()
    # First run: the app trains the demo models by itself and shows the progress.
    sidebar.get_by_text("demo models", exact=False).first.wait_for(timeout=30_000)
    s.no_traceback("Overview")
    s.shot("overview")

    # Every page once, while the demo model is (probably) still training: the labs say so.
    for label in PAGES[1:]:
        # the map's first embedding would race the demo training for the CPU: see it start only
        markers = ["Preparing the map", *READY[label]] if label == "Embedding Map" else None
        s.timings[f"first_visit_{label}_s"] = s.go(label, timeout=180, markers=markers)
        s.no_traceback(label)
        s.shot(label.lower().replace(" ", "-").replace("&", "and"))

    # The Cold-Start Lab unlocks by itself once the demo model is trained.
    s.go("Cold-Start Lab")
    adapt = s.main.get_by_role("button", name="Adapt", exact=True)
    t0 = time.perf_counter()
    adapt.wait_for(timeout=DEMO_MODEL_WAIT_S * 1000)
    s.timings["demo_model_wait_s"] = time.perf_counter() - t0
    s.ready("Cold-Start Lab")
    s.shot("coldstart-ready")
    for attempt in (1, 2, 3):  # a click that lands while the app reruns itself can be lost
        t0 = time.perf_counter()
        adapt.click()
        try:
            s.main.get_by_text("Adapted to", exact=False).first.wait_for(timeout=20_000)
            break
        except sync_api.TimeoutError:
            if attempt == 3:
                raise
    s.timings["adapt_click_to_results_s"] = time.perf_counter() - t0
    s.timings["adapt_attempts"] = attempt
    s.no_traceback("Cold-Start Lab after Adapt")
    for heading in ("Before: bestsellers", "After: adapted"):  # the lists side by side
        s.main.get_by_text(heading, exact=False).first.wait_for(timeout=30_000)
    s.main.get_by_test_id("stPlotlyChart").nth(1).wait_for(timeout=30_000)  # loss, mix
    s.idle()
    before, after = _result_tables(s)
    assert len(before) == len(after) == 10, (before, after)
    assert [r["title"] for r in before] != [r["title"] for r in after]
    assert {r["change"] for r in after} - {"new", "="} <= {
        r["change"] for r in after if r["change"][:1] in "▲▼"
    }
    s.shot("coldstart-adapted")
    _replay(s)
    _download_report(s, "cold-start")

    # The map, now with the adapted user on it (the first projection pays UMAP's compile).
    s.timings["map_first_s"] = s.go("Embedding Map", timeout=180)
    s.main.get_by_test_id("stPlotlyChart").first.wait_for()
    s.no_traceback("Embedding Map")
    s.shot("map-with-user")

    # Second visits: page switches with everything cached.
    for label in PAGES:
        s.timings[f"switch_{label}_s"] = s.go(label)
        s.no_traceback(label)

    s.go("New Category Lab")
    s.main.get_by_role("button", name="Run", exact=True).first.click()
    s.main.get_by_text("Predicted members", exact=False).first.wait_for(timeout=120_000)
    s.no_traceback("New Category Lab after Run")
    s.shot("categories-run")
    _download_report(s, "new-categories")

    s.go("Training & Runs")
    s.no_traceback("Training & Runs")
    s.shot("training-models")


def _tables(s: Session) -> list[list[dict[str, str]]]:
    """Every st.dataframe on the page as rows of {column: text}, read from the grid's
    accessible table (the cells themselves are drawn on a canvas)."""
    out = []
    for n in range(s.main.get_by_test_id("stDataFrame").count()):
        grid = s.main.get_by_test_id("stDataFrame").nth(n).locator("table")
        head = [h.strip() for h in grid.locator("thead th").all_inner_texts()]
        rows = [
            [c.strip() for c in r.locator("td").all_inner_texts()]
            for r in grid.locator("tbody tr").all()
        ]
        out.append([dict(zip(head, r, strict=False)) for r in rows if r])
    return out


def _result_tables(s: Session) -> tuple[list[dict], list[dict]]:
    """The Cold-Start Lab's before and after lists: both ranked, the after list with its rank
    changes (the grid's accessible table holds the columns in view, so wide tables may lack
    their last columns)."""
    deadline = time.perf_counter() + 30
    while True:  # the grid fills its accessible rows a moment after it is drawn
        tables = [t for t in _tables(s) if t and {"#", "title"} <= set(t[0])]
        before = [t for t in tables if "change" not in t[0]]
        after = [t for t in tables if "change" in t[0]]
        if (len(before) == 1 and len(after) >= 1) or time.perf_counter() > deadline:
            break
        s.page.wait_for_timeout(500)
    assert len(before) == 1 and len(after) >= 1, [list(t[0]) for t in _tables(s) if t]
    return before[0], after[0]


def _replay(s: Session) -> None:
    """The replay tab steps through the default shopper's first actions."""
    s.main.get_by_role("tab", name="Replay, click by click").click()
    t0 = time.perf_counter()
    s.main.get_by_role("button", name="Replay", exact=True).click()
    s.main.get_by_text("Hits so far", exact=False).first.wait_for(timeout=60_000)
    s.timings["replay_click_to_results_s"] = time.perf_counter() - t0
    s.idle()
    s.no_traceback("Cold-Start Lab after Replay")
    s.shot("coldstart-replay")


def _download_report(s: Session, name: str) -> None:
    """The stakeholder report downloads as one self-contained HTML file with its charts."""
    button = s.main.get_by_role("button", name="Download stakeholder report (HTML)")
    path = ARTIFACTS / f"report-{name}.html"
    for attempt in (1, 2, 3):  # a click or download caught by a rerun is lost: try again
        s.idle()
        try:
            with s.page.expect_download(timeout=30_000) as info:
                button.click()
            info.value.save_as(path)
            break
        except sync_api.Error:
            if attempt == 3:
                raise
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in html, name
    assert "<script src=" not in html, "the report must open offline"
