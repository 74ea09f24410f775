"""Background jobs (training, dataset builds, exports) as separate processes that report through a
job file: the folder, the worker process, its progress, cancel and liveness.

A job is a folder ``<workspace>/jobs/<id>/`` with ``spec.json`` (what to do), ``job.json`` (status,
step, total, loss history, ETA, error, result — rewritten atomically by the worker) and ``log.txt``
(the worker's output). ``app.wiring.jobs`` launches, finds, polls, cancels and resumes jobs through
here; what a job does is its worker module's business. Cancel is SIGTERM: the worker stops at the
next step and writes "cancelled" (or, for a worker that cannot stop between steps, the whole process
group is ended and "cancelled" recorded here); a job whose process died without a final status is
reported as "failed".

Above ~300 lines because both sides of the job protocol — the launcher's (start, status, cancel,
liveness) and the worker's ``JobReporter`` — read and write the same job file; split, the file's
format would live in two places.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from domain.atomic import read_json, write_json_atomic
from domain.errors import TrainingError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
SPEC_FILE = "spec.json"
LOG_FILE = "log.txt"
FINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("starting", "running")  # a process should be alive (checked on every read)
CANCEL_WAIT_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def new_job(jobs_root: Path, kind: str, spec: dict[str, Any]) -> Path:
    """Create a job folder with its spec and a "queued" status; return the folder."""
    job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    job_dir = Path(jobs_root) / job_id
    job_dir.mkdir(parents=True)
    write_json_atomic(job_dir / SPEC_FILE, spec)
    write_json_atomic(
        job_dir / JOB_FILE,
        {
            "id": job_id,
            "kind": kind,
            "status": "queued",
            "step": 0,
            "total": 0,
            "phase": "queued",
            "loss_history": [],
            "eta_s": None,
            "error": None,
            "created_at": time.time(),
            "updated_at": time.time(),
            "pid": None,
        },
    )
    return job_dir


def launch(job_dir: Path, module: str, *, extra_args: tuple[str, ...] = ()) -> int:
    """Start ``python -m module JOB_DIR`` in its own session (output to log.txt); return its pid."""
    job_dir = Path(job_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    log = (job_dir / LOG_FILE).open("ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(job_dir), *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=str(REPO_ROOT),
        )
    finally:
        log.close()
    status = read_status(job_dir)
    status.update(
        {"pid": proc.pid, "status": "starting", "phase": "starting", "error": None, "updated_at": time.time()}
    )
    write_json_atomic(job_dir / JOB_FILE, status)
    logger.info("launched job %s (pid %d): python -m %s", job_dir.name, proc.pid, module)
    return proc.pid


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs (an exited child of ours is reaped first, so it does not
    linger as a zombie that looks alive)."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child so it does not linger as a zombie
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(job_dir: Path) -> dict[str, Any]:
    """The job's status; a non-final job whose process is gone is reported as failed."""
    job_dir = Path(job_dir)
    try:
        status = read_json(job_dir / JOB_FILE)
    except (OSError, ValueError) as e:
        raise TrainingError(
            f"job {job_dir.name} has no readable status ({e}) — list jobs with `hybrid train --jobs`"
        ) from e
    if status.get("status") in ACTIVE and not process_alive(status.get("pid")):
        time.sleep(0.2)  # the worker may be writing its final status right now
        status = read_json(job_dir / JOB_FILE)
        if status.get("status") in ACTIVE:
            status.update(
                {
                    "status": "failed",
                    "error": status.get("error")
                    or f"the job process (pid {status.get('pid')}) ended without a final status; see {job_dir / LOG_FILE}",
                }
            )
    return status


def cancel(job_dir: Path, *, kill_note: str | None = None) -> bool:
    """Ask the job's process to stop (SIGTERM). True when a running process was signalled.

    With ``kill_note`` the job's whole process group (converters included) is ended instead —
    SIGKILL after ``CANCEL_WAIT_S`` — and "cancelled" is recorded here with that note: a signal
    handler in the worker would wait for a long native call to return."""
    job_dir = Path(job_dir)
    status = read_status(job_dir)
    pid = int(status.get("pid") or 0)
    if status.get("status") in FINAL or not process_alive(pid):
        return False
    if kill_note is None:
        os.kill(pid, signal.SIGTERM)
        logger.info("sent SIGTERM to job %s (pid %s)", job_dir.name, pid)
        return True
    try:
        os.killpg(pid, signal.SIGTERM)  # launched with its own session: pgid == pid
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.1)
    if process_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    status.update(status="cancelled", phase="cancelled", error=kill_note, eta_s=None, finished_at=time.time())
    write_json_atomic(job_dir / JOB_FILE, status)
    logger.info("ended job %s (pid %s) and its process group", job_dir.name, pid)
    return True


