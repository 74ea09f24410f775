"""How long a long job will take and how much memory it needs, said before it starts: training
(per model profile, from the time earlier versions on this machine took per row, else from the
project's measured training benchmark) and export (memory and disk from the base's size).

Memory follows the fp32 training copy's size: the two points measured in
``corpus/measured/profiles/train-profiles.json`` (peak RSS of training the 0.5B and the 1.5B) fit a
line through ``MEMORY_OVERHEAD_GB`` + ``MEMORY_PER_WEIGHT_BYTE`` × weight bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.settings import Settings
from app.wiring.collections import REPO_ROOT
from domain.errors import HybridError

if TYPE_CHECKING:
    from adapters.model_info import ModelInfo

MEMORY_OVERHEAD_GB = 1.9
MEMORY_PER_WEIGHT_BYTE = 1.64
TRAIN_BENCH = REPO_ROOT / "corpus" / "measured" / "profiles" / "train-profiles.json"


@dataclass(frozen=True)
class Estimate:
    """A job's expected wall time (None: nothing to go by), peak memory and disk, and what the
    time is based on."""

    seconds: float | None
    peak_gb: float | None
    disk_gb: float | None = None
    basis: str = ""
    timed: bool = True  # False: the job's time is not estimated at all

    def describe(self) -> str:
        parts = []
        if self.seconds is not None:
            minutes = self.seconds / 60
            parts.append(f"about {minutes:.0f} min" if minutes >= 1.5 else "about a minute")
        elif self.timed:
            parts.append("time unknown (no earlier run of this model here)")
        if self.peak_gb is not None:
            parts.append(f"peak memory about {self.peak_gb:.0f} GB")
        if self.disk_gb is not None:
            parts.append(f"about {self.disk_gb:.1f} GB of disk")
        return ", ".join(parts) + (f" ({self.basis})" if self.basis else "")


def _training_base(settings: Settings) -> tuple[str, ModelInfo] | None:
    """(sha256, metadata) of the base a new adapter trains on, or None when it is not set up."""
    from app.wiring.models import base_identity

    try:
        return base_identity(settings, training=True)
    except (HybridError, OSError):
        return None


def _peak_gb(base: tuple[str, ModelInfo] | None) -> float | None:
    if base is None:
        return None
    weight_bytes = base[1].parameters * 4  # the fp32 training copy
    return MEMORY_OVERHEAD_GB + MEMORY_PER_WEIGHT_BYTE * weight_bytes / 1e9


def _history_seconds_per_row(settings: Settings, sha: str) -> float | None:
    """Seconds per training row and epoch of the newest version trained on base ``sha`` here."""
    if not settings.ws.collections.is_dir():
        return None
    best: tuple[str, float] | None = None
    for params_file in settings.ws.collections.glob("*/adapters/*/params.json"):
        try:
            params = json.loads(params_file.read_text(encoding="utf-8"))
            metrics = json.loads((params_file.parent / "metrics.json").read_text(encoding="utf-8"))
            rows = int((params.get("data") or {}).get("rows") or 0) * int(params.get("epochs") or 1)
            seconds = float(metrics["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if params.get("base_sha256") != sha or rows <= 0 or seconds <= 0:
            continue
        created = str(params.get("created_at", ""))
        if best is None or created > best[0]:
            best = (created, seconds / rows)
    return best[1] if best else None


def _bench_seconds_per_row(settings: Settings, rag_share: float) -> float | None:
    """Seconds per training row from the project's benchmark (per example, times the examples a
    row becomes: itself and, for a share of rows, a retrieval version)."""
    from app.wiring.models import profile_key

    try:
        runs = json.loads(TRAIN_BENCH.read_text(encoding="utf-8"))["runs"]
        return float(runs[profile_key(settings)]["seconds_per_row"]) * (1 + rag_share)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def correction_rows(params: dict, corrections: int) -> int:
    """Rows a from-corrections run trains on (``params`` as TrainingParams JSON): each correction
    repeated ``correction_repeats`` times plus ``replay_rows`` training rows beside it."""
    per = int(params.get("correction_repeats") or 1) + int(params.get("replay_rows") or 0)
    return corrections * per


def training_estimate(settings: Settings, rows: int, *, epochs: int = 1, rag_share: float = 0.4) -> Estimate:
    """Wall time and peak memory of training ``rows`` rows for ``epochs`` on the profile in use."""
    base = _training_base(settings)
    per_row = _history_seconds_per_row(settings, base[0]) if base is not None else None
    basis = "from the last adapter trained on this model here"
    own_files = settings.models.base_gguf is not None or settings.models.base_hf is not None
    if per_row is None and not own_files:  # the benchmark measured the profiles' models only
        per_row = _bench_seconds_per_row(settings, rag_share)
        basis = "from the project's training benchmark on a 2-core CPU"
    return Estimate(
        seconds=per_row * rows * epochs if per_row is not None else None,
        peak_gb=_peak_gb(base),
        basis=basis if per_row is not None else "",
    )


def export_estimate(settings: Settings) -> Estimate:
    """Peak memory (the merge holds the fp32 model) and disk (an f16 GGUF on the way, then the
    quantized file) of exporting the base with an adapter."""
    base = _training_base(settings)
    disk = base[1].parameters * 2 / 1e9 * 1.3 if base is not None else None  # f16 + a Q4 file
    return Estimate(seconds=None, peak_gb=_peak_gb(base), disk_gb=disk, timed=False)
