"""Wires the RAG half: a collection's index folder, splitter and sync options from settings,
syncing a document folder into a collection's index, and opening an index as a shared ``HybridRetriever`` (cached per generation,
so a re-index is picked up on the next call). Heavy modules load inside the functions.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.hybrid import HybridRetriever
    from index.splitter import SplitterSettings
    from index.store import LoadedIndex
    from index.sync import SyncReport

_OPEN_LOCK = threading.Lock()


def index_name(settings: Settings, name: str | None = None) -> str:
    """The collection whose index a command means: ``name`` or the one settings select."""
    return name or settings.collection


def index_dir(settings: Settings, name: str | None = None) -> Path:
    """The index folder of collection ``name`` (checked).

    Raises:
        ConfigError: a bad collection name.
    """
    from app.wiring.collections import get_collection

    return get_collection(settings, index_name(settings, name)).paths.index


def splitter_settings(settings: Settings) -> SplitterSettings:
    from index.splitter import SplitterSettings

    return SplitterSettings(chunk_tokens=settings.index.chunk_tokens, overlap=settings.index.chunk_overlap)


def sync_index(
    settings: Settings,
    folder: str | Path,
    *,
    name: str | None = None,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    on_progress: ProgressFn = no_progress,
) -> SyncReport:
    """Index (or incrementally re-index) ``folder`` into collection ``name``'s index; the
    collection is made, or its document folder updated, first.

    Raises:
        ConfigError: the folder does not exist.
        IndexMismatchError: the index was built with other settings (use ``rebuild``).
        IndexStoreError: another run is writing the index.
    """
    from app.wiring.collections import create_collection
    from app.wiring.embedder import build_embedder
    from index.sync import SyncOptions, sync_folder

    create_collection(settings, index_name(settings, name), folder)
    emb = embedder or build_embedder(settings)
    options = SyncOptions(
        max_file_mb=settings.index.max_file_mb,
        ann_threshold=settings.index.ann_threshold,
        batch_size=settings.index.batch_size,
        rebuild=rebuild,
    )
    return sync_folder(
        folder,
        index_dir(settings, name),
        embedder=emb,
        splitter=splitter_settings(settings),
        options=options,
        on_progress=on_progress,
    )


def open_index(
    settings: Settings, name: str | None = None, *, embedder: Embedder | None = None
) -> LoadedIndex:
    """The named index, checked against the current embedder and splitter settings.

    Raises:
        IndexStoreError: no such index (the message says how to build it).
        IndexMismatchError: built with another embedder or splitter settings.
    """
    from app.wiring.embedder import build_embedder
    from index.store import current_generation

    emb = embedder or build_embedder(settings)
    folder = index_dir(settings, name)
    gen = current_generation(folder)
    split = splitter_settings(settings).identity()
    key = (str(folder), gen.name if gen else "", emb.name, emb.dim, tuple(sorted(split.items())))
    with _OPEN_LOCK:
        return _open_cached(*key)


@functools.lru_cache(maxsize=4)
def _open_cached(
    folder: str, generation: str, emb_name: str, dim: int, split: tuple[tuple[str, int], ...]
) -> LoadedIndex:
    from index.bm25 import TOKENIZER_VERSION
    from index.store import open_index as open_stored

    del generation  # part of the cache key only: a new generation opens afresh
    return open_stored(
        Path(folder), embedder_name=emb_name, dim=dim, splitter=dict(split), tokenizer=TOKENIZER_VERSION
    )


def build_retriever(
    settings: Settings,
    name: str | None = None,
    *,
    embedder: Embedder | None = None,
    per_doc: int | None = None,
) -> HybridRetriever:
    """A ``Retriever`` (hybrid dense + BM25) over the named index; ``per_doc`` passages of one
    document may enter the top k (default: one, so search results are distinct documents)."""
    from app.wiring.embedder import build_embedder
    from index.hybrid import FusionSettings

    emb = embedder or build_embedder(settings)
    fusion = FusionSettings() if per_doc is None else FusionSettings(max_per_doc=per_doc)
    return open_index(settings, name, embedder=emb).retriever(emb, fusion)


def clear_index_cache() -> None:
    """Forget opened indexes (tests; after deleting an index folder)."""
    with _OPEN_LOCK:
        _open_cached.cache_clear()
