"""Shared benchmark plumbing: modes, targets, step runner (one subprocess per step), statistics.

Every bench script is a list of *steps*. The parent process runs each step in a fresh child
(``python -m benchmarks.<script> --step NAME``), so that a crash or timeout in one step never
takes the others down and the child's own peak RSS comes back from ``os.wait4``. A child reports
*samples* (one number per repetition) for each figure; the parent turns them into
median / min / max. Steps whose engine is not built yet are reported as ``skipped`` with a reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("METAREC_BENCH_WORK", ROOT / "benchmarks" / "work"))
RESULTS = ROOT / "benchmarks" / "results"
MODES = ("tiny", "quick", "full")
RSS_LIMIT_MB = 3072.0

# key -> (comparison, bound, unit). "Peak RSS <= 3 GB" applies to every step.
TARGETS: dict[str, tuple[str, float, str]] = {
    "adapt_ms_p50_k5": ("<=", 20.0, "ms"),
    "adapt_users_per_s_1000": (">=", 500.0, "users/s"),
    "recommend_2000_s": ("<=", 30.0, "s"),
    "train_beauty_s": ("<=", 600.0, "s"),
    "encode_titles_per_s": (">=", 400.0, "titles/s"),
    "cache_hits_per_s": (">=", 50_000.0, "texts/s"),
    "classify_10k_s": ("<=", 1.0, "s"),
    "classify_10k_768d_s": ("<=", 1.0, "s"),
    "train_categories_instacart_s": ("<=", 600.0, "s"),
    "umap_5k_cold_s": ("<=", 20.0, "s"),
    "explorer_10m_p50_ms": ("<=", 200.0, "ms"),
    "demo_model_ready_s": ("<=", 300.0, "s"),
    "transfer_serve_2000_cold_s": ("<=", 30.0, "s"),
    "transfer_init_from_s": ("<=", 300.0, "s"),
    "demo_lift_noadapt_low": (">", 0.0, "NDCG@10"),
    "demo_lift_popularity_low": (">", 0.0, "NDCG@10"),
    "adapt_render_s": ("<=", 1.5, "s"),
    "replay_render_s": ("<=", 3.0, "s"),
    "load_sessions": (">=", 8.0, "sessions"),
    "load_p95_page_s": ("<=", 3.0, "s"),
    "load_errors": ("<=", 0.0, "errors"),
    "load_files_changed": ("<=", 0.0, "files"),
}


class Skip(Exception):
    """Raised by a step that cannot run here (engine not built yet, no GPU, no data)."""


@dataclass
class StepContext:
    """What a step function gets: the mode, the device, a scratch folder, and a sample sink."""

    mode: str
    device: str
    work: Path
    samples: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tiny(self) -> bool:
        return self.mode == "tiny"

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def pick(self, tiny: Any, quick: Any, full: Any) -> Any:
        """The value for the current mode."""
        return {"tiny": tiny, "quick": quick, "full": full}[self.mode]

    def add(self, key: str, value: float, unit: str = "") -> None:
        """Record one sample of a figure."""
        self.samples.setdefault(key, []).append(float(value))
        if unit:
            self.units[key] = unit


@dataclass(frozen=True)
class Step:
    """One measured step: ``fn(ctx)`` records samples; ``processes`` > 1 runs it in that many
    fresh processes (cold-start measurements) and pools the samples."""

    name: str
    fn: Callable[[StepContext], None]
    keys: tuple[str, ...]
    timeout_s: dict[str, float] = field(
        default_factory=lambda: {"tiny": 60, "quick": 300, "full": 900}
    )
    processes: dict[str, int] = field(default_factory=lambda: {"tiny": 1, "quick": 1, "full": 1})
    modes: tuple[str, ...] = MODES  # modes the step runs in; elsewhere it is reported as skipped


# ---- statistics --------------------------------------------------------------------------------
def summarise(values: list[float], unit: str = "") -> dict[str, Any]:
    """median / min / max / n of a list of samples (None values are dropped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "unit": unit}
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "unit": unit,
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def target_met(key: str, value: float | None) -> bool | None:
    """True/False against TARGETS, None when the key has no target or no value."""
    if key not in TARGETS or value is None:
        return None
    op, bound, _ = TARGETS[key]
    return {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[op]


# ---- machine -----------------------------------------------------------------------------------
def cpu_isa() -> str | None:
    """The widest vector instructions the CPU reports ("AVX-512", "AVX2", with " + BF16" when it
    multiplies bfloat16 natively), from /proc/cpuinfo.

    It matters for reading the figures: the same 2-core encoder ran 835 titles/s on the Xeon of
    the 2026-11-23 runs (its flags were not recorded) and about 290 on an AVX2-only EPYC.
    """
    from metarec_core.device import cpu_flags, cpu_has_bf16

    flags = cpu_flags()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    if isa and cpu_has_bf16():  # label propagation searches in bfloat16
        isa += " + BF16"
    return isa


def machine_label(m: dict[str, Any]) -> str:
    """Short name of a machine_info(): CPU, cores and vector instructions."""
    isa = f", {m['isa']}" if m.get("isa") else ""
    return f"{m.get('cpu')} ({m.get('cores')} cores{isa})"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, GPU (if any) and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "isa": cpu_isa(),
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
        "versions": {},
    }
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("duckdb", "torch", "numpy", "pandas", "pyarrow", "transformers", "umap-learn",
                "numba", "scikit-learn", "streamlit"):  # fmt: skip
        try:
            info["versions"][pkg] = version(pkg)
        except PackageNotFoundError:
            info["versions"][pkg] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a broken torch must not stop the report
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            timeout=5,
        ).stdout.strip()  # fmt: skip
        info["git_commit"] = commit or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


