"""Background training jobs: a real child process, progress, locks, cancel, failure reporting."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from app_support import DATASET, fixture_frames

from metarec_core import jobs
from metarec_core.config import Paths
from metarec_core.errors import ConflictError
from metarec_core.types import ProgressEvent


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("METAREC_ENCODER", "fake")
    return Paths(tmp_path)


def _frames():
    inter, items = fixture_frames()
    return {"interactions": inter, "items": items}


def _spec(name="cats", episodes=20):
    task = jobs.TrainTask("categories", name, {"episodes": episodes, "rank": 8, "n_way": 3})
    return jobs.JobSpec(DATASET, (task,), device="cpu", encoder="fake")


def _wait(job_id, paths, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        view = jobs.read_job(job_id, paths)
        if not view.active:
            return view
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


@pytest.mark.slow
def test_child_process_trains_a_model_and_reports_progress(paths):
    job_id = jobs.start_job(_spec(), _frames(), paths)
    # while it runs, nobody else may write the same model directory
    with pytest.raises(ConflictError):
        jobs.start_job(_spec(), _frames(), paths)
    view = _wait(job_id, paths)
    assert view.state == "done", view.error or view.log_tail
    assert view.models == ["cats"] and view.events
    assert {e["stage"] for e in view.events} >= {"prepare", "embed"}
    model = paths.models_dir / DATASET / "cats"
    meta = json.loads((model / "metarec_meta.json").read_text())
    assert meta["kind"] == "categories" and meta["job_id"] == job_id
    assert jobs.model_busy(paths, DATASET, "cats") is None
    assert not (paths.models_dir / DATASET / "cats.owner.json").exists()
    assert meta["n_items"] == len(_frames()["items"]) and meta["dataset"] == DATASET
    assert not list((paths.models_dir / DATASET).glob("*.partial-*"))
    # the finished model directory is never overwritten
    with pytest.raises(ConflictError):
        jobs.start_job(_spec(), _frames(), paths)
    assert [j.job_id for j in jobs.list_jobs(paths, DATASET)] == [job_id]


@pytest.mark.slow
def test_cancel_stops_the_process_and_cleans_up(paths):
    job_id = jobs.start_job(_spec("slow", episodes=1_000_000), _frames(), paths)
    end = time.time() + 90
    while time.time() < end and not jobs.read_job(job_id, paths).events:
        time.sleep(0.3)
    jobs.cancel_job(job_id, paths)
    view = jobs.read_job(job_id, paths)
    assert view.state == "cancelled"
    assert not (paths.models_dir / DATASET / "slow").exists()
    assert jobs.model_busy(paths, DATASET, "slow") is None
    assert not list((paths.models_dir / DATASET).glob("slow.partial-*"))


def test_a_held_os_lock_blocks_and_a_dead_jobs_claim_is_taken_over(paths):
    lock = jobs.lock_path(paths, DATASET, "m")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(  # another process holds the model's OS lock
        [sys.executable, "-c", f"import filelock,time; held = filelock.FileLock({str(lock)!r}); held.acquire(); "
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert jobs.model_busy(paths, DATASET, "m") is not None
        with pytest.raises(ConflictError):
            jobs.start_job(_spec("m"), _frames(), paths, runner=lambda job: None)
    finally:
        holder.kill()
        holder.wait()
    # the lock ended with its process; a claim left by a job that died does not hold the model
    dead = paths.jobs_dir / "dead-job"
    dead.mkdir(parents=True)
    (dead / "status.json").write_text(json.dumps({"state": "running", "pid": 999_999_999}))
    owner = paths.models_dir / DATASET / "m.owner.json"
    owner.write_text(json.dumps({"job_id": "dead-job"}))
    assert jobs.model_busy(paths, DATASET, "m") is None
    job_id = jobs.start_job(_spec("m"), _frames(), paths, runner=lambda job: None)
    assert json.loads(owner.read_text())["job_id"] == job_id
    # a freshly queued job's claim holds the model until its worker takes the lock
    with pytest.raises(ConflictError, match=job_id):
        jobs.start_job(_spec("m"), _frames(), paths, runner=lambda job: None)


def test_cancel_never_signals_a_process_that_is_not_the_jobs_worker(paths):
    job_id = jobs.start_job(_spec("x"), _frames(), paths, runner=lambda job: None)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # status.json names a live PID that is not this job's worker (e.g. a recycled PID)
        status = paths.jobs_dir / job_id / "status.json"
        status.write_text(json.dumps({"state": "running", "pid": stranger.pid, "created": 0}))
        assert not jobs.is_worker(stranger.pid, paths.jobs_dir / job_id)
        assert jobs.read_job(job_id, paths).state == "failed"  # its worker is gone
        jobs.cancel_job(job_id, paths)
        assert stranger.poll() is None  # still running: never signalled
        assert json.loads(status.read_text())["state"] == "cancelled"
    finally:
        stranger.kill()
        stranger.wait()


def test_the_runner_takes_its_task_by_name():
    assert jobs.task_function("train").__module__ == "metarec_core.training"
    with pytest.raises(ValueError, match="unknown job task"):
        jobs.JobSpec(DATASET, (), task="nope")
    spec = jobs.JobSpec.from_dict({**_spec().to_dict()})
    assert spec.task == "train"


def test_failures_are_reported_and_leave_nothing_behind(paths):
    def boom(spec, task, frames, out_dir, progress):
        progress(ProgressEvent("meta-train", 1, 10, metrics={"loss": 1.5}))
        (out_dir / "half-written").write_text("x")
        raise RuntimeError("out of coffee")

    job_id = jobs.start_job(
        _spec("bad"), _frames(), paths, runner=lambda job: jobs.run_job(job, train=boom)
    )
    view = jobs.read_job(job_id, paths)
    assert view.state == "failed" and "out of coffee" in view.error
    assert view.metric_series("loss") == [("meta-train", 1, 1.5)]
    assert not (paths.models_dir / DATASET / "bad").exists()
    left = {p.name for p in (paths.models_dir / DATASET).glob("bad*")}
    assert left <= {"bad.lock"}  # the (released) OS lock file may stay; nothing else does
    jobs.delete_job(job_id, paths)
    assert jobs.list_jobs(paths) == []


def test_a_follow_up_runs_once_the_model_is_listed(paths):
    from metarec_core import services

    seen = {}

    def train(spec, task, frames, out_dir, progress):
        (out_dir / "weights").write_text("w")

        def follow_up(model_dir):
            seen["listed"] = [m.name for m in services.list_models(paths, DATASET)]
            (model_dir / "evaluation.json").write_text("{}")

        return follow_up

    job_id = jobs.start_job(
        _spec("early"), _frames(), paths, runner=lambda job: jobs.run_job(job, train=train)
    )
    assert jobs.read_job(job_id, paths).state == "done"
    assert seen["listed"] == ["early"]
    assert (paths.models_dir / DATASET / "early" / "evaluation.json").exists()


def test_eta_comes_from_the_rate_of_the_current_stage(paths):
    events = [
        {"time": 100.0, "stage": "embed", "current": 10, "total": 10, "metrics": {}},
        {"time": 110.0, "stage": "train", "current": 0, "total": 100, "metrics": {}},
        {"time": 120.0, "stage": "train", "current": 50, "total": 100, "metrics": {"loss": 1}},
    ]
    view = jobs.JobView("j", _spec(), "running", 100.0, 100.0, None, None, [], events)
    assert view.eta_s == pytest.approx(10.0)
    assert view.fraction == 0.5


def test_task_names_are_validated():
    with pytest.raises(ValueError):
        jobs.TrainTask("categories", "../escape")
    with pytest.raises(ValueError):
        jobs.TrainTask("unknown", "x")


def test_several_models_in_one_job_keep_their_curves_and_etas_apart():
    tasks = (
        jobs.TrainTask("coldstart", "cs", {}),
        jobs.TrainTask("categories", "cats", {}),
    )
    spec = jobs.JobSpec(DATASET, tasks, device="cpu", encoder="fake")
    loss = {"loss": 2.0}
    events = [
        {"time": 0.0, "task": "cs", "stage": "meta-train", "current": 0, "total": 10},
        {"time": 10.0, "task": "cs", "stage": "meta-train", "current": 10, "total": 10},
        {"time": 20.0, "task": "cats", "stage": "meta-train", "current": 0, "total": 100},
        {"time": 30.0, "task": "cats", "stage": "meta-train", "current": 50, "total": 100},
    ]
    for e in events:
        e["metrics"] = loss
    view = jobs.JobView("j", spec, "running", 0.0, 0.0, None, None, ["cs"], events)
    assert {c for c, _, _ in view.metric_series("loss")} == {"cs · meta-train", "cats · meta-train"}
    assert view.eta_s == pytest.approx(10.0)  # from the categories model's own rate
