"""The Deploy page's backend: an export runs as a background job (``app.page_backends.export_job``
calls ``app.wiring.training.export_current``, as ``hybrid export`` does); polling and cancelling go
through ``adapters.jobs``; finished exports are listed from their ``export-<quant>.json`` reports.
Nothing here loads a model.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from app.settings import Settings
from domain.errors import ExportError

logger = logging.getLogger(__name__)
WORKER_MODULE = "app.page_backends.export_job"
CANCEL_WAIT_S = 5.0


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaping it when it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class RealExportBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def quants(self) -> tuple[str, ...]:
        from adapters.export import QUANTS

        preferred = ("q8_0", "q4_k_m", "f16")
        return tuple(q for q in preferred if q in QUANTS) + tuple(q for q in QUANTS if q not in preferred)

    def source_label(self) -> str:
        from app.wiring.active_adapter import current_adapter

        return current_adapter(self.settings)[1] or "base"

    def _job_dir(self, job_id: str) -> Path:
        path = self.settings.ws.job(job_id)
        if not path.is_dir():
            raise ExportError(f"no job {job_id!r} in {self.settings.ws.jobs} — pick one from the list")
        return path

    def start(self, quant: str) -> str:
        """Launch ``app.page_backends.export_job`` for ``quant`` (one export at a time)."""
        from adapters import jobs

        if quant not in self.quants():
            raise ExportError(
                f"quantization {quant!r} is not one of {', '.join(self.quants())} — pick one above"
            )
        running = [j for j in self.jobs() if j.get("status") in ("queued", "starting", "running")]
        if running:
            raise ExportError(f"export {running[0]['id']} is still running — wait for it or cancel it")
        spec = {
            "quant": quant,
            "adapter": None,
            "workspace": str(self.settings.ws.root),
            "collection": self.settings.collection,
        }
        job_dir = jobs.new_job(self.settings.ws.jobs, "export", spec)
        jobs.launch(job_dir, WORKER_MODULE)
        return job_dir.name

    def status(self, job_id: str) -> dict[str, Any]:
        from adapters.jobs import read_status

        return read_status(self._job_dir(job_id))

    def cancel(self, job_id: str) -> bool:
        """Stop the export's whole process group (converters included) and record "cancelled".

        A signal handler in the worker would wait for a long llama.cpp call to return, so the
        page ends the group and writes the final status itself once the worker is gone."""
        from adapters.jobs import FINAL, JOB_FILE, read_status
        from domain.atomic import write_json_atomic

        job_dir = self._job_dir(job_id)
        status = read_status(job_dir)
        pid = status.get("pid")
        if status.get("status") in FINAL or not pid:
            return False
        try:
            os.killpg(int(pid), signal.SIGTERM)  # launched with its own session: pgid == pid
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline and _running(int(pid)):
            time.sleep(0.1)
        if _running(int(pid)):
            os.killpg(int(pid), signal.SIGKILL)
        status.update(
            status="cancelled",
            phase="cancelled",
            error="cancelled from the Deploy page",
            eta_s=None,
            finished_at=time.time(),
        )
        write_json_atomic(job_dir / JOB_FILE, status)
        logger.info("cancelled export job %s (pid %s)", job_id, pid)
        return True

    def jobs(self) -> list[dict[str, Any]]:
        from adapters.jobs import list_jobs

        return list_jobs(self.settings.ws.jobs, kind="export")

    def reports(self) -> list[dict[str, Any]]:
        root = self.settings.ws.exports
        if not root.is_dir():
            return []
        out = []
        for path in sorted(root.glob("*/export-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                logger.warning("skipping unreadable export report %s", path)
                continue
            if isinstance(data, dict) and data.get("path"):
                out.append(data)
        return out
