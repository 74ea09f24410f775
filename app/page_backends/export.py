"""The Deploy page's backend: starting an export job through ``app.wiring.export`` (as
``hybrid export`` does), polling and cancelling it through ``adapters.jobs``, and listing finished
exports from their ``export-<quant>.json`` reports — file reads only, no model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from app.settings import Settings
from domain.errors import ExportError

logger = logging.getLogger(__name__)


class RealExportBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def quants(self) -> tuple[str, ...]:
        from adapters.export import QUANTS

        preferred = ("q8_0", "q4_k_m", "f16")
        return tuple(q for q in preferred if q in QUANTS) + tuple(q for q in QUANTS if q not in preferred)

    def source_label(self) -> str:
        from app.wiring.training import current_adapter

        _, label = current_adapter(self.settings)
        return {None: "the base model (no adapter yet)", "default": "the bundled default adapter"}.get(
            label, f"adapter {label}"
        )

    def _job_dir(self, job_id: str) -> Path:
        path = self.settings.ws.jobs / job_id
        if path.parent != self.settings.ws.jobs or not path.is_dir():
            raise ExportError(f"no job {job_id!r} in {self.settings.ws.jobs} — pick one from the list")
        return path

    def start(self, quant: str) -> str:
        from app.wiring.export import start_export

        return Path(start_export(self.settings, quant)).name

    def status(self, job_id: str) -> dict[str, Any]:
        from adapters.jobs import read_status

        return read_status(self._job_dir(job_id))

    def cancel(self, job_id: str) -> bool:
        from adapters.jobs import cancel

        return cancel(self._job_dir(job_id))

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