# ---- running children --------------------------------------------------------------------------
@dataclass(frozen=True)
class ChildResult:
    """A finished child process: exit code, wall time, own peak RSS (MB), output tail, and the
    CPU seconds it (and the children it waited for) used."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    timed_out: bool
    output_tail: str
    cpu_s: float = 0.0


def run_child(cmd: list[str], timeout_s: float, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> ChildResult:  # fmt: skip
    """Run ``cmd``; return its exit code, wall time and peak RSS (from wait4, its own process
    tree's largest resident set). stdout+stderr go to a temp file whose tail is kept."""
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd or ROOT, start_new_session=True)  # fmt: skip
        timed_out = False
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                os.killpg(proc.pid, 9)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        tail = log.read()[-4000:].decode("utf-8", "replace")
    rss_mb = usage.ru_maxrss / 1024.0 if usage is not None else 0.0  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime if usage is not None else 0.0
    return ChildResult(proc.returncode, wall, rss_mb, timed_out, tail, cpu)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for children: offline model hub, no tokenizer threads, extras."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1"})  # fmt: skip
    env.update(extra or {})
    return env


def run_steps(script: str, bench: str, steps: list[Step], args: argparse.Namespace) -> dict:
    """Run every selected step in its own child process(es) and assemble the bench's JSON."""
    only = set(args.only.split(",")) if args.only else None
    out: dict[str, Any] = {"bench": bench, "mode": args.mode, "device": args.device,
                           "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": {},
                           "figures": {}}  # fmt: skip
    for step in steps:
        if only and step.name not in only:
            continue
        out["steps"][step.name] = res = _run_step(script, step, args)
        for key in step.keys:
            fig = res["figures"].get(key) or summarise([], "")
            out["figures"][key] = fig | {"step": step.name, "status": res["status"]}
    out["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return out


def _run_step(script: str, step: Step, args: argparse.Namespace) -> dict[str, Any]:
    if args.mode not in step.modes:
        return {"status": "skipped", "reason": f"runs in {'/'.join(step.modes)} mode only",
                "wall_s": 0.0, "peak_rss_mb": None, "processes": 0, "rss_ok": None,
                "figures": {}, "info": {}}  # fmt: skip
    n_proc = step.processes[args.mode]
    samples: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    info: dict[str, Any] = {}
    rss, wall, cpu, status, reason = [], 0.0, 0.0, "ok", ""
    load_before = _loadavg()
    for _ in range(n_proc):
        with tempfile.TemporaryDirectory() as tmp:
            result_file = Path(tmp) / "result.json"
            cmd = [sys.executable, "-m", f"benchmarks.{script}", "--step", step.name,
                   "--mode", args.mode, "--device", args.device,
                   "--result-file", str(result_file)]  # fmt: skip
            child = run_child(cmd, step.timeout_s[args.mode], env=child_env())
            rss.append(child.peak_rss_mb)
            wall += child.wall_s
            cpu += child.cpu_s
            data = json.loads(result_file.read_text()) if result_file.exists() else None
        if data is None:
            status = "timeout" if child.timed_out else "failed"
            reason = (f"timed out after {step.timeout_s[args.mode]:.0f} s" if child.timed_out
                      else f"exit {child.returncode}: {child.output_tail.strip()[-600:]}")  # fmt: skip
            break
        for k, v in data["samples"].items():
            samples.setdefault(k, []).extend(v)
        units.update(data["units"])
        info.update(data["info"])
        if data["status"] != "ok":
            status, reason = data["status"], data["reason"]
            break
    figures = {k: summarise(v, units.get(k, "")) for k, v in samples.items()}
    peak = max(rss) if rss else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"status": status, "reason": reason, "wall_s": round(wall, 3),
            "peak_rss_mb": round(peak, 1) if peak else None, "processes": len(rss),
            "rss_ok": None if peak is None else peak <= RSS_LIMIT_MB,
            # how much of the machine the step got: CPU seconds / (wall seconds x cores)
            "cpu_s": round(cpu, 2), "cpu_share": round(cpu / (wall * (cores or 1)), 3) if wall else None,
            "loadavg_before": load_before, "loadavg_after": _loadavg(),
            "figures": figures, "info": info}  # fmt: skip


