"""Wires the GGUF export of the adapter in use (or a named version, or the base model): the golden
prompts, held-out and calibration text from the collection's sets, and the export as a background
job for the Deploy page (``python -m app.wiring.export JOB_DIR``, through ``app.wiring.jobs``) or in
the foreground for ``hybrid export``. Merging, converting and checking is ``adapters.export``'s job.

Job spec keys: ``quant``, ``workspace``, ``collection``, optional ``adapter`` (a version, "default"
or "none").
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring.active_adapter import current_adapter, default_adapter_dir, registry_root, require_fit
from app.wiring.jobs import JobKind
from domain.errors import DataError, ExportError, HybridError

logger = logging.getLogger(__name__)

EXPORT = JobKind(
    name="export",
    module="app.wiring.export",
    label="export",
    error=ExportError,
    running_hint="wait for it or cancel it",
    list_hint="pick one from the list",
    one_at_a_time=True,
    last_per_collection=False,
    kill_note="cancelled from the Deploy page",
)


def export_quants() -> tuple[str, ...]:
    """The quantizations an export can make, the recommended first (q8_0, then q4_k_m, then f16)."""
    from adapters.export import QUANTS

    preferred = ("q8_0", "q4_k_m", "f16")
    return tuple(q for q in preferred if q in QUANTS) + tuple(q for q in QUANTS if q not in preferred)


def heldout_text(settings: Settings) -> str:
    """Held-out domain text for perplexity: the evaluation set's reference answers (never trained on)."""
    from app.wiring.dataset_rows import load_rows

    refs = [r.get("reference") or "" for r in load_rows(settings, "eval")]
    if not refs:
        raise DataError(
            f"collection {settings.collection!r} has no evaluation set for the export's perplexity "
            f"check — build one with `hybrid dataset build --collection {settings.collection}`"
        )
    return "\n\n".join(r for r in refs if r)


def calibration_text(settings: Settings) -> str:
    """Text for the q4_k_m importance matrix: the training questions and answers, languages
    interleaved so the first few thousand tokens cover both — never the held-out evaluation text."""
    from itertools import chain, zip_longest

    from adapters.training_rows import load_train_rows
    from app.wiring.training_data import train_files

    by_lang: dict[str, list[str]] = {}
    for row in load_train_rows(train_files(settings)):
        by_lang.setdefault(row.lang, []).append(f"{row.question}\n{row.answer}")
    mixed = chain.from_iterable(zip_longest(*by_lang.values()))
    return "\n\n".join(t for t in mixed if t)


def golden_mode(settings: Settings, *, tuned: bool = True) -> str:
    """The mode the golden prompts are asked in: as the exported model answers the collection's
    questions — over its passages when the collection has an index (``tuned_rag``, or ``rag`` for
    the base model), else the question alone (``tuned`` / ``prompt``)."""
    from app.wiring.index import index_manifest

    if index_manifest(settings) is not None:
        return "tuned_rag" if tuned else "rag"
    return "tuned" if tuned else "prompt"


def golden_messages(settings: Settings, rows: list[dict[str, Any]], mode: str = "tuned") -> list[Any]:
    """The chat messages each row's question is answered from in ``mode``, built as the assistant
    builds them (``domain.pipeline.answer_prompt``): in a retrieval mode over the collection's own
    index, its top k, within the prompt budget counted by the base model's tokenizer.

    Raises:
        IndexStoreError / ModelMissingError: a retrieval mode without the index or the embedder.
    """
    from app.wiring.answer import assistant_options
    from domain.answer_stream import parse_mode
    from domain.errors import ConfigError
    from domain.pipeline import answer_prompt
    from domain.prompts import estimate_tokens

    chosen = parse_mode(mode)
    if chosen is None:
        raise ConfigError("the golden prompts need a fixed mode, not auto")
    options = assistant_options(settings)
    if not chosen.uses_retrieval:
        return [answer_prompt(options, chosen, r["question"], (), estimate_tokens).messages for r in rows]
    from transformers import AutoTokenizer

    from adapters.chat_pieces import hf_encoder
    from app.wiring.index import build_retriever
    from app.wiring.models import base_hf_path

    encode = hf_encoder(AutoTokenizer.from_pretrained(str(base_hf_path(settings)), local_files_only=True))
    retriever = build_retriever(settings, per_doc=settings.answer.passages_per_doc)

    def count(text: str) -> int:  # as the generators count: chat markers in text are plain text
        return len(encode(text, False))

    prompts = []
    for r in rows:
        hits = sorted(retriever.search(r["question"], k=options.top_k), key=lambda h: h.rank)
        prompts.append(answer_prompt(options, chosen, r["question"], hits, count).messages)
    return prompts


