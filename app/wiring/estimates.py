"""How long a long job will take and how much memory it needs, said before it starts: training
(per model profile, from the time earlier versions on this machine took per row, else from the
project's measured training benchmark, scaled by this machine's pace on a profile it has trained)
and export (memory and disk from the base's size, time from the longest export of that base here).

Memory follows the fp32 training copy's size: the two points measured in
``corpus/measured/profiles/train-profiles.json`` (peak RSS of training the 0.5B and the 1.5B) fit a
line through ``MEMORY_OVERHEAD_GB`` + ``MEMORY_PER_WEIGHT_BYTE`` × weight bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


def _history(settings: Settings) -> dict[str, float]:
    """Seconds per training row and epoch of the newest version trained on each base here (any
    collection), by the base's sha256."""
    from adapters.registry import list_versions

    newest: dict[str, tuple[str, float]] = {}
    for root in settings.ws.collections.glob("*/adapters"):
        for v in list_versions(root):
            try:
                rows = int((v.params.get("data") or {}).get("rows") or 0) * int(v.params.get("epochs") or 1)
                seconds = float(v.metrics["train_seconds"])
                sha = str(v.params["base_sha256"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if rows > 0 and seconds > 0 and (sha not in newest or v.created_at > newest[sha][0]):
                newest[sha] = (v.created_at, seconds / rows)
    return {sha: per_row for sha, (_, per_row) in newest.items()}


def _bench() -> dict[str, float]:
    """Seconds per training example of each profile in the project's training benchmark."""
    try:
        runs = json.loads(TRAIN_BENCH.read_text(encoding="utf-8"))["runs"]
        return {str(k): float(v["seconds_per_row"]) for k, v in runs.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def seconds_per_row(
    profile: str,
    sha: str | None,
    history: dict[str, float],
    bench: dict[str, float],
    profile_shas: dict[str, str],
    rag_share: float,
) -> tuple[float | None, str]:
    """(seconds per training row, what that rests on) for profile ``profile`` with base ``sha``:
    this machine's last run on that base; else the benchmark's time for the profile, scaled by how
    this machine compared with the benchmark on another profile it has trained (``profile_shas``:
    the installed profiles' base sha256); else the benchmark's time as measured there (a row is
    itself plus, for ``rag_share`` of rows, a retrieval version).

    >>> seconds_per_row("big", "b", {"b": 9.0}, {}, {}, 0.4)
    (9.0, 'from the last adapter trained on this model here')
    >>> seconds_per_row("big", "b", {"s": 1.0}, {"big": 6.0, "small": 2.0}, {"small": "s"}, 0.4)[0]
    3.0
    """
    if sha is not None and sha in history:
        return history[sha], "from the last adapter trained on this model here"
    if profile not in bench:
        return None, ""
    for other, other_sha in profile_shas.items():
        if other != profile and other in bench and other_sha in history:
            scaled = history[other_sha] * bench[profile] / bench[other]
            return (
                scaled,
                f"from the training benchmark, scaled by this machine's pace on the {other} profile",
            )
    return bench[profile] * (1 + rag_share), "from the project's training benchmark on another 2-core CPU"


def correction_rows(params: dict, corrections: int) -> int:
    """Rows a from-corrections run trains on (``params`` as TrainingParams JSON): each correction
    repeated ``correction_repeats`` times plus ``replay_rows`` training rows beside it."""
    per = int(params.get("correction_repeats") or 1) + int(params.get("replay_rows") or 0)
    return corrections * per


def training_estimate(settings: Settings, rows: int, *, epochs: int = 1, rag_share: float = 0.4) -> Estimate:
    """Wall time and peak memory of training ``rows`` rows for ``epochs`` on the profile in use."""
    from adapters.base_model import PROFILES
    from app.wiring.models import base_sha256, profile_key, with_profile

    base = _training_base(settings)
    history = _history(settings)
    own_files = settings.models.base_gguf is not None or settings.models.base_hf is not None
    bench = {} if own_files else _bench()  # the benchmark measured the profiles' models only
    key = profile_key(settings)
    others = [] if own_files else [k for k in PROFILES if k != key]
    shas = {k: base_sha256(with_profile(settings, k), training=True) for k in others}
    profile_shas = {k: sha for k, sha in shas.items() if sha is not None}
    per_row, basis = seconds_per_row(
        key, base[0] if base is not None else None, history, bench, profile_shas, rag_share
    )
    return Estimate(
        seconds=per_row * rows * epochs if per_row is not None else None,
        peak_gb=_peak_gb(base),
        basis=basis,
    )


def longest_export_seconds(exports: Path, base_hf: Path) -> float | None:
    """Seconds of the longest export of the base at ``base_hf`` (the copy exports merge into) whose
    report is in ``exports`` — the longest, because a later export of the same adapter reuses the
    first one's merged file and takes a fraction of the time."""
    from app.wiring.export import export_reports

    longest: float | None = None
    for report, data in export_reports(exports):
        try:
            source = json.loads((report.parent / "source.json").read_text(encoding="utf-8"))
            seconds = float(data["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(str(source.get("base", ""))) == base_hf and seconds > 0:
            longest = seconds if longest is None else max(longest, seconds)
    return longest


def export_estimate(settings: Settings) -> Estimate:
    """Peak memory (the merge holds the fp32 model) and disk (an f16 GGUF on the way, then the
    quantized file) of exporting the base with an adapter, and its time when this base was
    exported here before."""
    from app.wiring.models import base_hf_path

    base = _training_base(settings)
    disk = base[1].parameters * 2 / 1e9 * 1.3 if base is not None else None  # f16 + a Q4 file
    try:
        seconds = longest_export_seconds(settings.ws.exports, base_hf_path(settings))
    except (HybridError, OSError):
        seconds = None
    return Estimate(
        seconds=seconds,
        peak_gb=_peak_gb(base),
        disk_gb=disk,
        basis="the longest export of this model here" if seconds is not None else "",
        timed=seconds is not None,
    )
