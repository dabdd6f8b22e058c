"""Background training jobs that outlive a Streamlit rerun, a page switch or a closed browser tab.

A job is a separate Python process (``python -m metarec_core.jobs JOB_DIR``) started in its own
session. It reads its spec and input frames from ``Paths().jobs_dir/<job_id>/`` and writes there:

- ``spec.json``       what to train (written by the parent before the start)
- ``status.json``     state (queued, running, done, failed, cancelled), pid, times, error, models
- ``progress.jsonl``  one JSON object per progress event (time, stage, current, total, message,
                      metrics); the UI reads it to draw live progress, a loss curve and an ETA
- ``output.log``      the child's stdout/stderr (details for the "what went wrong" expander)

Each model directory a job writes has a lock file ``<models_dir>/<dataset>/<name>.lock``: the
worker holds an OS lock on it (``filelock``) for its whole run, so the lock ends with the
process however it ends, and ``<name>.owner.json`` names the job. Between the start and the
worker taking the lock, the owner file of a queued job (younger than ``SPAWN_GRACE_S``) holds
the directory. The job trains into ``<name>.partial-<job_id>`` and renames it into place only
when it succeeded.

The runner looks the work up by name in ``TASKS`` (``JobSpec.task``, default "train"), so it
never imports the services above it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from metarec_core.config import Paths
from metarec_core.errors import ConflictError, MetaRecError, NotFoundError
from metarec_core.registry import model_meta, read_json, write_json, write_meta
from metarec_core.types import ProgressEvent

log = logging.getLogger(__name__)

KINDS = ("coldstart", "categories")
ACTIVE_STATES = ("queued", "running")
_CHILDREN: dict[str, subprocess.Popen] = {}  # job_id -> process started by this process
_HELD: dict[Path, FileLock] = {}  # model locks this (worker) process holds
SPAWN_GRACE_S = 60  # a queued job's claim holds its model directories this long
# task name -> "module:function" run for each model of a job (see metarec_core.training)
TASKS: dict[str, str] = {"train": "metarec_core.training:train_task"}


@dataclass(frozen=True)
class TrainTask:
    """One model to train: its kind, its directory name and engine-config overrides."""

    kind: str  # "coldstart" | "categories"
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    evaluate: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind '{self.kind}' (use {', '.join(KINDS)})")
        if not self.name or any(c in self.name for c in "/\\.") or self.name.startswith("-"):
            raise ValueError(f"bad model name '{self.name}': letters, digits, '-' and '_' only")


@dataclass(frozen=True)
class JobSpec:
    """What a job trains: one or more models of one dataset."""

    dataset: str
    tasks: tuple[TrainTask, ...]
    device: str = "auto"
    encoder: str = "minilm"
    label: str = ""
    auto: bool = False  # started by the app itself (demo model on first run)
    task: str = "train"  # the function in TASKS that trains each model

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown job task '{self.task}' (use {', '.join(TASKS)})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = [asdict(t) for t in self.tasks]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> JobSpec:
        tasks = tuple(TrainTask(**t) for t in d["tasks"])
        return cls(**{**d, "tasks": tasks})


@dataclass(frozen=True)
class JobView:
    """A job as the UI sees it (read from its folder; cheap to build on every poll)."""

    job_id: str
    spec: JobSpec
    state: str
    created: float
    started: float | None
    finished: float | None
    error: str | None
    models: list[str]
    events: list[dict]
    log_tail: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def last(self) -> dict | None:
        return self.events[-1] if self.events else None

    @property
    def elapsed(self) -> float:
        end = self.finished or time.time()
        return max(0.0, end - (self.started or self.created))

    @property
    def fraction(self) -> float:
        e = self.last
        if e is None or not e.get("total"):
            return 0.0
        return min(1.0, e["current"] / e["total"])

    @property
    def eta_s(self) -> float | None:
        """Seconds left in the current stage, from its rate so far (None when unknown)."""
        e = self.last
        if not self.active or e is None or not e.get("total") or e["current"] <= 0:
            return None
        key = (e.get("task"), e["stage"])
        stage = [x for x in self.events if (x.get("task"), x["stage"]) == key]
        t0 = stage[0]["time"]
        c0 = stage[0]["current"] if len(stage) > 1 else 0
        rate = (e["current"] - c0) / max(e["time"] - t0, 1e-6) if len(stage) > 1 else 0
        if rate <= 0:
            return None
        return max(0.0, (e["total"] - e["current"]) / rate)

    def metric_series(self, name: str = "loss") -> list[tuple[str, int, float]]:
        """(curve, step, value) of every event that carried ``name`` in its metrics; the curve is
        the stage, prefixed with the model's name when the job trains several models."""
        several = len(self.spec.tasks) > 1
        return [
            (
                f"{x['task']} · {x['stage']}" if several and x.get("task") else x["stage"],
                x["current"],
                float(x["metrics"][name]),
            )
            for x in self.events
            if name in x.get("metrics", {})
        ]


