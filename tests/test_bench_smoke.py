"""Bench scripts in tiny mode: they run in seconds and emit valid JSON with the expected keys."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_categories_quality, bench_load, report, run_all
from benchmarks.common import TARGETS, percentile, summarise

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, METAREC_BENCH_WORK=str(tmp_path / "work"), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_every_target_key_belongs_to_a_step():
    scripts = [importlib.import_module(f"benchmarks.{m}") for m in run_all.BENCHES.values()]
    keys = {k for script in scripts for s in script.STEPS for k in s.keys}
    assert set(TARGETS) <= keys
    assert {"adapt_ms_p95_k50", "adapt_users_per_s_10000", "umap_20k_warm_s"} <= keys


def test_statistics():
    assert summarise([3.0, 1.0, 2.0], "s") == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "n": 3,
        "unit": "s",
    }
    assert summarise([])["median"] is None
    assert percentile([1, 2, 3, 4, 5], 50) == 3 and percentile([0, 10], 95) == 9.5


@pytest.mark.slow
def test_speed_script_tiny_emits_json_with_keys(tmp_path):
    out = tmp_path / "speed.json"
    res = _run(
        ["benchmarks.bench_speed", "--tiny", "--only", "encode", "--out", str(out)], tmp_path
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["bench"] == "speed" and data["mode"] == "tiny"
    step = data["steps"]["encode"]
    assert step["status"] == "ok", step["reason"]
    assert step["peak_rss_mb"] > 0
    for key in ("encode_titles_per_s", "cache_hits_per_s"):
        fig = data["figures"][key]
        assert fig["n"] == 3 and fig["min"] <= fig["median"] <= fig["max"]


@pytest.mark.slow
def test_coldstart_speed_steps_tiny(tmp_path):
    """train (fake encoder, 1 epoch) -> adapt latency/throughput -> recommend CLI, end to end."""
    out = tmp_path / "speed.json"
    res = _run(["benchmarks.bench_speed", "--tiny", "--only", "train,adapt,recommend",
                "--out", str(out)], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    steps = json.loads(out.read_text())["steps"]
    assert {s: steps[s]["status"] for s in steps} == dict.fromkeys(steps, "ok"), steps
    figs = steps["adapt"]["figures"]
    assert figs["adapt_ms_p50_k5"]["median"] > 0 and figs["adapt_users_per_s_100"]["median"] > 0
    assert steps["adapt"]["info"]["recs_rows_100"] == 100 * 20
    assert steps["recommend"]["figures"]["recommend_200_s"]["median"] > 0


@pytest.mark.slow
def test_run_all_tiny_writes_latest_history_and_tables(tmp_path):
    results, readme = tmp_path / "results", tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{report.START}\nOLD-TABLES\n{report.END}\n\noutro\n")
    steps = "synth_20k,import_20k,queries_20k"
    res = _run(["benchmarks.run_all", "--tiny", "--benches", "scale", "--steps", steps,
                "--results-dir", str(results), "--readme", str(readme)], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    latest = json.loads((results / "latest.json").read_text())
    assert sorted(p.name for p in results.iterdir()) == ["history.jsonl", "latest.json"]
    (line,) = (results / "history.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["mode"] == "tiny" and entry["generated_at"] == latest["generated_at"]
    assert isinstance(entry["figures"], dict)
    assert latest["machine"]["cores"] >= 1 and latest["machine"]["versions"]["duckdb"]
    figs = latest["figures"]
    for key in ("synth_20k_s", "import_20k_s", "explorer_20k_p50_ms"):
        assert figs[key]["median"] > 0, key
        assert figs[key]["met"] is None  # tiny mode is never judged against targets
    steps_done = latest["sections"]["scale"]["steps"]
    assert all(s["status"] == "ok" for s in steps_done.values()), steps_done
    assert "overview.dataset_summary" in steps_done["queries_20k"]["info"]["p50_ms"]
    assert set(TARGETS) <= set(latest)  # headline keys at the top level
    text = readme.read_text()
    assert text.startswith("# Bench\n\nintro") and text.rstrip().endswith("outro")
    assert "OLD-TABLES" not in text and "| 20k |" in text


def test_merge_keeps_steps_from_earlier_runs():
    old = run_all.merge(None, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "adapt": {"status": "ok", "reason": "", "figures": {"adapt_ms_p50_k5": summarise([30.0])}}},
        "finished_at": "t0"}])  # fmt: skip
    new = run_all.merge(old, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "encode": {"status": "ok", "reason": "", "figures": {}},
        "adapt": {"status": "skipped", "reason": "runs in full mode only", "figures": {}}},
        "finished_at": "t1"}])  # fmt: skip
    assert new["figures"]["adapt_ms_p50_k5"]["met"] is False  # 30 ms misses the 20 ms target
    assert set(new["sections"]["speed"]["steps"]) == {"adapt", "encode"}


def test_a_failed_rerun_keeps_the_figures_an_earlier_run_measured():
    fig = {"adapt_ms_p50_k5": summarise([10.0])}
    old = run_all.merge(None, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "adapt": {"status": "ok", "reason": "", "figures": fig}}, "finished_at": "t0"}])  # fmt: skip
    new = run_all.merge(old, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "adapt": {"status": "timeout", "reason": "timed out after 9 s", "figures": {}}},
        "finished_at": "t1"}])  # fmt: skip
    step = new["sections"]["speed"]["steps"]["adapt"]
    assert step["status"] == "ok" and step["measured_at"] == "t0"
    assert step["last_attempt"]["status"] == "timeout"
    assert new["figures"]["adapt_ms_p50_k5"]["median"] == 10.0
    assert "rerun t1" in report.render(new | {"machine": {}})
    again = run_all.merge(new, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "adapt": {"status": "ok", "reason": "", "figures": {}}}, "finished_at": "t2"}])  # fmt: skip
    assert "last_attempt" not in again["sections"]["speed"]["steps"]["adapt"]  # a success replaces


def test_steps_record_the_machine_they_ran_on():
    """Steps kept from earlier runs may come from another machine; the report says which."""
    a = {"cpu": "CPU A", "cores": 2, "isa": "AVX-512"}
    b = {"cpu": "CPU B", "cores": 2, "isa": "AVX2"}
    old = run_all.merge(None, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "adapt": {"status": "ok", "reason": "", "figures": {}}}, "finished_at": "t0"}], a)  # fmt: skip
    new = run_all.merge(old, [{"bench": "speed", "mode": "full", "device": "cpu", "steps": {
        "encode": {"status": "ok", "reason": "", "figures": {}}}, "finished_at": "t1"}], b)  # fmt: skip
    steps = new["sections"]["speed"]["steps"]
    assert steps["adapt"]["machine"] == "CPU A (2 cores, AVX-512)"
    assert steps["encode"]["machine"] == "CPU B (2 cores, AVX2)"
    text = report.render(new | {"machine": b})
    assert "Machine of the last run: **CPU B** (AVX2)" in text
    assert "another machine (CPU A (2 cores, AVX-512))" in text
    assert "| speed/adapt | ok | full |" in text and "| CPU A (2 cores, AVX-512) |" in text


def test_report_renders_quality_tables():
    latest = {"figures": {}, "sections": {
        "coldstart_quality": {"steps": {"ml-100k": {"status": "ok", "info": {"seeds": [0, 1], "table": [
            {"method": "adapted", "k": 3, "ndcg@10": 0.1, "ndcg@10_ci95": 0.01},
            {"method": "popularity", "k": 3, "ndcg@10": 0.05}]}}}},
        "categories_quality": {"steps": {"evaluate": {"status": "ok", "info": {
            "folds": [{"held_out": ["a", "b"]}],
            "table": [{"method": "metarec", "setting": "5-way 5-shot", "metric": "accuracy",
                       "mean": 0.9, "ci95": 0.01}]}}}}}}  # fmt: skip
    text = report.render(latest)
    assert "| adapted | 0.1000 ± 0.0100 |" in text
    assert "| metarec | 0.900 ± 0.010 |" in text
    latest["sections"]["coldstart_quality"]["steps"]["ml-100k"]["info"]["seeds"] = [0]
    single = report.render(latest)  # one seed gives no interval, so none is shown
    assert "| adapted | 0.1000 |" in single and "one seed: no interval" in single


@pytest.mark.skipif(
    not (bench_categories_quality.SHARED_DATASETS_DIR / "instacart" / "items.csv.gz").exists(),
    reason="shared Instacart catalogue not found",
)
@pytest.mark.slow
def test_matched_step_tiny(tmp_path):
    out = tmp_path / "categories.json"
    res = _run(["benchmarks.bench_categories_quality", "--tiny", "--only", "matched", "--out",
                str(out)], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    step = json.loads(out.read_text())["steps"]["matched"]
    assert step["status"] == "ok", step["reason"]
    fits = step["info"]["fits"]
    assert set(fits) == {"5-way 5-shot", "5-way 1-shot", "all-way 5-shot"}
    assert all(f["n_sets"] == 3 and f["extrapolated"] for f in fits.values())  # fake encoder
    assert len(step["info"]["natural_5way_5shot"]) == 2


def test_matched_fit_reads_the_line_at_the_reference():
    """Engine = 0.2 + 0.8 * plain over the sets: read at plain 0.86 / 0.63 exactly."""
    rng = np.random.default_rng(0)
    results = []
    for _ in range(30):
        p5, pall = rng.uniform(0.75, 0.9), rng.uniform(0.45, 0.68)
        results.append({"plain 5-way 5-shot": p5, "plain all-way 5-shot": pall,
                        "metarec 5-way 5-shot": 0.2 + 0.8 * p5, "metarec 5-way 1-shot": p5 - 0.1,
                        "metarec all-way 5-shot": 0.1 + 1.0 * pall})  # fmt: skip
    fits = bench_categories_quality.matched_fits(results, boot=50)
    assert fits["5-way 5-shot"]["at_reference"] == pytest.approx(0.2 + 0.8 * 0.86, abs=1e-4)
    assert fits["5-way 1-shot"]["at_reference"] == pytest.approx(0.76, abs=1e-4)
    assert fits["all-way 5-shot"]["at_reference"] == pytest.approx(0.73, abs=1e-4)
    lo, hi = fits["all-way 5-shot"]["interval"]
    assert lo <= 0.73 <= hi and not fits["all-way 5-shot"]["extrapolated"]
    assert fits["5-way 5-shot"]["near_n"] == sum(abs(r["plain 5-way 5-shot"] - 0.86) <= 0.02
                                               for r in results)  # fmt: skip
    latest = {"figures": {}, "sections": {"categories_quality": {"steps": {
        "matched": {"mode": "full", "info": {"fits": fits, "natural_5way_5shot": [
            {"departments": ["a"], "metarec": 0.92, "plain": 0.85}]}}}}}}  # fmt: skip
    text = report.render(latest)
    assert "| 5-way 5-shot | 0.86 | 0.888 |" in text and "| met |" in text
    assert "| 5-way 1-shot | 0.86 | 0.760 |" in text and "| not met |" in text
    assert "on 1 of the sets within 0.02 of the reference: engine 0.920" in text


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs CUDA (the --device cuda path)"
)
def test_speed_suite_on_cuda(tmp_path):
    out = tmp_path / "speed.json"
    res = _run(["benchmarks.bench_speed", "--tiny", "--device", "cuda", "--only",
                "encode,train,adapt,recommend", "--out", str(out)], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["device"] == "cuda"
    assert {n: s["status"] for n, s in data["steps"].items()} == dict.fromkeys(data["steps"], "ok")


def test_parquet_direct_answers_the_page_queries(tmp_path):
    from benchmarks.parquet_direct import parquet_store
    from benchmarks.synthetic import SyntheticConfig, write_synthetic
    from metarec_core.data import queries as q

    files = write_synthetic(
        tmp_path, SyntheticConfig(n_rows=3_000, seed=1), partition_by_month=True
    )
    store = parquet_store("syn", files.interactions_glob, str(files.items_path))
    try:
        summary = q.dataset_summary(store, "syn").iloc[0]
        assert summary["n_interactions"] == 3_000 and summary["n_items"] == files.n_items
        assert len(q.item_popularity(store, "syn", top_n=5)) == 5
        assert store.list_datasets()["name"].tolist() == ["syn"]
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not bench_load.CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_load_step_quick_two_sessions(tmp_path):
    """Two browser sessions tour the app and adapt while a categories model trains: no error,
    a page time for every visit, and only the job's new model added to the data folder."""
    pytest.importorskip("playwright.async_api", reason="the playwright package is missing")
    out = tmp_path / "load.json"
    res = _run(["benchmarks.bench_load", "--quick", "--out", str(out)], tmp_path, timeout=1800)
    assert res.returncode == 0, res.stderr
    step = json.loads(out.read_text())["steps"]["load"]
    assert step["status"] == "ok", step["reason"]
    figs, info = step["figures"], step["info"]
    assert figs["load_sessions"]["median"] == 2
    assert figs["load_errors"]["median"] == 0, info["errors"]
    assert figs["load_files_changed"]["median"] == 0, info["files_changed"]
    assert info["page_visits"] == 2 * (len(bench_load.TOUR) + 1) and info["adaptations"] == 2
    assert 0 < figs["load_page_p50_s"]["median"] <= figs["load_p95_page_s"]["median"]
    assert info["job"]["state"] == "done"
