"""Where the pages get their backends: one provider per concern (answering, indexing, training,
export), each built once per process with ``st.cache_resource`` and cheap to build — models load on
the first call that needs them, never while a page renders.

The Protocols below are the pages' whole view of the backends. Real ones live in
``app.page_backends`` and call the same wiring and domain functions as the CLI; tests install fakes
with ``override(...)`` (``tests/fakes_app.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import streamlit as st

from app.page_common import settings
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.types import Answer, Chunk, Hit, Mode, RouteDecision

AUTO = "auto"


class AnswerStream(Protocol):
    """One answer in the making: the route and passages are known before the first piece;
    ``answer()`` is complete once ``pieces`` is exhausted."""

    @property
    def decision(self) -> RouteDecision: ...

    @property
    def passages(self) -> Sequence[Hit]: ...

    @property
    def pieces(self) -> Iterator[str]: ...

    def answer(self) -> Answer: ...

    def close(self) -> None:
        """Abandon the answer (the generator is told to stop)."""
        ...


class CompareStart(Protocol):
    """One question's shared retrieval and the router's pick; ``start(mode)`` begins streaming that
    mode's answer over the same passages (raises a ``HybridError`` when the mode cannot run)."""

    @property
    def question(self) -> str: ...

    @property
    def decision(self) -> RouteDecision: ...

    @property
    def passages(self) -> Sequence[Hit]: ...

    def start(self, mode: Mode) -> AnswerStream: ...


class AskBackend(Protocol):
    def status(self) -> dict[str, Any]:
        """Cheap facts for the page header: index name, adapter label, backend (no model load)."""
        ...

    def stream(self, question: str, mode: str) -> AnswerStream: ...

    def compare(self, question: str) -> CompareStart:
        """Retrieve once and route; the page then streams each of the four modes in turn."""
        ...

    def save_correction(self, answer: Answer, corrected: str) -> int:
        """Store a correction; returns its id."""
        ...


class IndexBackend(Protocol):
    def index_names(self) -> list[str]: ...

    def summary(self, name: str) -> dict[str, Any] | None:
        """Manifest facts (root, n_chunks, updated_at, embedder…) or None when never built."""
        ...

    def documents(self, name: str) -> list[dict[str, Any]]:
        """Rows: path, title, kind, chunks, lang, status ("indexed" | "skipped"), reason."""
        ...

    def chunks(self, name: str, path: str) -> list[Chunk]: ...

    def sync(
        self, folder: str | Path, *, name: str, rebuild: bool = False, on_progress: ProgressFn = no_progress
    ) -> dict[str, Any]: ...

    def search(self, name: str, query: str, k: int) -> list[Hit]: ...

    def delete(self, name: str) -> None: ...

    def upload_dir(self, name: str) -> Path: ...


class TrainingBackend(Protocol):
    def dataset(self) -> dict[str, Any]:
        """{"base_rows", "corrections", "by_lang": {LANG: {"base", "corrections"}}, "sources": [...]}"""
        ...

    def default_params(self) -> dict[str, Any]: ...

    def start(self, params: dict[str, Any], *, from_corrections: bool) -> str:
        """Launch a background training job; returns its id."""
        ...

    def status(self, job_id: str) -> dict[str, Any]: ...

    def cancel(self, job_id: str) -> bool: ...

    def resume(self, job_id: str) -> str:
        """Relaunch a cancelled or failed job from its last checkpoint; returns its id."""
        ...

    def jobs(self) -> list[dict[str, Any]]: ...

    def in_use(self) -> str | None:
        """The label of the adapter answers use: a version, "default" (bundled) or None."""
        ...

    def versions(self) -> list[dict[str, Any]]: ...

    def activate(self, version: str) -> dict[str, Any]: ...

    def rollback(self) -> dict[str, Any]: ...


class ExportBackend(Protocol):
    def quants(self) -> Sequence[str]: ...

    def source_label(self) -> str:
        """What an export would merge: an adapter version, "default" (bundled) or "base" (none)."""
        ...

    def start(self, quant: str) -> str:
        """Launch a background export job; returns its id."""
        ...

    def status(self, job_id: str) -> dict[str, Any]: ...

    def cancel(self, job_id: str) -> bool: ...

    def jobs(self) -> list[dict[str, Any]]: ...

    def reports(self) -> list[dict[str, Any]]:
        """Finished exports (``export-<quant>.json`` contents), newest first."""
        ...


_OVERRIDES: dict[str, Any] = {}


def override(**backends: Any) -> None:
    """Replace backends by name (assistant, indexer, trainer, exporter) — for tests."""
    unknown = set(backends) - {"assistant", "indexer", "trainer", "exporter"}
    if unknown:
        raise KeyError(f"unknown backend(s) {sorted(unknown)}")
    _OVERRIDES.update(backends)


def clear_overrides() -> None:
    _OVERRIDES.clear()


def _pick(name: str, build: Callable[[], Any]) -> Any:
    return _OVERRIDES[name] if name in _OVERRIDES else build()


@st.cache_resource(show_spinner=False)
def _real_assistant() -> AskBackend:
    from app.page_backends.ask import RealAskBackend

    return RealAskBackend(settings())


@st.cache_resource(show_spinner=False)
def _real_indexer() -> IndexBackend:
    from app.page_backends.indexing import RealIndexBackend

    return RealIndexBackend(settings())


@st.cache_resource(show_spinner=False)
def _real_trainer() -> TrainingBackend:
    from app.page_backends.training import RealTrainingBackend

    return RealTrainingBackend(settings())


@st.cache_resource(show_spinner=False)
def _real_exporter() -> ExportBackend:
    from app.page_backends.export import RealExportBackend

    return RealExportBackend(settings())


def get_assistant() -> AskBackend:
    return _pick("assistant", _real_assistant)


def get_indexer() -> IndexBackend:
    return _pick("indexer", _real_indexer)


def get_trainer_jobs() -> TrainingBackend:
    return _pick("trainer", _real_trainer)


def get_exporter() -> ExportBackend:
    return _pick("exporter", _real_exporter)
