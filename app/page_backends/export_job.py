"""The Deploy page's export worker: ``python -m app.page_backends.export_job JOB_DIR`` runs
``app.wiring.training.export_current`` (the same call as ``hybrid export``) in its own process, so
torch and the conversion never load into the app, and reports through the job file.

Spec keys: ``quant``, ``workspace``, optional ``adapter`` (a version, "default" or "none"). SIGTERM
keeps its default meaning (stop now, even inside a long llama.cpp call); the Deploy page's cancel
signals the whole process group and records "cancelled" itself (``RealExportBackend.cancel``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    from adapters.jobs import SPEC_FILE, JobReporter
    from app.logs import setup_logging
    from app.settings import load_settings
    from app.wiring.training import export_current
    from domain.atomic import read_json
    from domain.errors import HybridError

    args = sys.argv[1:] if argv is None else argv
    job_dir = Path(args[0])
    spec = read_json(job_dir / SPEC_FILE)
    settings = load_settings()
    if spec.get("workspace"):  # the app's workspace, whatever this process's environment says
        settings = settings.model_copy(update={"workspace": Path(spec["workspace"])})
    if spec.get("collection"):  # the collection the page showed when the export started
        settings = settings.model_copy(update={"collection": str(spec["collection"])})
    setup_logging(settings.log_level)
    reporter = JobReporter(job_dir)

    def on_progress(done: int, total: int, message: str = "") -> None:
        # six uneven stages: write every one at once (the reporter's rate limit would drop the first)
        reporter.update(
            step=done, total=total, message=message, phase=f"exporting {spec['quant']}", force=True
        )

    try:
        report = export_current(
            settings, quant=spec["quant"], adapter=spec.get("adapter"), on_progress=on_progress
        )
    except HybridError as e:
        reporter.finish("failed", error=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        reporter.finish("failed", error=f"{type(e).__name__}: {e} (see {job_dir / 'log.txt'})")
        raise
    reporter.finish("succeeded", result=report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
