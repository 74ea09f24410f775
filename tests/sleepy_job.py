"""A stand-in job worker for cancel tests: ``python -m tests.sleepy_job JOB_DIR`` reports "running",
starts a child process in its group (like a converter) and sleeps, writing the child's pid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from adapters.jobs import JobReporter

if __name__ == "__main__":
    job_dir = Path(sys.argv[1])
    reporter = JobReporter(job_dir)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    reporter.update(child_pid=child.pid, phase="converting", step=1, total=6, force=True)
    time.sleep(120)
