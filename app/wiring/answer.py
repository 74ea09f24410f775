"""Wires the answer service for the selected collection: the retriever over its index, the
generator (the backend chosen in settings, with the collection's adapter in use), its corrections
store, the embedder's query embedding for correction memory, its router thresholds and its style
profile, and the prompt builder that training data shares with answering. Heavy modules load
inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import IndexMismatchError, IndexStoreError

if TYPE_CHECKING:
    from domain.pipeline import Assistant, AssistantOptions
    from domain.ports import Generator, Message
    from domain.router import AdapterState
    from domain.types import Hit

logger = logging.getLogger(__name__)


def router_path(settings: Settings) -> Path:
    """Where ``hybrid eval --fit-router`` stores the selected collection's router thresholds."""
    from app.wiring.collections import get_collection

    return get_collection(settings).paths.router


def feedback_db(settings: Settings) -> Path:
    """The selected collection's correction memory."""
    from app.wiring.collections import get_collection

    return get_collection(settings).paths.feedback_db


def assistant_options(settings: Settings) -> AssistantOptions:
    """The pipeline's options from settings, with the selected collection's style profile."""
    from app.wiring.collections import get_collection
    from domain.pipeline import AssistantOptions

    return AssistantOptions(
        style=get_collection(settings).style(),
        top_k=settings.index.top_k,
        max_new_tokens=settings.generation.max_new_tokens,
        temperature=settings.generation.temperature,
        context_tokens=settings.generation.context_tokens,
        focus_segments=settings.generation.focus_segments,
        whole_passages=settings.generation.whole_passages,
        best_passage_last=settings.generation.best_passage_last,
        quote_evidence=settings.generation.quote_evidence,
        evidence_choice=settings.generation.evidence_choice,
        evidence_candidates=settings.generation.evidence_candidates,
        correction_similarity=settings.answer.correction_similarity,
        low_score_warning=settings.answer.low_score_warning,
    )


def build_generator(settings: Settings, *, adapter_dir: Path | None = None) -> Generator:
    """The answering backend from ``app.wiring.generation`` (llama.cpp or transformers), with the
    adapter in use — or ``adapter_dir`` when given (the evaluation gate scores a candidate).

    Raises:
        ModelMissingError: a model or adapter file is missing (raised by the backend).
        SetupError: the backend library is missing or a file cannot be loaded.
    """
    from app.wiring import generation

    return generation.build_generator(settings, adapter_dir=adapter_dir)


def adapter_state(settings: Settings, generator: Generator, adapter_dir: Path | None = None) -> AdapterState:
    """What the router needs to know about the adapter: loaded, its label, its gate verdict."""
    from domain.atomic import read_json
    from domain.router import AdapterState

    folder: Path | None
    label: str | None
    note: str | None = None
    if adapter_dir is not None:
        folder, label = adapter_dir, adapter_dir.name
    else:
        from app.wiring.active_adapter import adapter_choice

        choice = adapter_choice(settings)
        folder, label, note = choice.folder, choice.label, choice.note
    gate: bool | None = None
    if folder is not None and (folder / "metrics.json").is_file():
        try:
            passed = (read_json(folder / "metrics.json").get("gate") or {}).get("passed")
            gate = None if passed is None else bool(passed)
        except (OSError, ValueError, AttributeError):
            logger.warning("unreadable metrics.json in %s; treating the adapter as not gated", folder)
    return AdapterState(active=generator.has_adapter, label=label, gate_passed=gate, note=note)


class _MissingIndex:
    """Stands in for a retriever when the index is not built: prompt and tuned modes still work,
    anything that searches raises the original, actionable error."""

    def __init__(self, error: IndexStoreError) -> None:
        self.error = error

    def search(self, query: str, *, k: int = 5) -> list[Hit]:  # noqa: ARG002
        raise self.error


def build_assistant(
    settings: Settings,
    *,
    index: str | None = None,
    adapter_dir: Path | None = None,
    use_corrections: bool = True,
) -> Assistant:
    """The answer service for these settings.

    Args:
        index: the collection whose index answers (default: the selected collection; its other
            parts — adapter, corrections, router, style — always come from ``settings.collection``).
        adapter_dir: answer with this adapter instead of the one in use.
        use_corrections: attach the correction memory (evaluation turns it off).

    Raises:
        ModelMissingError: the embedder or base model is not set up.
        IndexMismatchError: the index was built with other settings.
        ConfigError: the stored router thresholds are unreadable.
    """
    from app.wiring.generation import build_line_translator, build_other_language_generator, build_translator
    from app.wiring.index import build_retriever, index_manifest, query_embedder
    from domain.answer_language import line_translator
    from domain.corrections import CorrectionStore
    from domain.crosslingual import TranslatingRetriever
    from domain.pipeline import Assistant
    from domain.router import RouterThresholds

    embedder = query_embedder(settings, index)
    retriever: Any
    try:
        retriever = build_retriever(
            settings, index, embedder=embedder, per_doc=settings.answer.passages_per_doc
        )
    except IndexMismatchError:
        raise
    except IndexStoreError as e:
        logger.warning("no usable index (%s); only the prompt and tuned modes can answer", e)
        retriever = _MissingIndex(e)
    else:
        translate = build_translator(settings)
        if translate is not None:
            retriever = TranslatingRetriever(retriever, translate)
    generator = build_generator(settings, adapter_dir=adapter_dir)
    translate_line = build_line_translator(settings)
    other, other_label, other_adapter = (
        (None, "", "") if adapter_dir is not None else build_other_language_generator(settings)
    )
    return Assistant(
        retriever=retriever,
        generator=generator,
        embed_fn=embedder.embed_queries if use_corrections else None,
        corrections=CorrectionStore(feedback_db(settings)) if use_corrections else None,
        options=assistant_options(settings),
        thresholds=RouterThresholds.load(router_path(settings)),
        adapter=adapter_state(settings, generator, adapter_dir),
        sentence_scorer=sentence_scorer(embedder),
        translate_line=line_translator(translate_line) if translate_line is not None else None,
        other_language_generator=other,
        other_language_label=other_label,
        other_language_adapter=other_adapter,
        collection_files=tuple(sorted((index_manifest(settings, index) or {}).get("files", {}))),
    )


def sentence_scorer(embedder: Any) -> Callable[[str, Sequence[str]], Sequence[float]]:
    """Scores sentences for a question by the embedder: cosine of the question's query vector
    and each sentence's passage vector."""

    def score(question: str, texts: Sequence[str]) -> Sequence[float]:
        return list(embedder.embed_passages(texts) @ embedder.embed_queries([question])[0])

    return score


def training_messages_builder(settings: Settings) -> Callable[[str, str, Sequence[Hit]], list[Message]]:
    """The answering prompts as (mode, question, hits) -> messages, for training rows: the same
    system prompt and passage layout, with a tokenizer-free token estimate for the budget."""
    from app.wiring.collections import get_collection
    from domain.prompts import build_messages

    budget = settings.generation.context_tokens
    style = get_collection(settings).style()

    def build(mode: str, question: str, hits: Sequence[Hit]) -> list[Message]:
        return build_messages(mode, question, hits, context_tokens=budget, style=style)

    return build
