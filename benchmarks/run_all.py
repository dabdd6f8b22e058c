"""``make bench``: run every bench script, write results/latest.json, append a line of headline
figures to results/history.jsonl, regenerate the tables in benchmarks/RESULTS.md.

    python -m benchmarks.run_all [--quick | --tiny] [--device cpu|cuda|auto]
                                 [--benches speed,scale,coldstart,categories] [--steps a,b]
                                 [--fresh] [--results-dir DIR] [--readme PATH]

Results are merged step by step into the existing latest.json (unless ``--fresh``): a step that
ran replaces its previous result, the others keep theirs with the time and mode they were
measured in, so a long suite can be refreshed in parts. Each bench script runs in its own
process and prints its JSON; see benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    ROOT,
    TARGETS,
    child_env,
    machine_info,
    machine_label,
    run_child,
    target_met,
)
from benchmarks.report import update_readme

BENCHES = {
    "speed": "bench_speed",
    "scale": "bench_scale",
    "coldstart": "bench_coldstart_quality",
    "categories": "bench_categories_quality",
    "demo": "bench_demo",
    "load": "bench_load",
    "transfer": "bench_transfer",
}
TIMEOUT_S = {"tiny": 600, "quick": 3600, "full": 6 * 3600}


def run_bench(script: str, mode: str, device: str, steps: str | None) -> dict[str, Any]:
    """Run one bench script in a child process and return its JSON (or a failure record)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", f"benchmarks.{script}", "--mode", mode, "--device", device,
               "--out", str(out)] + (["--only", steps] if steps else [])  # fmt: skip
        child = run_child(cmd, TIMEOUT_S[mode], env=child_env())
        if out.exists():
            return json.loads(out.read_text())
    return {"bench": script, "mode": mode, "device": device, "steps": {}, "figures": {},
            "error": f"exit {child.returncode}: {child.output_tail[-800:]}"}  # fmt: skip


def merge(
    previous: dict[str, Any] | None,
    runs: list[dict[str, Any]],
    machine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fold new bench outputs into the previous latest.json, step by step; each new step records
    the machine it ran on (``machine``: machine_info()), since kept steps may come from others."""
    sections: dict[str, Any] = dict((previous or {}).get("sections", {}))
    for run in runs:
        sec = sections.setdefault(run["bench"], {"steps": {}})
        sec.setdefault("steps", {})
        for name, step in run["steps"].items():
            if step["status"] == "skipped" and step["reason"].startswith("runs in "):
                continue  # not part of this mode: keep what an earlier run measured
            new = step | {
                "mode": run["mode"],
                "device": run["device"],
                "measured_at": run.get("finished_at"),
                "machine": machine_label(machine) if machine else None,
            }
            old = sec["steps"].get(name)
            if new["status"] in ("timeout", "failed") and old and old.get("figures"):
                # a failed rerun must not wipe what an earlier run measured: keep it, and say so
                attempt = {k: new.get(k) for k in ("status", "reason", "measured_at", "machine")}
                sec["steps"][name] = old | {"last_attempt": attempt}
                continue
            sec["steps"][name] = new
        if run.get("error"):
            sec["error"] = run["error"]
    figures: dict[str, Any] = {}
    for bench, sec in sections.items():
        for name, step in sec["steps"].items():
            for key, fig in step.get("figures", {}).items():
                figures[key] = fig | {
                    "bench": bench,
                    "step": name,
                    "mode": step["mode"],
                    "device": step["device"],
                    "measured_at": step["measured_at"],
                    "target": _target_text(key),
                    # tiny mode uses a fake encoder and toy sizes: never judged against targets
                    "met": None if step["mode"] == "tiny" else target_met(key, fig.get("median")),
                }
    return {"sections": sections, "figures": dict(sorted(figures.items()))}


HISTORY_FILE = "history.jsonl"
# Quality figures kept per run in history.jsonl, beside every target's figure.
HISTORY_QUALITY = (
    "cat_5way_acc_k1", "cat_5way_acc_k5", "cat_allway_acc_k5", "cat_5way_acc_k5_plain-prototypes",
    "cat_allway_acc_k5_plain-prototypes", "cs_beauty_k5_adapted_ndcg10",
    "cs_beauty_k5_popularity_ndcg10", "cs_instacart_k5_adapted_ndcg10",
    "cs_instacart_k5_popularity_ndcg10", "cs_ml100k_k5_adapted_ndcg10",
    "cs_ml100k_k5_popularity_ndcg10",
)  # fmt: skip


def history_line(latest: dict[str, Any]) -> dict[str, Any]:
    """One run's headline figures (4 significant digits) for results/history.jsonl."""
    summary = latest.get("summary", {})
    keys = [*TARGETS, *HISTORY_QUALITY]
    return {
        "generated_at": latest.get("generated_at"),
        "mode": latest.get("mode"),
        "device": latest.get("device"),
        "commit": (latest.get("machine") or {}).get("git_commit"),
        "figures": {k: float(f"{summary[k]:.4g}") for k in keys if summary.get(k) is not None},
    }


def _target_text(key: str) -> str | None:
    if key not in TARGETS:
        return None
    op, bound, unit = TARGETS[key]
    return f"{ {'<=': '≤', '>=': '≥'}.get(op, op) } {bound:g} {unit}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run_all", description=__doc__.split("\n")[0]
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick")
    g.add_argument("--tiny", dest="mode", action="store_const", const="tiny")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--benches", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES)
    )
    p.add_argument("--steps", default=None, help="only these steps (names from --list of a script)")
    p.add_argument(
        "--fresh", action="store_true", help="do not merge into the existing latest.json"
    )
    p.add_argument("--results-dir", default=str(RESULTS), help="where latest.json goes")
    p.add_argument(
        "--readme", default=str(ROOT / "benchmarks" / "RESULTS.md"), help="tables file to update"
    )
    args = p.parse_args(argv)
    mode = args.mode or "full"
    benches = [b.strip() for b in args.benches.split(",") if b.strip()]
    unknown = [b for b in benches if b not in BENCHES]
    if unknown:
        p.error(f"unknown bench(es): {', '.join(unknown)}")
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    latest_path = results_dir / "latest.json"
    previous = None
    if latest_path.exists() and not args.fresh:
        previous = json.loads(latest_path.read_text())
    runs = []
    for b in benches:
        t0 = time.perf_counter()
        print(f"[bench] {b} ({mode}, {args.device}) ...", file=sys.stderr, flush=True)
        runs.append(run_bench(BENCHES[b], mode, args.device, args.steps))
        print(f"[bench] {b} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    machine = machine_info()
    latest = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": mode,
        "device": args.device,
        "machine": machine,
        **merge(previous, runs, machine),
    }
    latest["summary"] = {k: f.get("median") for k, f in latest["figures"].items()}
    for key in TARGETS:  # headline figures also at the top level: latest["adapt_ms_p50_k5"]
        latest[key] = latest["summary"].get(key)
    text = json.dumps(latest, indent=2, default=str)
    latest_path.write_text(text)
    with (results_dir / HISTORY_FILE).open("a") as f:
        f.write(json.dumps(history_line(latest)) + "\n")
    update_readme(Path(args.readme), latest)
    print(json.dumps(latest["summary"], indent=2))
    print(f"wrote {latest_path} and {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
