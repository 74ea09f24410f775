"""Wires the RAG half: a collection's index folder, splitter, sync and Qdrant options from
settings, syncing a document folder into a collection's index, moving its vectors between FAISS and
Qdrant, opening an index as a shared retriever (``HybridRetriever`` or, for a collection in Qdrant,
``QdrantRetriever``; cached per generation, so a re-index is picked up on the next call), reading
its manifest and chunk table without the embedder, deleting it, and extracting a document's text
as indexing does. Heavy modules load inside the functions.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import ConfigError, IndexStoreError
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.ports import Embedder
    from domain.types import Chunk
    from index.hybrid import HybridRetriever
    from index.move import MoveReport, Target
    from index.qdrant_retriever import QdrantRetriever
    from index.qdrant_store import QdrantServer
    from index.splitter import SplitterSettings
    from index.store import LoadedIndex
    from index.sync import SyncOptions, SyncReport

logger = logging.getLogger(__name__)

_OPEN_LOCK = threading.Lock()
_CHUNKS_LOCK = threading.Lock()
_CHUNK_TABLES: dict[str, list[Chunk]] = {}  # live generation -> its chunk table, a few at a time


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
    """How documents are cut into chunks, from ``settings.index``."""
    from index.splitter import SplitterSettings

    return SplitterSettings(chunk_tokens=settings.index.chunk_tokens, overlap=settings.index.chunk_overlap)


def sync_options(settings: Settings, *, rebuild: bool = False) -> SyncOptions:
    """How a folder is synced into an index, from ``settings.index``; ``rebuild`` starts afresh."""
    from index.sync import SyncOptions

    return SyncOptions(
        max_file_mb=settings.index.max_file_mb,
        ann_threshold=settings.index.ann_threshold,
        batch_size=settings.index.batch_size,
        rebuild=rebuild,
        qdrant=qdrant_server(settings),
    )


def qdrant_server(settings: Settings) -> QdrantServer:
    """The Qdrant server of ``settings.qdrant`` (no URL: in-process Qdrant)."""
    from index.qdrant_store import QdrantServer

    q = settings.qdrant
    key = q.api_key.get_secret_value() if q.api_key else None
    return QdrantServer(url=q.url or None, api_key=key, timeout_s=q.timeout_s)


def move_index(
    settings: Settings, name: str | None = None, *, to: Target, on_progress: ProgressFn = no_progress
) -> MoveReport:
    """Move collection ``name``'s vectors to ``to`` ('qdrant': the server of ``settings.qdrant``,
    in-process without a URL; 'faiss') without embedding again; the collection then answers from
    there.

    Raises:
        ConfigError: a bad collection name.
        IndexStoreError: no index, another run writing it, qdrant-client missing, the server
            unreachable.
    """
    from index.move import move_vectors

    report = move_vectors(
        index_dir(settings, name),
        to=to,
        qdrant=qdrant_server(settings),
        ann_threshold=settings.index.ann_threshold,
        on_progress=on_progress,
    )
    clear_index_cache()
    return report


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
    from index.sync import sync_folder

    create_collection(settings, index_name(settings, name), folder)
    emb = embedder or build_embedder(settings)
    return sync_folder(
        folder,
        index_dir(settings, name),
        embedder=emb,
        splitter=splitter_settings(settings),
        options=sync_options(settings, rebuild=rebuild),
        on_progress=on_progress,
    )


def index_vectors(settings: Settings, name: str | None = None) -> str | None:
    """ "int8" or "float": how collection ``name``'s index was built (None when it is not); read
    from its manifest, nothing loads."""
    manifest = index_manifest(settings, name)
    if manifest is None:
        return None
    built = ((manifest.get("embedder") or {}).get("precision")) or "fp32"
    return "int8" if built == "int8" else "float"


def query_embedder(settings: Settings, name: str | None = None) -> Embedder:
    """The embedder that asks collection ``name``'s index: the settings' embedder, at the precision
    the index was built with when that is the other kind (int8 or float), so questions are embedded
    like the vectors they are compared with; the settings' own precision when nothing is built."""
    from app.wiring.embedder import build_embedder, vectors_precision

    built = index_vectors(settings, name)
    if built is None or built == ("int8" if settings.index.embed_precision == "int8" else "float"):
        return build_embedder(settings)
    return build_embedder(settings, precision=vectors_precision(settings, built))


def open_index(
    settings: Settings, name: str | None = None, *, embedder: Embedder | None = None
) -> LoadedIndex:
    """The named index, checked against the current embedder and splitter settings.

    Raises:
        IndexStoreError: no such index (the message says how to build it).
        IndexMismatchError: built with another embedder, splitter settings or vector precision.
    """
    from index.store import current_generation

    emb = embedder or query_embedder(settings, name)
    folder = index_dir(settings, name)
    gen = current_generation(folder)
    split = splitter_settings(settings).identity()
    key = (
        str(folder),
        gen.name if gen else "",
        emb.name,
        emb.dim,
        tuple(sorted(split.items())),
        emb.precision,
    )
    with _OPEN_LOCK:
        return _open_cached(*key, qdrant_server(settings))


