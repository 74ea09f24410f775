"""The training gate's evaluator: the fixed subset of a collection's evaluation set a new adapter
version is scored on, and the harness report on it answered with a given adapter. The decision
(candidate against the adapter in use, the baseline's cached score) is ``adapters.gate``'s; the
training job joins the two in ``app.wiring.training``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.settings import Settings
from domain.errors import ModelMissingError
from domain.progress import ProgressFn

GATE_ROWS = 16


def gate_rows(settings: Settings, n: int = GATE_ROWS) -> list[dict[str, Any]]:
    """The fixed evaluation subset of the gate: every k-th row of the collection's evaluation set
    by id (both languages, all kinds)."""
    from app.wiring.dataset_rows import load_rows

    rows = sorted(load_rows(settings, "eval"), key=lambda r: r["id"])
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def evaluate_with_adapter(
    settings: Settings,
    rows: list[dict[str, Any]],
    *,
    modes: Sequence[str],
    adapter_dir: Path,
    index: str | None = None,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The harness report for ``rows`` in ``modes``, answered with the adapter in ``adapter_dir``
    over index ``index`` (default: the collection's own), correction memory off; progress per row
    to ``on_progress`` (none shown when not given).

    Raises:
        ModelMissingError: the adapter did not load (e.g. its GGUF LoRA is missing).
    """
    from app.evaluation.modes import evaluate_assistant
    from app.wiring.answer import build_assistant

    assistant = build_assistant(settings, index=index, adapter_dir=adapter_dir, use_corrections=False)
    if any(m in ("tuned", "tuned_rag") for m in modes) and not assistant.adapter_state.active:
        raise ModelMissingError(
            f"the adapter in {adapter_dir} did not load for the {settings.generation.backend} backend — "
            "check that the version has its files (lora.gguf for llama.cpp)"
        )
    _, report = evaluate_assistant(assistant, rows, modes, quiet=True, on_progress=on_progress)
    return report
