"""The Datasets page's backend: the selected collection's evaluation and training sets
(``app.wiring.dataset_rows``) and their build job (``app.wiring.dataset_job`` through the job
runner ``app.wiring.jobs``), as ``hybrid dataset`` does — file reads and a background process, no
model in the page's process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring import jobs
from app.wiring.dataset_job import DATASET
from domain.errors import ConfigError


class RealDatasetBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def summary(self) -> dict[str, Any]:
        from app.wiring.dataset_rows import dataset_summary

        return dataset_summary(self.settings)

    def start(self, n_eval: int, n_train: int, *, replace: bool, check_train: bool = False) -> str:
        from app.wiring.dataset_job import start_dataset_job

        return start_dataset_job(
            self.settings, n_eval, n_train, replace=replace, check_train=check_train
        ).name

    def status(self, job_id: str) -> dict[str, Any]:
        return jobs.status(self.settings, DATASET, job_id)

    def cancel(self, job_id: str) -> bool:
        return jobs.cancel(self.settings, DATASET, job_id)

    def resume(self, job_id: str) -> str:
        return jobs.resume(self.settings, DATASET, job_id).name

    def last_job(self) -> str | None:
        try:
            return jobs.find(self.settings, DATASET, "last").name
        except ConfigError:
            return None

    def rows(self, kind: str) -> list[dict[str, Any]]:
        from app.wiring.dataset_rows import load_rows

        return load_rows(self.settings, kind)

    def passage(self, row: dict[str, Any]) -> dict[str, Any] | None:
        from app.wiring.dataset_rows import row_passage

        return row_passage(self.settings, row)

    def save(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        from app.wiring.dataset_rows import save_rows

        return str(save_rows(self.settings, kind, rows))

    def import_file(self, kind: str, path: Path, *, replace: bool) -> dict[str, Any]:
        from app.wiring.dataset_rows import import_rows

        return import_rows(self.settings, kind, path, replace)
