"""A stand-in worker for the job runner's tests: ``python -m tests.counting_job JOB_DIR`` counts to
the spec's ``total``, one step every ``step_s`` seconds, keeping its count in the job folder so a
resumed job continues from it; a ``fail`` in the spec makes it raise a DataError with that text."""

from __future__ import annotations

import sys
import time
from typing import Any

from app.settings import Settings
from app.wiring.jobs import JobKind, run_worker
from domain.errors import DataError

COUNTING = JobKind(
    name="count",
    module="tests.counting_job",
    label="counting job",
    start_hint="`count`",
    running_hint="wait for it",
    done_hint="see its result",
    list_hint="see the list",
    one_at_a_time=True,
)


def count(settings: Settings, spec: dict[str, Any], reporter: Any) -> dict[str, Any] | None:
    if spec.get("fail"):
        raise DataError(spec["fail"])
    counted = reporter.job_dir / "count.txt"
    start = int(counted.read_text()) if counted.is_file() else 0
    for step in range(start, spec["total"]):
        if reporter.should_stop():
            reporter.finish("cancelled", error=f"stopped at step {step}")
            return None
        time.sleep(spec["step_s"])
        counted.write_text(str(step + 1))
        reporter.progress(step + 1, spec["total"], f"counted {step + 1}")
    return {"counted": spec["total"], "resumed_from": start, "workspace": str(settings.ws.root)}


if __name__ == "__main__":
    sys.exit(run_worker(COUNTING, count))