def _loadavg() -> float | None:
    """The 1-minute load average (other work on the machine while a step ran)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def child_main(steps: list[Step], args: argparse.Namespace) -> int:
    """Inside a child: run one step, write its samples to ``--result-file``."""
    step = next((s for s in steps if s.name == args.step), None)
    if step is None:
        raise SystemExit(f"unknown step {args.step}")
    work = WORK / args.mode
    work.mkdir(parents=True, exist_ok=True)
    ctx = StepContext(mode=args.mode, device=args.device, work=work)
    status, reason = "ok", ""
    try:
        step.fn(ctx)
    except Skip as exc:
        status, reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the other steps go on
        traceback.print_exc()
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
    ctx.info["self_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1
    )
    Path(args.result_file).write_text(json.dumps({
        "status": status, "reason": reason, "samples": ctx.samples, "units": ctx.units,
        "info": ctx.info}, default=str))  # fmt: skip
    return 0


def bench_main(script: str, bench: str, steps: list[Step], argv: list[str] | None = None) -> int:
    """Entry point of a bench script: parent (all steps, JSON to stdout) or child (one step)."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{script}")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick")
    g.add_argument("--tiny", dest="mode", action="store_const", const="tiny")
    g.add_argument("--mode", choices=MODES)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--only", default=None, help="comma-separated step names")
    p.add_argument("--list", action="store_true", help="list the steps and their keys")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    args = p.parse_args(argv)
    args.mode = args.mode or "full"
    if args.list:
        for s in steps:
            print(f"{s.name}: {', '.join(s.keys)}")
        return 0
    if args.step:
        return child_main(steps, args)
    result = run_steps(script, bench, steps, args)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, res


def require(module: str, *names: str) -> Any:
    """Import ``module`` and return the named attributes, or raise Skip("engine not available")."""
    import importlib

    try:
        mod = importlib.import_module(module)
        objs = [getattr(mod, n) for n in names]
    except (ImportError, AttributeError) as exc:
        raise Skip(f"engine not available: {module}.{'/'.join(names)} ({exc})") from exc
    return objs[0] if len(objs) == 1 else objs


def tiny_config(config_cls: Any, **kwargs: Any) -> Any:
    """An engine config for tiny mode: one short pass, whatever fields the engine has now
    (fields it lacks are left out, so the smoke tests follow the engine as it changes)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    short = {"epochs": 1, "min_steps": 0, "episodes": 20}
    return config_cls(**{k: v for k, v in (short | kwargs).items() if k in names})