@functools.lru_cache(maxsize=4)
def _open_cached(
    folder: str,
    generation: str,
    emb_name: str,
    dim: int,
    split: tuple[tuple[str, int], ...],
    precision: str,
    qdrant: QdrantServer,
) -> LoadedIndex:
    from index.bm25 import TOKENIZER_VERSION
    from index.store import open_index as open_stored

    del generation  # part of the cache key only: a new generation opens afresh
    return open_stored(
        Path(folder),
        embedder_name=emb_name,
        dim=dim,
        splitter=dict(split),
        tokenizer=TOKENIZER_VERSION,
        precision=precision,
        qdrant=qdrant,
    )


def build_retriever(
    settings: Settings,
    name: str | None = None,
    *,
    embedder: Embedder | None = None,
    per_doc: int | None = None,
) -> HybridRetriever | QdrantRetriever:
    """A ``Retriever`` (hybrid dense + BM25, in FAISS or Qdrant as the index's manifest says) over
    the named index; ``per_doc`` passages of one document may enter the top k (default: one, so
    search results are distinct documents)."""
    from index.hybrid import FusionSettings

    emb = embedder or query_embedder(settings, name)
    fusion = FusionSettings() if per_doc is None else FusionSettings(max_per_doc=per_doc)
    return open_index(settings, name, embedder=emb).retriever(emb, fusion)


def index_manifest(settings: Settings, name: str | None = None) -> dict[str, Any] | None:
    """The committed manifest of collection ``name``'s index (files, skipped files, settings), or
    None when it is not built; no embedder loads."""
    from index.store import read_manifest

    return read_manifest(index_dir(settings, name))


def chunk_table(settings: Settings, name: str | None = None) -> list[Chunk]:
    """The chunk table of collection ``name``'s live index generation (empty when not built), read
    once per generation: generations are immutable, and a deleted and rebuilt index that reuses a
    generation's name is told apart by its chunk file's time."""
    from index.store import current_generation, read_chunks

    gen = current_generation(index_dir(settings, name))
    if gen is None:
        return []
    key = f"{gen}:{(gen / 'chunks.jsonl').stat().st_mtime_ns}"
    with _CHUNKS_LOCK:
        if key not in _CHUNK_TABLES:
            if len(_CHUNK_TABLES) >= 4:
                _CHUNK_TABLES.pop(next(iter(_CHUNK_TABLES)))
            _CHUNK_TABLES[key] = read_chunks(gen)
        return _CHUNK_TABLES[key]


def delete_index(settings: Settings, name: str) -> None:
    """Delete collection ``name``'s whole index (under its lock, so no sync writes meanwhile); the
    collection and its documents stay.

    Raises:
        ConfigError: the collection has no index.
        IndexStoreError: another run holds the index, or a file cannot be removed.
    """
    from index.qdrant_store import close_local, drop_collection
    from index.store import current_generation, locked, read_manifest

    folder = index_dir(settings, name)
    if not folder.is_dir():
        raise ConfigError(f"collection '{name}' has no index to delete — pick another collection")
    try:
        with locked(folder):
            try:
                gen, entry = current_generation(folder), (read_manifest(folder) or {}).get("qdrant")
            except IndexStoreError:
                gen, entry = None, None  # a broken index is deleted all the same
            if gen is not None and isinstance(entry, dict):
                close_local(gen / "qdrant")
                drop_collection(entry, qdrant_server(settings))
            for p in folder.iterdir():
                if p.name != ".lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
    except OSError as e:
        raise IndexStoreError(
            f"could not delete index '{name}' in {folder} ({e}) — close other runs and retry"
        ) from e
    shutil.rmtree(folder, ignore_errors=True)
    clear_index_cache()
    logger.info("deleted index %s", name)


def load_text(path: Path) -> str:
    """Text of any document, extracted exactly as indexing extracts it (``index.loaders``), so a
    key fact found here is a key fact the index can find."""
    from index.loaders import SUFFIX_KINDS, SourceFile, load_document

    data = path.read_bytes()
    source = SourceFile(path.name, path, len(data), SUFFIX_KINDS.get(path.suffix.lower(), "text"))
    return load_document(source, data).text


def clear_index_cache() -> None:
    """Forget opened indexes and read chunk tables (tests; after deleting an index folder)."""
    with _OPEN_LOCK:
        _open_cached.cache_clear()
    with _CHUNKS_LOCK:
        _CHUNK_TABLES.clear()
