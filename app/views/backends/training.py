"""The Train page's backend: the dataset summary, starting a training job through
``app.wiring.training`` (as ``hybrid train`` does), its status, cancel and resume through the job
runner (``app.wiring.jobs``), and versions, activate and rollback through
``app.wiring.active_adapter`` — all file reads, no model.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring import jobs
from app.wiring.collections import REPO_ROOT
from app.wiring.training import TRAIN, default_training_params, start_training, training_params

logger = logging.getLogger(__name__)


class RealTrainingBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _feedback_db(self) -> Path:
        from app.wiring.answer import feedback_db

        return feedback_db(self.settings)

    def dataset(self) -> dict[str, Any]:
        from app.wiring.collections import get_collection
        from app.wiring.training_data import load_corrections, train_set_rows

        train_set = get_collection(self.settings).train_set
        files = [train_set] if train_set.is_file() else []
        rows = train_set_rows(self.settings)
        base = Counter(r.lang for r in rows)
        corrections = Counter(c.lang for c in load_corrections(self.settings))
        langs = sorted(set(base) | set(corrections))
        sources = [str(f.relative_to(REPO_ROOT)) if f.is_relative_to(REPO_ROOT) else str(f) for f in files]
        if self._feedback_db().is_file():
            sources.append(str(self._feedback_db()))
        return {
            "base_rows": len(rows),
            "corrections": sum(corrections.values()),
            "by_lang": {
                lang: {"base": base.get(lang, 0), "corrections": corrections.get(lang, 0)} for lang in langs
            },
            "sources": sources,
        }

    def default_params(self) -> dict[str, Any]:
        return default_training_params()

    def estimate(self, rows: int, epochs: int) -> str:
        """ "<model>: about N min, peak memory about M GB (basis)" for training ``rows`` rows."""
        from app.wiring.estimates import training_estimate
        from app.wiring.models import base_name

        return (
            f"{base_name(self.settings)}: {training_estimate(self.settings, rows, epochs=epochs).describe()}"
        )

    def start(self, params: dict[str, Any], *, from_corrections: bool) -> str:
        checked = training_params(for_corrections=from_corrections, **params)
        job_dir = start_training(self.settings, checked, from_corrections=from_corrections)
        return Path(job_dir).name

    def status(self, job_id: str) -> dict[str, Any]:
        return jobs.status(self.settings, TRAIN, job_id)

    def cancel(self, job_id: str) -> bool:
        return jobs.cancel(self.settings, TRAIN, job_id)

    def resume(self, job_id: str) -> str:
        return jobs.resume(self.settings, TRAIN, job_id).name

    def in_use(self) -> str | None:
        from app.wiring.active_adapter import current_adapter

        return current_adapter(self.settings)[1]

    def jobs(self) -> list[dict[str, Any]]:
        """This collection's training jobs (jobs from before collections: the bundled one's)."""
        return jobs.listing(self.settings, TRAIN, mine=True)

    def versions(self) -> list[dict[str, Any]]:
        from app.wiring.active_adapter import adapter_versions

        return [v.to_json() for v in adapter_versions(self.settings)]

    def activate(self, version: str) -> dict[str, Any]:
        from app.wiring.active_adapter import activate_version

        return activate_version(self.settings, version, reason="app").to_json()

    def rollback(self) -> dict[str, Any]:
        from app.wiring.active_adapter import rollback_version

        return rollback_version(self.settings).to_json()
