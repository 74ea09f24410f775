"""The one runner of the app's long jobs (training, dataset builds, GGUF exports, any later one): start
a job's worker process, find a job by id or "last", its status (a worker that died without a final
status is reported failed), cancel, resume, and the shared body of every worker's ``__main__``.
What a job does is its worker's business; the job folder and process protocol are ``adapters.jobs``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters import jobs
from app.settings import Settings, load_settings
from domain.atomic import read_json
from domain.errors import ConfigError, HybridError
from domain.progress import ProgressFn, no_progress

# work(settings for the job's collection, spec, reporter) -> the result; it may finish the job itself
WorkFn = Callable[[Settings, dict[str, Any], jobs.JobReporter], Any]


@dataclass(frozen=True)
class JobKind:
    """What the runner needs to know about one kind of job; the hints end its messages."""

    name: str  # the job ids' prefix ("train" → train-20250101-120000-ab12)
    module: str  # the worker: ``python -m module JOB_DIR``
    label: str  # "training job"
    error: type[HybridError] = ConfigError  # raised for an unknown job, a refused start or resume
    start_hint: str = ""  # how to start one
    running_hint: str = ""  # what to do while one runs
    done_hint: str = ""  # where a finished one's result is
    list_hint: str = ""  # where the jobs are listed
    one_at_a_time: bool = False  # refuse a start while another job of this kind runs
    last_per_collection: bool = True  # "last" is the selected collection's newest (else anyone's)
    # set: cancel ends the worker's process group and records this note (the worker does not stop
    # between steps, e.g. inside a long llama.cpp call); None: SIGTERM, the worker stops itself
    kill_note: str | None = None


def start(settings: Settings, kind: JobKind, spec: dict[str, Any]) -> Path:
    """Write a job folder with ``spec`` and launch its worker; returns the folder.

    Raises:
        kind.error: another job of this kind runs and the kind runs one at a time.
    """
    if kind.one_at_a_time:
        running = [j for j in jobs.list_jobs(settings.ws.jobs, kind.name) if j["status"] in jobs.ACTIVE]
        if running:
            raise kind.error(f"{kind.label} {running[0]['id']} is still running — {kind.running_hint}")
    # the model choices made in this process (CLI --profile, a page's choice) go with the job
    models = settings.models.model_dump(mode="json", exclude_unset=True)
    job_dir = jobs.new_job(settings.ws.jobs, kind.name, {**spec, "models": models} if models else spec)
    jobs.launch(job_dir, kind.module)
    return job_dir


def listing(settings: Settings, kind: JobKind, *, mine: bool = False) -> list[dict[str, Any]]:
    """Statuses of the jobs of ``kind`` (newest first, each with its "dir"); with ``mine`` only the
    selected collection's (a job from before collections belongs to the bundled one)."""
    from app.wiring.collections import bundled_name

    found = jobs.list_jobs(settings.ws.jobs, kind.name)
    if not mine:
        return found
    out = []
    for status in found:
        try:
            spec = read_json(Path(status["dir"]) / jobs.SPEC_FILE)
        except (OSError, ValueError):
            continue
        if isinstance(spec, dict) and (spec.get("collection") or bundled_name()) == settings.collection:
            out.append(status)
    return out


def find(settings: Settings, kind: JobKind, job: str = "last") -> Path:
    """The folder of job ``job``: an id, or "last" (the newest of this kind; of the selected
    collection when the kind says so).

    Raises:
        ConfigError: a name that is not allowed.
        kind.error: no such job.
    """
    if job == "last":
        found = listing(settings, kind, mine=kind.last_per_collection)
        if found:
            return Path(found[0]["dir"])
        owner = f"collection {settings.collection!r} has" if kind.last_per_collection else "there is"
        raise kind.error(f"{owner} no {kind.label} yet — start one with {kind.start_hint}")
    path = settings.ws.job(job)
    if not job.startswith(kind.name + "-") or not (path / jobs.JOB_FILE).is_file():
        raise kind.error(f"no job {job!r} in {settings.ws.jobs} — {kind.list_hint}")
    return path


def status(settings: Settings, kind: JobKind, job: str = "last") -> dict[str, Any]:
    """Job ``job``'s status with its "dir"; a worker gone without a final status reads "failed"."""
    path = find(settings, kind, job)
    return {**jobs.read_status(path), "dir": str(path)}


def cancel(settings: Settings, kind: JobKind, job: str = "last") -> bool:
    """Stop job ``job`` (as its kind says); False when it was not running."""
    return jobs.cancel(find(settings, kind, job), kill_note=kind.kill_note)


def resume(settings: Settings, kind: JobKind, job: str = "last") -> Path:
    """Relaunch a stopped, cancelled, failed or killed job; its worker continues from what the job
    folder holds. Returns the folder.

    Raises:
        kind.error: no such job, or it is running or has finished.
    """
    path = find(settings, kind, job)
    state = jobs.read_status(path)["status"]
    if state in jobs.ACTIVE:
        raise kind.error(f"{kind.label} {path.name} is still running — {kind.running_hint}")
    if state == "succeeded":
        raise kind.error(f"{kind.label} {path.name} already finished — {kind.done_hint}")
    jobs.launch(path, kind.module)
    return path


def wait(job_dir: Path, on_progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Follow a job until it is final, forwarding (step, total, message) to ``on_progress``."""
    return jobs.wait(job_dir, on_progress=on_progress)


def run_worker(kind: JobKind, work: WorkFn, argv: list[str] | None = None) -> int:
    """The body of every worker's ``__main__`` (``python -m kind.module JOB_DIR``): settings for the
    job's workspace and collection, logging, a reporter on the job file (SIGTERM asks ``work`` to
    stop unless the kind is ended by a kill), then ``work``. What it returns is the job's result
    unless it finished the job itself; an error fails the job with its message.

    Returns the exit code: 0 succeeded, 1 stopped, 2 failed.
    """
    from app.logs import setup_logging
    from app.wiring.collections import with_collection

    job_dir = Path((sys.argv[1:] if argv is None else argv)[0])
    spec = read_json(job_dir / jobs.SPEC_FILE)
    settings = load_settings()
    if spec.get("workspace"):  # the app's workspace, whatever this process's environment says
        settings = settings.model_copy(update={"workspace": Path(spec["workspace"])})
    if isinstance(spec.get("models"), dict):
        explicit = {**settings.models.model_dump(exclude_unset=True), **spec["models"]}
        settings = settings.model_copy(update={"models": type(settings.models).model_validate(explicit)})
    setup_logging(settings.log_level)
    reporter = jobs.JobReporter(job_dir)
    if kind.kill_note is None:
        reporter.install_signal_handlers()
    try:
        result = work(with_collection(settings, spec.get("collection")), spec, reporter)
    except HybridError as e:
        if reporter.status.get("status") not in jobs.FINAL:
            reporter.finish("failed", error=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if reporter.status.get("status") not in jobs.FINAL:
            reporter.finish("failed", error=f"{type(e).__name__}: {e} (see {job_dir / jobs.LOG_FILE})")
        raise
    if reporter.status.get("status") not in jobs.FINAL:
        reporter.finish("succeeded", result=result)
    return 0 if reporter.status["status"] == "succeeded" else 1
