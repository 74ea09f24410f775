"""Wires a training job's data: where the selected collection's training rows are, and how rows
(the training set, or corrections plus replay) become chat examples — RAFT-style RAG rows through
the real retriever, prompts built by the answering pipeline. Making the examples is
``adapters.training_data``'s job.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from app.settings import Settings
from domain.errors import DataError, HybridError

logger = logging.getLogger(__name__)


def train_files(settings: Settings, given: list[str] | None = None) -> list[Path]:
    """The training JSONL files: those given, else the selected collection's training set.

    Raises:
        DataError: none exists.
    """
    from app.wiring.collections import get_collection

    if given:
        return [Path(p) for p in given]
    coll = get_collection(settings)
    if not coll.train_set.is_file():
        raise DataError(
            f"collection {coll.name!r} has no training set yet — build one with "
            f"`hybrid dataset build --collection {coll.name}` or pass --data FILE"
        )
    return [coll.train_set]


def train_set_rows(settings: Settings) -> list[Any]:
    """The selected collection's training rows, checked; none when it has no training set yet.

    Raises:
        DataError: a malformed row (named by file and line).
    """
    from adapters.training_rows import load_train_rows
    from app.wiring.collections import get_collection

    train_set = get_collection(settings).train_set
    return load_train_rows([train_set]) if train_set.is_file() else []


def load_corrections(settings: Settings) -> list[Any]:
    """Every stored correction (records with question, mode, passages, corrected)."""
    from app.wiring.collections import get_collection
    from domain.corrections import CorrectionStore

    db = get_collection(settings).paths.feedback_db
    if not db.is_file():
        return []
    return list(CorrectionStore(db).all())


def _search_fn(settings: Settings, index: str | None) -> Any:
    """``retriever.search`` as (query, k) -> hits, or None when the index is not built."""
    from app.wiring.index import build_retriever

    try:
        retriever = build_retriever(settings, index)
    except HybridError as e:
        logger.warning("no retriever for RAG-form rows (%s); training on plain rows only", e)
        return None
    return lambda query, k: retriever.search(query, k=k)


def build_messages_fn(settings: Settings, context_tokens: int | None = None) -> Any:
    """The answering pipeline's prompt builder as (mode, question, hits) -> messages; training rows
    may use a smaller passage budget (``context_tokens``) than answering does."""
    if context_tokens is None:
        from app.wiring.answer import training_messages_builder

        return training_messages_builder(settings)
    from app.wiring.collections import get_collection
    from domain.prompts import build_messages

    style = get_collection(settings).style()
    return lambda mode, question, hits: build_messages(
        mode, question, hits, context_tokens=context_tokens, style=style
    )


def prepare_examples(
    settings: Settings, spec: dict[str, Any], reporter: Any = None
) -> tuple[list[Any], dict[str, Any]]:
    """Rows → chat examples for the job: the training set (or corrections + replay), RAFT-style RAG
    rows through the real retriever, the pipeline's own prompts."""
    from dataclasses import asdict

    from adapters.train_params import TrainingParams
    from adapters.training_data import build_examples
    from adapters.training_rows import load_train_rows, replay_sample, rows_from_corrections

    params = TrainingParams.from_json(spec["params"])
    data = spec["data"]
    rows = load_train_rows(data["files"])
    if params.max_rows and params.max_rows < len(rows):
        rows = random.Random(params.seed).sample(rows, params.max_rows)
    corrections = rows_from_corrections(load_corrections(settings))
    if data.get("from_corrections"):
        replay = replay_sample(rows, params.replay_rows * len(corrections), seed=params.seed)
        rows = corrections + replay
    else:  # the training set plus every correction of the collection
        rows = rows + corrections
    if reporter is not None:
        reporter.update(phase=f"preparing {len(rows)} rows", force=True)
    examples, report = build_examples(
        rows,
        build_messages=build_messages_fn(settings, params.context_tokens),
        search=_search_fn(settings, data.get("index")),
        rag_share=params.rag_share,
        source_prob=params.source_prob,
        distractors=(params.distractors_min, params.distractors_max),
        correction_repeats=params.correction_repeats,
        seed=params.seed,
    )
    return examples, {**asdict(report), "files": data["files"]}
