"""The job runner (``app.wiring.jobs``) with a real worker process (``tests.counting_job``): a job
reports its progress, stops when cancelled and resumes from where it stopped; a worker killed with
SIGKILL is reported failed and can be resumed; a worker's error fails its job with the message;
jobs are found by id or "last", and a kind that runs one at a time refuses a second start."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.wiring import jobs
from domain.errors import ConfigError
from tests.counting_job import COUNTING


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(workspace=tmp_path / "ws")


def _spec(settings: Settings, total: int = 30, **more: Any) -> dict[str, Any]:
    return {"total": total, "step_s": 0.1, "workspace": str(settings.ws.root), **more}


def _wait_for(settings: Settings, job: str, step: int, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = jobs.status(settings, COUNTING, job)
        if int(status.get("step") or 0) >= step:
            return status
        assert status["status"] in ("starting", "running"), status
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not reach step {step}")


def _reap(pid: int) -> None:
    for _ in range(200):
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)


def test_a_job_reports_progress_stops_when_cancelled_and_resumes_where_it_stopped(settings) -> None:
    job_dir = jobs.start(settings, COUNTING, _spec(settings))
    assert job_dir.parent == settings.ws.jobs and job_dir.name.startswith("count-")
    running = _wait_for(settings, job_dir.name, 2)
    assert (running["status"], running["total"]) == ("running", 30)
    assert running["message"].startswith("counted ") and running["dir"] == str(job_dir)
    with pytest.raises(ConfigError, match=f"counting job {job_dir.name} is still running — wait for it"):
        jobs.start(settings, COUNTING, _spec(settings))
    with pytest.raises(ConfigError, match="is still running"):
        jobs.resume(settings, COUNTING, job_dir.name)

    assert jobs.cancel(settings, COUNTING, "last") is True
    stopped = jobs.wait(job_dir)
    assert stopped["status"] == "cancelled" and stopped["error"] == f"stopped at step {stopped['step']}"
    assert 2 <= stopped["step"] < 30
    assert jobs.cancel(settings, COUNTING, job_dir.name) is False  # not running any more

    seen: list[tuple[int, int]] = []
    assert jobs.resume(settings, COUNTING, "last") == job_dir
    done = jobs.wait(job_dir, lambda d, t, _m="": seen.append((d, t)))
    assert done["status"] == "succeeded", (job_dir / "log.txt").read_text()[-2000:]
    assert done["result"] == {
        "counted": 30,
        "resumed_from": stopped["step"],
        "workspace": str(settings.ws.root),
    }
    assert (done["step"], done["total"]) == (30, 30) and seen[-1] == (30, 30)
    with pytest.raises(ConfigError, match=f"counting job {job_dir.name} already finished — see its result"):
        jobs.resume(settings, COUNTING, job_dir.name)


def test_a_killed_worker_is_reported_failed_and_resumes(settings) -> None:
    job_dir = jobs.start(settings, COUNTING, _spec(settings, total=20))
    pid = _wait_for(settings, job_dir.name, 1)["pid"]
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    failed = jobs.status(settings, COUNTING, job_dir.name)
    assert failed["status"] == "failed" and "ended without a final status" in failed["error"]
    assert jobs.cancel(settings, COUNTING, job_dir.name) is False
    jobs.resume(settings, COUNTING, job_dir.name)
    done = jobs.wait(job_dir)
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["result"]["resumed_from"] >= 1


def test_a_worker_error_fails_its_job_with_the_message(settings) -> None:
    job_dir = jobs.start(settings, COUNTING, _spec(settings, fail="no rows — build some first"))
    status = jobs.wait(job_dir)
    assert (status["status"], status["error"]) == ("failed", "no rows — build some first")
    assert "error: no rows — build some first" in (job_dir / "log.txt").read_text()


def test_jobs_are_found_by_id_or_last(settings) -> None:
    from adapters.jobs import new_job

    with pytest.raises(
        ConfigError, match="collection 'sample' has no counting job yet — start one with `count`"
    ):
        jobs.find(settings, COUNTING)
    older = new_job(settings.ws.jobs, "count", {"collection": "sample"})
    time.sleep(1.1)  # job ids sort by their second
    new_job(settings.ws.jobs, "count", {"collection": "other"})
    legacy = new_job(settings.ws.jobs, "count", {})  # from before collections: the bundled one's
    other = new_job(settings.ws.jobs, "train", {})
    assert jobs.find(settings, COUNTING, "last") == legacy  # the newest of this collection's
    assert [j["id"] for j in jobs.listing(settings, COUNTING)][-1] == older.name
    assert (
        len(jobs.listing(settings, COUNTING)) == 3 and len(jobs.listing(settings, COUNTING, mine=True)) == 2
    )
    assert jobs.find(settings, COUNTING, older.name) == older
    with pytest.raises(ConfigError, match=f"no job '{other.name}' in .* — see the list"):
        jobs.find(settings, COUNTING, other.name)
    with pytest.raises(ConfigError, match="is not allowed"):
        jobs.find(settings, COUNTING, "../../etc")
    assert jobs.status(settings, COUNTING, older.name)["status"] == "queued"


def test_the_eta_weighs_steps_by_their_work_and_adds_the_phases_still_to_come(tmp_path, monkeypatch) -> None:
    """Two light steps done in 2 s, then two heavy ones (3× the work each) and 30 s of later phases:
    the ETA is 2 s × 6 / 2 + 30 = 36 s, not the per-step 2 s + 30. A phase whose work repeats later
    (the baseline's scoring before the candidate's) counts it twice."""
    from adapters import jobs as job_files

    clock = [1000.0]
    monkeypatch.setattr(job_files.time, "time", lambda: clock[0])
    job_dir = job_files.new_job(tmp_path / "jobs", "train", {})
    reporter = job_files.JobReporter(job_dir)
    reporter.enter("training", phase_s=None, later_s=30.0, step_work=[1, 1, 3, 3])
    assert reporter.status["eta_s"] is None  # nothing measured, no estimate given
    reporter.progress(0, 4)
    clock[0] += 2.0
    reporter.progress(2, 4)
    assert reporter.status["eta_s"] == pytest.approx(36.0)
    reporter.enter("saving", phase_s=5.0, later_s=None)
    assert reporter.status["eta_s"] is None  # a later phase has no estimate: no ETA
    reporter.enter("scoring", phase_s=None, later_s=10.0, repeats=1)
    reporter.progress(0, 10)
    clock[0] += 4.0
    reporter.progress(4, 10)
    # 6 s left of this phase, then all 10 s of it again, then 10 s
    assert reporter.status["eta_s"] == pytest.approx(6.0 + 10.0 + 10.0)


def test_the_eta_leaves_out_the_first_steps_one_off_costs(tmp_path, monkeypatch) -> None:
    """A first step of 10 s (loading, allocating) and a second of 1 s: two steps left take 2 s."""
    from adapters import jobs as job_files

    clock = [1000.0]
    monkeypatch.setattr(job_files.time, "time", lambda: clock[0])
    reporter = job_files.JobReporter(job_files.new_job(tmp_path / "jobs", "train", {}))
    reporter.enter("training", later_s=0.0)
    reporter.progress(0, 4)
    clock[0] += 10.0
    reporter.progress(1, 4)
    assert reporter.status["eta_s"] == pytest.approx(30.0)  # only the first step to go by
    clock[0] += 1.0
    reporter.progress(2, 4)
    assert reporter.status["eta_s"] == pytest.approx(2.0)


def test_an_eta_that_stops_before_an_untimed_gate_says_so() -> None:
    from adapters import jobs as job_files

    status = {"status": "running", "phase": "training", "eta_s": 125.0, "eta_before_gate": True}
    assert job_files._message(status) == "training · ETA 2m05s before the gate"
    assert job_files._message({**status, "eta_before_gate": False}) == "training · ETA 2m05s"
