"""Writing one index generation's points into Qdrant (``index.qdrant_store`` says what a point
holds and where it lives): the vector side of a generation being committed by ``index.store``,
in-process inside the new generation's folder or in a fresh collection on a server.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.errors import IndexStoreError
from index.qdrant_store import (
    BM25,
    DENSE,
    LATIN_OFFSET,
    LOCAL_COLLECTION,
    LOCAL_FOLDER,
    TERMS,
    QdrantServer,
    calling,
    drop_collection,
    qdrant_module,
    server_client,
)
from index.vector_store import AnnReport

if TYPE_CHECKING:
    from domain.types import Chunk
    from index.bm25 import BM25Index

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256


def centroids(chunks: Sequence[Chunk], vectors: np.ndarray) -> dict[str, list[float]]:
    """Mean vector of each chunk language's rows, when there is more than one language (the
    hybrid search takes the question language's mean off a foreign pool's query)."""
    langs = np.array([c.lang for c in chunks])
    if len(set(langs.tolist())) < 2:
        return {}
    return {
        lang: vectors[langs == lang].astype(np.float64).mean(axis=0).astype(np.float32).tolist()
        for lang in sorted(set(langs.tolist()))
    }


class QdrantWriter:
    """One generation's points, written into Qdrant when the generation is saved (``save``, called
    by ``index.store.commit_generation`` with the new generation's folder)."""

    def __init__(
        self,
        *,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        bm25: BM25Index,
        server: QdrantServer | None,
        label: str,
    ) -> None:
        self._chunks = list(chunks)
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._bm25 = bm25
        self._server = server
        self.report = AnnReport("qdrant", len(self._chunks))
        local = server is None
        collection = LOCAL_COLLECTION if local else f"hybrid_{label}_{uuid.uuid4().hex[:12]}"
        self.entry: dict[str, Any] = {
            "location": "path" if local else "url",
            "collection": collection,
            "centroids": centroids(self._chunks, self._vectors),
        }
        if not local:
            self.entry["url"] = server.url
        self._written = False

    def save(self, folder: Path) -> None:
        """Create the collection (in ``folder`` when in-process) and write every point."""
        t0 = time.perf_counter()
        q = qdrant_module()
        m = q.models
        if self._server is None:
            where = str(folder / LOCAL_FOLDER)
            client = calling(where, lambda: q.QdrantClient(path=where))
        else:
            where = str(self._server.url)
            client = server_client(self._server)
        name = self.entry["collection"]
        try:
            calling(
                where,
                lambda: client.create_collection(
                    name,
                    vectors_config={
                        DENSE: m.VectorParams(size=int(self._vectors.shape[1]), distance=m.Distance.DOT)
                    },
                    sparse_vectors_config={BM25: m.SparseVectorParams(), TERMS: m.SparseVectorParams()},
                ),
            )
            self._written = True
            if self._server is None:
                _bulk_local_writes(client, name)
            if self._server is not None:
                calling(
                    where,
                    lambda: client.create_payload_index(name, "lang", m.PayloadSchemaType.KEYWORD),
                )
            rows, terms, weights = self._bm25.chunk_weights()
            for start in range(0, len(self._chunks), UPSERT_BATCH):
                points = [
                    self._point(m, i, terms[rows[i] : rows[i + 1]], weights[rows[i] : rows[i + 1]])
                    for i in range(start, min(start + UPSERT_BATCH, len(self._chunks)))
                ]
                calling(where, lambda points=points: client.upsert(name, points, wait=True))
            stored = calling(where, lambda: client.count(name, exact=True).count)
            if stored != len(self._chunks):
                raise IndexStoreError(
                    f"Qdrant at {where} holds {stored} of {len(self._chunks)} points after writing — retry"
                )
        finally:
            if self._server is None:
                client.close()
        if self._server is None:
            for f in (folder / LOCAL_FOLDER).rglob("*.sqlite"):
                _fsync(f)
        logger.info(
            "wrote %d points into Qdrant %s (%s) in %.1f s",
            len(self._chunks),
            name,
            where,
            time.perf_counter() - t0,
        )

    def _point(self, m: Any, row: int, terms: np.ndarray, weights: np.ndarray) -> Any:
        chunk = self._chunks[row]
        ids = terms.astype(np.int64)
        shifted = ids if chunk.lang == "zh" else ids + LATIN_OFFSET
        return m.PointStruct(
            id=row,
            vector={
                DENSE: self._vectors[row].tolist(),
                BM25: m.SparseVector(indices=ids.tolist(), values=weights.tolist()),
                TERMS: m.SparseVector(indices=shifted.tolist(), values=[1.0] * len(ids)),
            },
            payload={"row": row, "path": chunk.path, "lang": chunk.lang},
        )

    def discard(self) -> None:
        """Remove what ``save`` wrote on a server (after a failed commit); best effort."""
        if self._server is not None and self._written:
            drop_collection(self.entry, self._server)


def _bulk_local_writes(client: Any, name: str) -> None:
    """Let the in-process store commit each point without waiting for the disk: Qdrant's local
    mode commits every point on its own, one disk sync each (minutes for a large collection).
    ``save`` syncs the files once at the end, before the generation is committed. Reaches into
    qdrant-client 1.20's local storage; without it, writes are just slower."""
    try:
        connection = client._client.collections[name].storage.storage
        connection.execute("PRAGMA synchronous=OFF")
    except (AttributeError, KeyError, TypeError) as e:
        logger.debug("local Qdrant writes stay synchronous (%s)", e)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