def golden_prompts(
    settings: Settings, rows: list[dict[str, Any]], *, tuned: bool = True
) -> tuple[str, list[Any]]:
    """(mode, messages) of the golden check for ``rows``: asked in ``golden_mode``, or with the
    question alone when the collection's index cannot be opened (another embedder or splitter
    since it was built) — an export never waits for a re-index."""
    mode = golden_mode(settings, tuned=tuned)
    try:
        return mode, golden_messages(settings, rows, mode)
    except HybridError as e:
        if mode not in ("tuned_rag", "rag"):
            raise
        logger.warning("golden prompts without passages: the index cannot be opened (%s)", e)
        mode = "tuned" if tuned else "prompt"
        return mode, golden_messages(settings, rows, mode)


def export_current(
    settings: Settings,
    *,
    quant: str,
    adapter: str | None = None,
    n_threads: int | None = None,
    on_progress: Any = None,
) -> dict[str, Any]:
    """Export the adapter in use (or ``adapter``: a version, "default", or "none" for the base model).

    Raises:
        RegistryError: the named version does not exist.
        AdapterMismatchError: the adapter was trained on another base model.
        ExportError / ModelMissingError: as ``adapters.export.export_model``.
    """
    from adapters.export import export_model
    from adapters.registry import is_complete
    from app.evaluation.gate import gate_rows
    from app.wiring.models import base_gguf_path, base_hf_path, tools_dir
    from app.wiring.training_data import build_messages_fn
    from domain.errors import RegistryError
    from domain.progress import no_progress
    from domain.workspace import check_name

    if adapter in (None, ""):
        folder, label = current_adapter(settings)
    elif adapter == "none":
        folder, label = None, "base"
    elif adapter == "default":
        folder, label = default_adapter_dir(settings), "default"
        if folder is None:
            raise RegistryError(
                f"collection {settings.collection!r} ships no default adapter — name a version "
                "(`hybrid adapters list`) or 'none'"
            )
    else:
        folder, label = registry_root(settings) / check_name(adapter, "adapter version"), adapter
    if folder is not None and not is_complete(folder):
        raise RegistryError(f"adapter {adapter or label!r} not found — see `hybrid adapters list`")
    if folder is not None:
        require_fit(settings, folder, label)  # merged into this base, it must be this base's
    build = build_messages_fn(settings)
    mode, prompts = golden_prompts(settings, gate_rows(settings, 5), tuned=folder is not None)
    system = next((m["content"] for m in build("tuned", "", []) if m["role"] == "system"), "")
    return export_model(
        base_hf=base_hf_path(settings),
        adapter_dir=folder,
        label=label or "base",
        exports_root=settings.ws.exports,
        tools_dir=tools_dir(settings),
        quant=quant,
        golden_prompts=prompts,
        golden_mode=mode,
        heldout_text=heldout_text(settings),
        calibration_text=calibration_text(settings),
        served_base_gguf=base_gguf_path(settings),
        system_prompt=system,
        n_threads=n_threads or settings.generation.n_threads,
        on_progress=on_progress or no_progress,
    )


def start_export(settings: Settings, quant: str, adapter: str | None = None) -> Path:
    """Launch ``export_current`` as a background job (one at a time: else ExportError); returns its
    folder. The worker uses this process's workspace and collection."""
    from app.wiring import jobs

    spec = {
        "quant": quant,
        "adapter": adapter,
        "workspace": str(settings.ws.root),
        "collection": settings.collection,
    }
    return jobs.start(settings, EXPORT, spec)


def export_reports(exports: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, report) of every readable export report under ``exports``
    (``<label>/export-<quant>.json``), newest first; an unreadable one is logged and skipped."""
    out = []
    for path in sorted(exports.glob("*/export-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("skipping unreadable export report %s", path)
            continue
        if isinstance(data, dict):
            out.append((path, data))
    return out


def _export(settings: Settings, spec: dict[str, Any], reporter: Any) -> dict[str, Any]:
    def on_progress(done: int, total: int, message: str = "") -> None:
        # six uneven stages: write every one at once (the reporter's rate limit would drop the first)
        reporter.update(
            step=done, total=total, message=message, phase=f"exporting {spec['quant']}", force=True
        )

    return export_current(settings, quant=spec["quant"], adapter=spec.get("adapter"), on_progress=on_progress)


if __name__ == "__main__":
    from app.wiring.jobs import run_worker

    sys.exit(run_worker(EXPORT, _export))
