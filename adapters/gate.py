"""The evaluation gate: a new adapter version becomes active only if its combined score on a fixed
evaluation subset does not fall below the currently used adapter's.

The scoring itself is the evaluation harness's (passed in as ``evaluate``); this module only
decides, caches the baseline's score per (adapter, subset) and explains the decision in one line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from domain.atomic import read_json, write_json_atomic

logger = logging.getLogger(__name__)

# evaluate(adapter_dir) -> the harness report {"modes": {MODE: {"combined", "format", ...}}, ...}
EvaluateFn = Callable[[Path], dict[str, Any]]
GATE_MODES = ("tuned", "tuned_rag")


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate may become active, with the scores behind it."""

    passed: bool
    reason: str
    candidate_score: float | None
    baseline_score: float | None
    baseline: str | None
    modes: tuple[str, ...]
    subset: str
    candidate_modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_modes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["modes"] = list(self.modes)
        return d


def subset_id(row_ids: Sequence[str]) -> str:
    """A short stable name for a list of evaluation row ids."""
    return hashlib.sha256("\n".join(row_ids).encode("utf-8")).hexdigest()[:12]


def combined_score(report: dict[str, Any], modes: Sequence[str] = GATE_MODES) -> float:
    """Mean ``combined`` over ``modes`` present in ``report["modes"]``.

    Raises:
        KeyError: none of ``modes`` is in the report.
    """
    values = [float(report["modes"][m]["combined"]) for m in modes if m in report.get("modes", {})]
    if not values:
        raise KeyError(f"the evaluation report has none of the modes {', '.join(modes)}")
    return sum(values) / len(values)


def _slim(report: dict[str, Any], modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {
        m: {k: v for k, v in report["modes"][m].items() if isinstance(v, int | float)}
        for m in modes
        if m in report.get("modes", {})
    }


def _cached_baseline(cache: Path | None, key: str) -> dict[str, Any] | None:
    if cache is None or not cache.is_file():
        return None
    try:
        return read_json(cache).get(key)
    except (OSError, ValueError):
        return None


def _store_baseline(cache: Path | None, key: str, value: dict[str, Any]) -> None:
    if cache is None:
        return
    try:
        data = read_json(cache) if cache.is_file() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = value
    write_json_atomic(cache, data)


def _answers(report: dict[str, Any], modes: Sequence[str]) -> int:
    return sum(int(report.get("modes", {}).get(m, {}).get("n") or 0) for m in modes)


def _timed(
    evaluate: EvaluateFn, adapter_dir: Path, modes: Sequence[str], cache: Path | None, subset: str
) -> dict[str, Any]:
    """``evaluate(adapter_dir)``, keeping its seconds per answer in ``cache`` for the next estimate."""
    t0 = time.perf_counter()
    report = evaluate(adapter_dir)
    n = _answers(report, modes)
    if n:
        _store_baseline(
            cache, _timing_key(subset, modes), {"seconds_per_answer": (time.perf_counter() - t0) / n}
        )
    return report


def _timing_key(subset: str, modes: Sequence[str]) -> str:
    return f"timing@{subset}:{','.join(modes)}"


def gate_seconds(cache: Path | None, subset: str, modes: Sequence[str], n_rows: int) -> float | None:
    """Expected seconds of scoring one adapter on ``n_rows`` rows in ``modes``, from the last
    scoring on this subset (None before the first)."""
    timing = _cached_baseline(cache, _timing_key(subset, modes))
    if not timing or not timing.get("seconds_per_answer"):
        return None
    return float(timing["seconds_per_answer"]) * n_rows * len(modes)


def baseline_entry(
    *,
    evaluate: EvaluateFn,
    baseline_dir: Path,
    baseline_label: str | None,
    subset: str,
    modes: Sequence[str] = GATE_MODES,
    cache: Path | None = None,
) -> dict[str, Any]:
    """The baseline's cached score on ``subset`` ({"score", "modes"}); scored and cached first when
    absent. A training job calls it before training, so the gate after training only scores the
    candidate, and the scoring's pace is known for the job's ETA."""
    key = f"{baseline_label}@{subset}:{','.join(modes)}"
    cached = _cached_baseline(cache, key)
    if cached is None:
        report = _timed(evaluate, Path(baseline_dir), modes, cache, subset)
        cached = {"score": combined_score(report, modes), "modes": _slim(report, modes)}
        _store_baseline(cache, key, cached)
    return cached


def run_gate(
    candidate_dir: Path,
    *,
    evaluate: EvaluateFn,
    baseline_dir: Path | None,
    baseline_label: str | None,
    subset: str,
    modes: Sequence[str] = GATE_MODES,
    tolerance: float = 0.0,
    cache: Path | None = None,
) -> GateDecision:
    """Score the candidate (and the baseline, unless its score on this subset is cached) and decide.

    Args:
        candidate_dir: the new version's folder (it may still be in staging).
        evaluate: runs the evaluation harness with the given adapter on the fixed subset.
        baseline_dir: the adapter used now (the active version, else the bundled default), or None.
        baseline_label: its name for messages and the cache key ("v3", "default").
        subset: ``subset_id`` of the evaluation rows, part of the cache key.
        tolerance: the candidate passes when its score ≥ baseline − tolerance.
        cache: JSON file keeping baseline scores per (label, subset).
    """
    modes = tuple(modes)
    cand_report = _timed(evaluate, Path(candidate_dir), modes, cache, subset)
    cand = combined_score(cand_report, modes)
    if baseline_dir is None:
        return GateDecision(
            True,
            f"no adapter in use to compare with; candidate combined {cand:.3f}",
            cand,
            None,
            None,
            modes,
            subset,
            _slim(cand_report, modes),
        )
    cached = baseline_entry(
        evaluate=evaluate,
        baseline_dir=Path(baseline_dir),
        baseline_label=baseline_label,
        subset=subset,
        modes=modes,
        cache=cache,
    )
    base = float(cached["score"])
    passed = cand >= base - tolerance
    verdict = "passes" if passed else "fails"
    reason = f"{verdict}: combined {cand:.3f} vs {base:.3f} for {baseline_label} on subset {subset} ({', '.join(modes)})"
    logger.info("gate %s", reason)
    return GateDecision(
        passed,
        reason,
        cand,
        base,
        baseline_label,
        modes,
        subset,
        _slim(cand_report, modes),
        dict(cached.get("modes", {})),
    )
