"""Moving an index's vectors between FAISS and Qdrant without embedding anything again, and choosing
the vector side of a new generation (a collection moved to Qdrant stays there when it is synced).

A move reads the live generation's chunks, BM25 tokens and weights and stored vectors, and commits
them as a new generation whose vector side is the other store (``index.store``'s atomic commit):
until ``CURRENT`` switches, the old generation, FAISS files and all, is the live one, and a failed
move leaves it as it was (a half-written server collection is deleted).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from domain.errors import ConfigError, IndexStoreError
from domain.progress import ProgressFn, no_progress
from index import store

if TYPE_CHECKING:
    from domain.types import Chunk
    from index.bm25 import BM25Index
    from index.qdrant_store import QdrantServer
    from index.qdrant_writer import QdrantWriter
    from index.vector_store import VectorStore

logger = logging.getLogger(__name__)

Target = Literal["faiss", "qdrant"]


@dataclass(frozen=True)
class MoveReport:
    """What a move did: the store before and after, where Qdrant keeps the points, the counts."""

    name: str
    generation: str
    moved_from: str
    moved_to: str
    location: str  # "path" (in-process), "url" (server) or "" for FAISS
    collection: str
    chunks: int
    vectors: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_kind(manifest: dict[str, Any] | None) -> str:
    """'qdrant' when a manifest's generation is searched in Qdrant, else 'faiss'."""
    return "qdrant" if isinstance((manifest or {}).get("qdrant"), dict) else "faiss"


def vector_side(
    entry: dict[str, Any] | None,
    *,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    bm25: BM25Index,
    label: str,
    ann_threshold: int,
    qdrant: QdrantServer | None,
) -> VectorStore | QdrantWriter:
    """The vector side of a new generation: Qdrant where the previous generation's manifest
    ``entry`` placed it (in-process, or on ``qdrant``'s server — else the URL it was written to),
    FAISS when there is no entry."""
    if entry is None:
        from index.vector_store import VectorStore

        return VectorStore.build(vectors, ann_threshold=ann_threshold)
    from index.qdrant_store import QdrantServer
    from index.qdrant_writer import QdrantWriter

    server = None
    if entry.get("location") == "url":
        base = qdrant or QdrantServer()
        server = QdrantServer(base.url or entry.get("url"), base.api_key, base.timeout_s)
    return QdrantWriter(chunks=chunks, vectors=vectors, bm25=bm25, server=server, label=label)


def commit_with(
    index_dir: Path, data: store.GenerationData, old_entry: dict[str, Any] | None, qdrant: QdrantServer | None
) -> str:
    """Commit ``data`` (``index.store.commit_generation``); a Qdrant server collection written
    for it is deleted when the commit fails, and the replaced generation's one after it succeeds."""
    from index.qdrant_store import QdrantServer, drop_collection
    from index.qdrant_writer import QdrantWriter

    side = data.store
    try:
        name = store.commit_generation(index_dir, data)
    except BaseException:
        if isinstance(side, QdrantWriter):
            side.discard()
        raise
    new_entry = side.entry if isinstance(side, QdrantWriter) else None
    if old_entry and old_entry.get("location") == "url" and old_entry != new_entry:
        drop_collection(old_entry, qdrant or QdrantServer())
    return name


def move_vectors(
    index_dir: Path,
    *,
    to: Target,
    qdrant: QdrantServer | None = None,
    ann_threshold: int = 50_000,
    on_progress: ProgressFn = no_progress,
) -> MoveReport:
    """Move the live generation's vectors to ``to``: Qdrant in-process (``qdrant`` None or without
    a URL) or on ``qdrant.url``, or back to FAISS. Moving to Qdrant again rewrites its points (a
    repair after a lost server collection).

    Raises:
        ConfigError: an unknown target.
        IndexStoreError: no index, unreadable files, another run writing it, qdrant-client missing,
            the server unreachable or refusing the points.
    """
    from index.bm25 import BM25Index
    from index.qdrant_store import QdrantServer, calling, server_client
    from index.qdrant_writer import QdrantWriter

    if to not in ("faiss", "qdrant"):
        raise ConfigError(f"cannot move vectors to {to!r} — use faiss or qdrant")
    server = qdrant if to == "qdrant" and qdrant is not None and qdrant.url else None
    if server is not None:  # an unreachable server fails before anything is read
        client = server_client(server)
        calling(str(server.url), client.get_collections)
    t0 = time.perf_counter()
    label = store.index_label(index_dir)
    with store.locked(index_dir):
        store.remove_stale(index_dir)
        gen = store.current_generation(index_dir)
        if gen is None:
            raise IndexStoreError(
                f"collection '{label}' has no index to move — build it with `hybrid index PATH --collection {label}`"
            )
        manifest = store.read_manifest(index_dir) or {}
        before = store_kind(manifest)
        on_progress(0, 3, f"reading {gen.name}")
        try:
            chunks = store.read_chunks(gen)
            tokens = store.read_tokens(gen)
            vectors = store.read_vectors(gen)
            bm25 = BM25Index.load(gen / "bm25", len(chunks))
        except (OSError, ValueError, KeyError, TypeError) as e:
            hint = store.rebuild_hint(label, manifest.get("root"))
            raise IndexStoreError(
                f"index files in {gen} are unreadable ({type(e).__name__}: {e}) — {hint}"
            ) from e
        if len(vectors) != len(chunks):
            hint = store.rebuild_hint(label, manifest.get("root"))
            raise IndexStoreError(f"{gen} holds {len(vectors)} vectors for {len(chunks)} chunks — {hint}")
        on_progress(1, 3, f"writing {len(chunks)} vectors to {to}")
        side: VectorStore | QdrantWriter
        if to == "qdrant":
            side = QdrantWriter(chunks=chunks, vectors=vectors, bm25=bm25, server=server, label=label)
        else:
            side = vector_side(
                None,
                chunks=chunks,
                vectors=vectors,
                bm25=bm25,
                label=label,
                ann_threshold=ann_threshold,
                qdrant=None,
            )
        new_manifest = {k: v for k, v in manifest.items() if k not in ("qdrant", "generation", "format")}
        new_manifest["ann"] = side.report.to_dict()
        if isinstance(side, QdrantWriter):
            new_manifest["qdrant"] = side.entry
        old_entry = manifest.get("qdrant") if isinstance(manifest.get("qdrant"), dict) else None
        name = commit_with(
            index_dir,
            store.GenerationData(new_manifest, chunks, tokens, vectors, side, bm25),
            old_entry,
            qdrant or QdrantServer(),
        )
        on_progress(3, 3, "moved")
    entry = new_manifest.get("qdrant") or {}
    logger.info("moved index %s from %s to %s (%s, %d vectors)", label, before, to, name, len(vectors))
    return MoveReport(
        name=label,
        generation=name,
        moved_from=before,
        moved_to=to,
        location=str(entry.get("location", "")),
        collection=str(entry.get("collection", "")),
        chunks=len(chunks),
        vectors=int(len(vectors)),
        seconds=round(time.perf_counter() - t0, 3),
    )