def wait(
    job_dir: Path,
    *,
    on_progress: ProgressFn = no_progress,
    poll_s: float = 0.5,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until the job is final; forward (step, total, message) to ``on_progress``."""
    while True:
        status = read_status(job_dir)
        if on_status:
            on_status(status)
        on_progress(int(status.get("step") or 0), int(status.get("total") or 0), _message(status))
        if status.get("status") in FINAL:
            return status
        time.sleep(poll_s)


def _message(status: dict[str, Any]) -> str:
    parts = [str(status.get("phase") or status.get("status"))]
    hist = status.get("loss_history") or []
    if hist:
        parts.append(f"loss {hist[-1].get('loss', float('nan')):.3f}")
    eta = status.get("eta_s")
    if eta is not None and status.get("status") == "running":
        before_gate = " before the gate" if status.get("eta_before_gate") else ""
        parts.append(f"ETA {int(eta) // 60}m{int(eta) % 60:02d}s{before_gate}")
    return " · ".join(parts)


def list_jobs(jobs_root: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Statuses of all jobs (newest first), optionally of one kind."""
    root = Path(jobs_root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir(), reverse=True):
        if (d / JOB_FILE).is_file() and (kind is None or d.name.startswith(kind + "-")):
            try:
                out.append({**read_status(d), "dir": str(d)})
            except TrainingError:
                continue
    return out


class JobReporter:
    """Used inside the worker: updates job.json atomically (at most every ``min_interval_s`` unless
    forced), keeps the loss history, and estimates the ETA of the whole job: the current phase's
    remaining time from this process's own rate (per step, or per unit of work when the phase gives
    its steps' weights, e.g. tokens) plus the estimated seconds of the phases still to come
    (``enter``)."""

    def __init__(self, job_dir: Path, *, min_interval_s: float = 1.0) -> None:
        self.job_dir = Path(job_dir)
        self.min_interval_s = min_interval_s
        self.status = read_json(self.job_dir / JOB_FILE)
        self.status.update(
            {"pid": os.getpid(), "status": "running", "error": None, "started_at": time.time()}
        )
        self._last_write = 0.0
        self._rate_origin: tuple[float, int] | None = None
        self._warm: tuple[float, int] | None = None  # the rate is measured from here once it exists
        self._phase_s: float | None = None  # the current phase's own estimate, until measured
        self._later_s: float | None = 0.0  # estimated seconds of the phases after the current one
        self._cum_work: list[float] | None = None  # work done after i steps of the current phase
        self._repeats, self._phase_t0 = 0, time.time()
        self.stop_requested = False
        self.write(force=True)

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT set ``stop_requested`` (the trainer polls ``should_stop``)."""

        def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
            self.stop_requested = True
            self.update(phase="cancelling", force=True)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def should_stop(self) -> bool:
        return self.stop_requested

    def write(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < self.min_interval_s:
            return
        self.status["updated_at"] = now
        write_json_atomic(self.job_dir / JOB_FILE, self.status)
        self._last_write = now

    def update(self, *, force: bool = False, **fields: Any) -> None:
        self.status.update(fields)
        self.write(force=force)

    def enter(
        self,
        phase: str,
        *,
        phase_s: float | None = None,
        later_s: float | None = 0.0,
        step_work: Sequence[float] | None = None,
        repeats: int = 0,
    ) -> None:
        """Start ``phase``: ``phase_s`` its own estimated seconds (replaced by its measured rate once
        it reports progress), ``later_s`` those of the phases after it (None = unknown, and so is
        the ETA), ``step_work`` the work of each of its steps when they differ (tokens of a
        training step), so a few long steps do not skew the rate, and ``repeats`` how many more
        times work of this phase's length follows later (scoring a candidate like the baseline)."""
        self._rate_origin, self._warm, self._phase_s, self._later_s = None, None, phase_s, later_s
        self._repeats, self._phase_t0 = repeats, time.time()
        self._cum_work = None
        if step_work is not None:
            self._cum_work = [0.0]
            for w in step_work:
                self._cum_work.append(self._cum_work[-1] + max(float(w), 0.0))
        self.update(phase=phase, eta_s=self._eta(None), force=True)

    def _eta(self, phase_left_s: float | None) -> float | None:
        left = phase_left_s if phase_left_s is not None else self._phase_s
        if left is None or self._later_s is None:
            return None
        again = self._repeats * (time.time() - self._phase_t0 + left) if self._repeats else 0.0
        return round(left + again + self._later_s, 1)

    def _work(self, steps: int) -> float:
        cum = self._cum_work
        return float(steps) if cum is None else cum[max(0, min(steps, len(cum) - 1))]

    def progress(self, done: int, total: int, message: str = "") -> None:
        now = time.time()
        if self._rate_origin is None or done < self._rate_origin[1]:
            self._rate_origin, self._warm = (now, done), None
        elif self._warm is None and done > self._rate_origin[1]:
            self._warm = (now, done)  # after the first step, which carries one-off costs
        t0, s0 = self._warm if self._warm is not None and done > self._warm[1] else self._rate_origin
        measured = self._work(done) - self._work(s0)
        left = (now - t0) / measured * (self._work(total) - self._work(done)) if measured > 0 else None
        self.update(
            step=done,
            total=total,
            message=message,
            eta_s=self._eta(left),
            force=done >= total,
        )

    def loss(self, record: dict[str, Any]) -> None:
        self.status.setdefault("loss_history", []).append(record)

    def finish(self, status: str, *, error: str | None = None, result: dict[str, Any] | None = None) -> None:
        self.update(
            status=status,
            phase=status,
            error=error,
            result=result,
            eta_s=None,
            finished_at=time.time(),
            force=True,
        )
