"""The dataset build as a background job of the job runner (``app.wiring.jobs``): starting it after
the checks a build makes, and its worker (``python -m app.wiring.dataset_job JOB_DIR``), which runs
or continues ``app.wiring.datasets.build_datasets`` with the options in the job's spec. Status,
cancel (the build stops after its current passage) and resume are the runner's.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring.jobs import JobKind
from domain.errors import ConfigError

DATASET = JobKind(
    name="dataset",
    module="app.wiring.dataset_job",
    label="dataset job",
    error=ConfigError,
    start_hint="`hybrid dataset build --background`",
    running_hint="follow it with `hybrid dataset status`",
    done_hint="see `hybrid dataset show`",
    list_hint="see `hybrid dataset status`",
)


def start_dataset_job(
    settings: Settings,
    n_eval: int = 60,
    n_train: int = 200,
    seed: int = 0,
    replace: bool = False,
    *,
    fresh: bool = False,
    answers: str = "passage",
    check_train: bool = False,
) -> Path:
    """Check what can be checked now, then launch the build as a background job; returns its folder.

    Raises:
        DataError: existing sets without ``replace``, or no index.
        ConfigError: a build of this collection is running, or an unfinished one has other
            options (pass ``fresh`` to discard it).
    """
    from app.wiring import jobs
    from app.wiring.datasets import BuildOptions, prepare_build

    options = BuildOptions(
        n_eval=n_eval, n_train=n_train, seed=seed, answers=answers, check_train=check_train
    )
    prepare_build(settings, options, replace=replace, fresh=fresh)
    spec = {"collection": settings.collection, **asdict(options), "replace": replace}
    return jobs.start(settings, DATASET, spec)


def _build(settings: Settings, spec: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Run or continue the build; a stop request ends it "cancelled" with what it has done."""
    from app.wiring.datasets import build_datasets, options_from_spec

    reporter.update(phase="building datasets", force=True)
    options = options_from_spec(spec)
    report = build_datasets(
        settings,
        options,
        replace=bool(spec.get("replace")),
        on_progress=reporter.progress,
        should_stop=reporter.should_stop,
    )
    if not report["complete"]:
        reporter.finish(
            "cancelled",
            error=f"stopped after {report['processed']} passages — "
            f"`hybrid dataset resume {reporter.job_dir.name}` continues",
            result=report,
        )
    return report


if __name__ == "__main__":
    from app.wiring.jobs import run_worker

    sys.exit(run_worker(DATASET, _build))
