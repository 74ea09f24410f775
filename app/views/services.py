"""Where the pages get their backends: one provider per concern (answering, indexing, training,
export), each built once per process with ``st.cache_resource`` and cheap to build — models load on
the first call that needs them, never while a page renders.

The Protocols below are the pages' whole view of the backends. Real ones live in
``app.views.backends`` and call the same wiring and domain functions as the CLI; tests install fakes
with ``override(...)`` (``tests/fakes_app.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import streamlit as st

from app.views.common import selected_collection, settings
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

    def vectors(self, name: str) -> str:
        """The index's vectors, "int8" or "float"; else what a build would make."""
        ...

    def sync(
        self,
        folder: str | Path,
        *,
        name: str,
        rebuild: bool = False,
        vectors: str | None = None,
        on_progress: ProgressFn = no_progress,
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


class DatasetBackend(Protocol):
    """The selected collection's evaluation and training sets (``app.wiring.dataset_rows``)."""

    def summary(self) -> dict[str, Any]:
        """Counts by kind, language and split, where the sets are, and the last build's state."""
        ...

    def start(self, n_eval: int, n_train: int, *, replace: bool) -> str:
        """Launch a background build; returns its job id."""
        ...

    def status(self, job_id: str) -> dict[str, Any]: ...

    def cancel(self, job_id: str) -> bool: ...

    def resume(self, job_id: str) -> str: ...

    def last_job(self) -> str | None:
        """The collection's newest build job, or None."""
        ...

    def rows(self, kind: str) -> list[dict[str, Any]]: ...

    def passage(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The indexed passage holding ``row``'s key facts (path, heading, page, text, facts)."""
        ...

    def save(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        """Store reviewed rows as the whole set (the old file is backed up); returns the path."""
        ...

    def import_file(self, kind: str, path: Path, *, replace: bool) -> dict[str, Any]: ...


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
BACKENDS = ("assistant", "indexer", "trainer", "exporter", "datasets")


def override(**backends: Any) -> None:
    """Replace backends by name (see ``BACKENDS``) — for tests. A value is a
    backend, or a function of the collection name that returns one (``per_collection``)."""
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise KeyError(f"unknown backend(s) {sorted(unknown)}")
    _OVERRIDES.update(backends)


def per_collection(factory: Callable[[str], Any]) -> Any:
    """Mark ``factory`` (collection name -> backend) as an override built per collection."""
    factory.per_collection = True  # type: ignore[attr-defined]
    return factory


def clear_overrides() -> None:
    _OVERRIDES.clear()


def _pick(name: str, build: Callable[[str], Any], collection: str | None = None) -> Any:
    collection = collection or selected_collection()
    if name not in _OVERRIDES:
        return build(collection)
    found = _OVERRIDES[name]
    return found(collection) if getattr(found, "per_collection", False) else found


@st.cache_resource(show_spinner=False)
def _real_assistant(collection: str) -> AskBackend:
    from app.views.backends.ask import RealAskBackend

    return RealAskBackend(_for(collection))


@st.cache_resource(show_spinner=False)
def _real_indexer(collection: str) -> IndexBackend:
    from app.views.backends.indexing import RealIndexBackend

    return RealIndexBackend(_for(collection))


@st.cache_resource(show_spinner=False)
def _real_trainer(collection: str) -> TrainingBackend:
    from app.views.backends.training import RealTrainingBackend

    return RealTrainingBackend(_for(collection))


@st.cache_resource(show_spinner=False)
def _real_exporter(collection: str) -> ExportBackend:
    from app.views.backends.export import RealExportBackend

    return RealExportBackend(_for(collection))


@st.cache_resource(show_spinner=False)
def _real_datasets(collection: str) -> DatasetBackend:
    from app.views.backends.datasets import RealDatasetBackend

    return RealDatasetBackend(_for(collection))


def _for(collection: str) -> Any:
    from app.wiring.collections import with_collection

    return with_collection(settings(), collection)


def get_assistant() -> AskBackend:
    """The answering backend of the selected collection (one per collection and process)."""
    return _pick("assistant", _real_assistant)


def get_indexer(collection: str | None = None) -> IndexBackend:
    """The indexing backend of ``collection`` (default: the selected one)."""
    return _pick("indexer", _real_indexer, collection)


def get_trainer_jobs() -> TrainingBackend:
    return _pick("trainer", _real_trainer)


def get_exporter() -> ExportBackend:
    return _pick("exporter", _real_exporter)


def get_datasets() -> DatasetBackend:
    return _pick("datasets", _real_datasets)
