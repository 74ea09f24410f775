"""The Deploy page's backend: an export runs as a background job (``app.wiring.export``, the same
call as ``hybrid export``), started, polled and cancelled through the job runner
(``app.wiring.jobs``); finished exports are listed from their ``export-<quant>.json`` reports.
Nothing here loads a model.
"""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from app.wiring import jobs
from app.wiring.export import EXPORT, export_reports
from domain.errors import ExportError


class RealExportBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def quants(self) -> tuple[str, ...]:
        from app.wiring.export import export_quants

        return export_quants()

    def source_label(self) -> str:
        from app.wiring.active_adapter import current_adapter

        return current_adapter(self.settings)[1] or "base"

    def estimate(self) -> str:
        """ "<model>: peak memory about M GB, about D GB of disk" for one export."""
        from app.wiring.estimates import export_estimate
        from app.wiring.models import base_name

        return f"{base_name(self.settings)}: {export_estimate(self.settings).describe()}"

    def start(self, quant: str) -> str:
        """Launch the export job for ``quant`` (one export at a time)."""
        from app.wiring.export import start_export

        if quant not in self.quants():
            raise ExportError(
                f"quantization {quant!r} is not one of {', '.join(self.quants())} — pick one above"
            )
        return start_export(self.settings, quant).name

    def status(self, job_id: str) -> dict[str, Any]:
        return jobs.status(self.settings, EXPORT, job_id)

    def cancel(self, job_id: str) -> bool:
        """Stop the export's whole process group (converters included) and record "cancelled"."""
        return jobs.cancel(self.settings, EXPORT, job_id)

    def jobs(self) -> list[dict[str, Any]]:
        return jobs.listing(self.settings, EXPORT)

    def reports(self) -> list[dict[str, Any]]:
        return [data for _, data in export_reports(self.settings.ws.exports) if data.get("path")]