# ---- paths and small file helpers --------------------------------------------------------------
def model_dir(paths: Paths, dataset: str, name: str) -> Path:
    """Where a model of ``dataset`` called ``name`` lives."""
    return paths.models_dir / dataset / name


def lock_path(paths: Paths, dataset: str, name: str) -> Path:
    """The OS lock file of a model directory (held by the worker that writes it)."""
    return paths.models_dir / dataset / f"{name}.lock"


def _owner_path(paths: Paths, dataset: str, name: str) -> Path:
    return paths.models_dir / dataset / f"{name}.owner.json"


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` runs (zombies count as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_worker(pid: int | None, job: Path) -> bool:
    """True when ``pid`` is a live worker process of this job folder (``python -m
    metarec_core.jobs JOB_DIR``), so a recycled PID is never mistaken for it."""
    if not pid_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): the PID check is all there is
        return True
    return "metarec_core.jobs" in args and str(Path(job).resolve()) in args


def _reap() -> None:
    for job_id, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[job_id]


# ---- locks -------------------------------------------------------------------------------------
def _os_lock_held(lock: Path) -> bool:
    """Whether some process holds the OS lock on ``lock`` (probed without waiting)."""
    if lock in _HELD:
        return True
    if not lock.exists():
        return False
    probe = FileLock(lock, thread_local=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def model_busy(paths: Paths, dataset: str, name: str) -> str | None:
    """The id of the job writing model ``dataset/name`` (or about to), else None."""
    if _os_lock_held(lock_path(paths, dataset, name)):
        owner = read_json(_owner_path(paths, dataset, name)) or {}
        return str(owner.get("job_id") or "another job")
    return _starting_job(paths, dataset, name)


def _starting_job(paths: Paths, dataset: str, name: str) -> str | None:
    """The queued job (younger than ``SPAWN_GRACE_S``) that claimed the model, if any."""
    job_id = (read_json(_owner_path(paths, dataset, name)) or {}).get("job_id")
    if not job_id:
        return None
    status = read_json(paths.jobs_dir / str(job_id) / "status.json") or {}
    young = time.time() - float(status.get("created", 0)) < SPAWN_GRACE_S
    return str(job_id) if status.get("state") == "queued" and young else None


def claim_model(paths: Paths, dataset: str, name: str, job_id: str) -> None:
    """Reserve a model directory for a job that is about to start; ConflictError when a live or
    starting job has it. The OS lock is held while checking, so two claims never both win."""
    lock = lock_path(paths, dataset, name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    guard = FileLock(lock, thread_local=False)
    try:
        guard.acquire(timeout=0)
    except Timeout:
        holder = (read_json(_owner_path(paths, dataset, name)) or {}).get("job_id")
        raise ConflictError(f"model '{dataset}/{name}' is being written by job {holder}") from None
    try:
        holder = _starting_job(paths, dataset, name)
        if holder is not None and holder != job_id:
            raise ConflictError(f"model '{dataset}/{name}' is being written by job {holder}")
        write_json(_owner_path(paths, dataset, name), {"job_id": job_id, "time": time.time()})
    finally:
        guard.release()


def hold_models(paths: Paths, spec: JobSpec, job_id: str, timeout: float = 30.0) -> None:
    """Take the OS locks of the job's model directories for this process (the worker); they are
    released by ``release_locks`` or when the process ends, however it ends."""
    for task in spec.tasks:
        lock = lock_path(paths, spec.dataset, task.name)
        lock.parent.mkdir(parents=True, exist_ok=True)
        held = FileLock(lock, thread_local=False)
        try:
            held.acquire(timeout=timeout)
        except Timeout:
            holder = (read_json(_owner_path(paths, spec.dataset, task.name)) or {}).get("job_id")
            raise ConflictError(
                f"model '{spec.dataset}/{task.name}' is being written by job {holder}"
            ) from None
        _HELD[lock] = held
        write_json(
            _owner_path(paths, spec.dataset, task.name), {"job_id": job_id, "pid": os.getpid()}
        )


def release_locks(paths: Paths, spec: JobSpec, job_id: str) -> None:
    """Release the locks and claims this job holds (never another job's)."""
    for task in spec.tasks:
        owner = _owner_path(paths, spec.dataset, task.name)
        if (read_json(owner) or {}).get("job_id") == job_id:
            owner.unlink(missing_ok=True)
        held = _HELD.pop(lock_path(paths, spec.dataset, task.name), None)
        if held is not None:
            held.release()


# ---- starting, reading, cancelling -------------------------------------------------------------
def new_job_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def start_job(
    spec: JobSpec,
    frames: dict[str, Any],
    paths: Paths | None = None,
    runner: Callable[[Path], None] | None = None,
) -> str:
    """Lock the target model dirs, write the job folder and start the worker process.

    Args:
        spec: what to train.
        frames: DataFrames the job needs (e.g. interactions, items), saved as Parquet so the
            worker never opens the DuckDB store (one writer per file).
        runner: run the job in this process instead (tests); default spawns a child process.
    Returns the job id. Raises ConflictError when a target model exists or is being written.
    """
    paths = paths or Paths()
    job_id = new_job_id()
    job = paths.jobs_dir / job_id
    for task in spec.tasks:
        if model_dir(paths, spec.dataset, task.name).exists():
            raise ConflictError(f"model '{spec.dataset}/{task.name}' already exists")
    try:
        job.mkdir(parents=True)
        write_json(job / "status.json", {"state": "queued", "created": time.time(), "pid": None})
        for task in spec.tasks:
            claim_model(paths, spec.dataset, task.name, job_id)
        for name, df in frames.items():
            df.to_parquet(job / f"{name}.parquet", index=False)
        write_json(job / "spec.json", spec.to_dict())
        if runner is not None:
            runner(job)
            return job_id
        env = {**os.environ, "METAREC_DATA_DIR": str(paths.data_dir), "PYTHONUNBUFFERED": "1"}
        with open(job / "output.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "metarec_core.jobs", str(job.resolve())],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=str(Path(__file__).resolve().parent.parent),
            )
        _CHILDREN[job_id] = proc
        return job_id
    except BaseException:
        release_locks(paths, spec, job_id)
        if not (job / "spec.json").exists():
            shutil.rmtree(job, ignore_errors=True)
        raise


def read_job(job_id: str, paths: Paths | None = None, max_events: int = 2000) -> JobView:
    """The current view of a job; a running job whose process died is reported as failed."""
    paths = paths or Paths()
    _reap()
    job = paths.jobs_dir / job_id
    spec_d = read_json(job / "spec.json")
    if spec_d is None:
        raise NotFoundError(f"job '{job_id}' not found")
    status = read_json(job / "status.json") or {"state": "queued", "created": 0}
    state = status.get("state", "queued")
    created = float(status.get("created") or 0)
    if state == "running" and not is_worker(status.get("pid"), job):
        state, status["error"] = "failed", "the training process stopped unexpectedly"
    elif (
        state == "queued" and time.time() - created > 120 and not is_worker(status.get("pid"), job)
    ):
        state, status["error"] = "failed", "the training process never started"
    events = []
    try:
        with open(job / "progress.jsonl") as f:
            for line in f:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue  # a line being written right now
    except OSError:
        pass
    if len(events) > max_events:  # keep every metric event; thin the rest
        step = len(events) // max_events + 1
        events = [e for n, e in enumerate(events) if e.get("metrics") or n % step == 0]
    log_tail = ""
    if state == "failed":
        with contextlib.suppress(OSError):
            log_tail = (job / "output.log").read_text(errors="replace")[-4000:]
    return JobView(
        job_id=job_id,
        spec=JobSpec.from_dict(spec_d),
        state=state,
        created=created,
        started=status.get("started"),
        finished=status.get("finished"),
        error=status.get("error"),
        models=list(status.get("models", [])),
        events=events,
        log_tail=log_tail,
    )


def list_jobs(paths: Paths | None = None, dataset: str | None = None) -> list[JobView]:
    """Every job (newest first), optionally of one dataset."""
    paths = paths or Paths()
    if not paths.jobs_dir.exists():
        return []
    out = []
    for d in sorted(paths.jobs_dir.iterdir(), reverse=True):
        if not (d / "spec.json").exists():
            continue
        try:
            view = read_job(d.name, paths, max_events=300)
        except (NotFoundError, TypeError, KeyError, ValueError):
            continue
        if dataset is None or view.spec.dataset == dataset:
            out.append(view)
    return out


def cancel_job(job_id: str, paths: Paths | None = None) -> None:
    """Stop a running job (its partial model is removed, its locks released)."""
    paths = paths or Paths()
    job = paths.jobs_dir / job_id
    status = read_json(job / "status.json")
    if status is None:
        raise NotFoundError(f"job '{job_id}' not found")
    pid = status.get("pid") or getattr(_CHILDREN.get(job_id), "pid", None)
    if status.get("state") in ACTIVE_STATES and is_worker(pid, job):
        try:  # the worker leads its own session: its group is the worker and its children
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(50):
            if not pid_alive(pid):
                break
            _reap()
            time.sleep(0.1)
    status = read_json(job / "status.json") or status
    if status.get("state") in ACTIVE_STATES:
        status.update(state="cancelled", finished=time.time(), error="cancelled by the user")
        write_json(job / "status.json", status)
    spec = JobSpec.from_dict(read_json(job / "spec.json"))
    for task in spec.tasks:
        for partial in (paths.models_dir / spec.dataset).glob(f"{task.name}.partial-{job_id}"):
            shutil.rmtree(partial, ignore_errors=True)
    release_locks(paths, spec, job_id)


def delete_job(job_id: str, paths: Paths | None = None) -> None:
    """Forget a finished job (its folder); running jobs must be cancelled first."""
    paths = paths or Paths()
    view = read_job(job_id, paths)
    if view.active:
        raise ConflictError("the job is still running; cancel it first")
    shutil.rmtree(paths.jobs_dir / job_id, ignore_errors=True)


# ---- the worker --------------------------------------------------------------------------------
class JsonlProgress:
    """A progress callback that appends events to ``progress.jsonl`` (throttled, metrics kept)."""

    def __init__(self, path: Path, min_interval: float = 0.2) -> None:
        self.path = path
        self.min_interval = min_interval
        self._last = 0.0
        self._stage: str | None = None
        self.task = ""  # the model being trained (run_job sets it before each task)
        self._f = open(path, "a", buffering=1)  # noqa: SIM115 - closed in close()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.time()
        done = event.total > 0 and event.current >= event.total
        if not (
            event.metrics
            or done
            or event.stage != self._stage
            or now - self._last >= self.min_interval
        ):
            return
        self._stage, self._last = event.stage, now
        rec = {
            "time": now,
            "task": self.task,
            "stage": event.stage,
            "current": int(event.current),
            "total": int(event.total),
            "message": event.message,
            "metrics": {k: float(v) for k, v in (event.metrics or {}).items()},
        }
        self._f.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self._f.close()


def task_function(name: str) -> Callable:
    """The function registered in ``TASKS`` under ``name``."""
    import importlib

    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def run_job(job: Path, train: Callable | None = None) -> None:
    """Run one job folder to the end (the child process's main; tests may call it directly).

    ``train(spec, task, frames, out_dir, progress)`` trains one task into ``out_dir``; default
    the spec's task from ``TASKS``. It may return a follow-up ``fn(model_dir)`` that runs once the
    model is in place (listed and usable), such as its evaluation.
    """
    import pandas as pd

    job = Path(job)
    paths = Paths()
    spec = JobSpec.from_dict(json.loads((job / "spec.json").read_text()))
    status = read_json(job / "status.json") or {"created": time.time()}
    status.update(state="running", pid=os.getpid(), started=time.time(), models=[])
    write_json(job / "status.json", status)
    progress = JsonlProgress(job / "progress.jsonl")
    progress.task = spec.tasks[0].name if spec.tasks else ""
    progress(ProgressEvent("prepare", 0, 0, "loading the data and the engines"))

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    try:
        old_handler = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (tests running inline)
        old_handler = None
    partial: Path | None = None
    try:
        hold_models(paths, spec, job.name)
        train = train or task_function(spec.task)
        frames = {p.stem: pd.read_parquet(p) for p in job.glob("*.parquet")}
        for task in spec.tasks:
            final = model_dir(paths, spec.dataset, task.name)
            partial = final.with_name(f"{task.name}.partial-{job.name}")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            progress.task = task.name
            follow_up = train(spec, task, frames, partial, progress)
            meta = model_meta(
                task.name,
                task.kind,
                spec.dataset,
                len(frames.get("items", ())),
                task.config,
                job_id=job.name,
                device=spec.device,
                encoder=spec.encoder,
                label=spec.label,
            )
            write_meta(partial, meta)
            os.replace(partial, final)
            partial = None
            status["models"] = [*status.get("models", []), task.name]
            write_json(job / "status.json", status)
            if callable(follow_up):  # e.g. the evaluation: the model is usable meanwhile
                follow_up(final)
        status.update(state="done", finished=time.time())
    except KeyboardInterrupt:
        status.update(state="cancelled", finished=time.time(), error="cancelled by the user")
    except MetaRecError as exc:
        status.update(state="failed", finished=time.time(), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - reported to the UI, details in output.log
        traceback.print_exc()
        status.update(state="failed", finished=time.time(), error=f"{type(exc).__name__}: {exc}")
    finally:
        progress.close()
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        write_json(job / "status.json", status)
        release_locks(paths, spec, job.name)
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m metarec_core.jobs JOB_DIR", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(5)  # stay behind the UI on a small machine
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_job(Path(argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
