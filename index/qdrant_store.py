"""Qdrant as the vector side of an index: writing one generation's points, and opening them for
search (the queries themselves are ``index.qdrant_retriever``'s).

Each chunk is one point whose id is its row, with three named vectors: ``dense`` (its embedding,
dot product: cosine for our normalised vectors, as FAISS's inner product), ``bm25`` (sparse: its
BM25 weight per vocabulary term from ``index.bm25``, so a query's term counts dotted with it give
the very BM25 score the FAISS side reports) and ``terms`` (sparse: 1 per distinct term, ids of
chunks not written in Chinese shifted by ``LATIN_OFFSET``, so one query vector measures the share
of a question's terms each chunk holds, Latin terms only where ``index.bm25`` counts only those).
Payload: ``row``, ``path``, ``lang``.

Where the points live is the generation manifest's ``qdrant`` entry: in-process inside the
generation folder (``QdrantClient(path=<generation>/qdrant)``, one process at a time) or on a
server (``url=``) in a collection named per build, so a half-written one is never the live one.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from domain.errors import IndexStoreError
from domain.plain import one_line
from index.vector_store import AnnReport

if TYPE_CHECKING:
    from domain.types import Chunk
    from index.bm25 import BM25Index

logger = logging.getLogger(__name__)

LOCAL_FOLDER = "qdrant"
LOCAL_COLLECTION = "chunks"
DENSE, BM25, TERMS = "dense", "bm25", "terms"
LATIN_OFFSET = 1 << 31
UPSERT_BATCH = 256
T = TypeVar("T")


@dataclass(frozen=True)
class QdrantServer:
    """A Qdrant server for collections moved there (``url`` None: in-process storage)."""

    url: str | None = None
    api_key: str | None = None
    timeout_s: float = 30.0


def _qdrant() -> Any:
    try:
        import qdrant_client
    except ImportError as e:
        raise IndexStoreError(
            "qdrant-client is not installed — run `make install` (or `pip install qdrant-client==1.20.0`)"
        ) from e
    return qdrant_client


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return one_line(f"{type(e).__name__}: {text[0] if text else ''}")[:200]


def calling(where: str, call: Callable[[], T]) -> T:
    """``call()`` with any Qdrant or connection failure turned into one IndexStoreError line."""
    try:
        return call()
    except IndexStoreError:
        raise
    except Exception as e:
        if where.startswith("http"):
            hint = "start the server (README: 'When one machine is not enough') or fix HYBRID_QDRANT__URL"
        else:
            hint = "move the collection again with `hybrid index --to-qdrant`"
        raise IndexStoreError(f"Qdrant at {one_line(where)} failed ({_short(e)}) — {hint}") from e


_LOCAL_LOCK = threading.Lock()
_LOCAL: dict[str, Any] = {}


def local_client(folder: Path) -> Any:
    """The one in-process client of the Qdrant storage in ``folder`` (opened once per process:
    Qdrant's local mode locks its folder).

    Raises:
        IndexStoreError: no storage there, qdrant-client missing, or another process holds it.
    """
    key = str(Path(folder).resolve())
    with _LOCAL_LOCK:
        if key in _LOCAL:
            return _LOCAL[key]
        if not Path(key).is_dir():
            raise IndexStoreError(
                f"{key} holds no Qdrant storage — move the collection again with `hybrid index --to-qdrant`"
            )
        try:
            client = _qdrant().QdrantClient(path=key)
        except RuntimeError as e:
            raise IndexStoreError(
                f"the in-process Qdrant store {key} is open in another process — close that one (app, "
                "serve, another command) or move the collection to a Qdrant server (HYBRID_QDRANT__URL)"
            ) from e
        _LOCAL[key] = client
        return client


def close_local(folder: Path | None = None) -> None:
    """Close the in-process client of ``folder`` (every one when None), releasing its lock."""
    with _LOCAL_LOCK:
        keys = list(_LOCAL) if folder is None else [str(Path(folder).resolve())]
        for key in keys:
            client = _LOCAL.pop(key, None)
            if client is not None:
                client.close()


atexit.register(close_local)


def server_client(server: QdrantServer) -> Any:
    """A client of ``server`` (nothing is contacted yet).

    Raises:
        IndexStoreError: no URL, a malformed one, or qdrant-client missing.
    """
    if not server.url:
        raise IndexStoreError("no Qdrant server is set — set HYBRID_QDRANT__URL (e.g. http://127.0.0.1:6333)")
    qdrant = _qdrant()
    key = server.api_key or None
    return calling(
        server.url,
        lambda: qdrant.QdrantClient(
            url=server.url, api_key=key, timeout=max(1, int(server.timeout_s)), check_compatibility=False
        ),
    )


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
        q = _qdrant()
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


def drop_collection(entry: dict[str, Any], server: QdrantServer) -> None:
    """Delete the server collection an old manifest ``entry`` names; a failure is logged only
    (the generation that used it is gone, the collection is just space)."""
    if entry.get("location") != "url":
        return
    url = server.url or entry.get("url")
    try:
        client = server_client(QdrantServer(url, server.api_key, server.timeout_s))
        client.delete_collection(str(entry["collection"]))
        logger.info("deleted Qdrant collection %s at %s", entry["collection"], url)
    except Exception as e:
        logger.warning("could not delete Qdrant collection %s at %s (%s)", entry.get("collection"), url, e)


class QdrantStore:
    """One generation's points opened for search. Safe to share between threads (queries to the
    in-process store are serialised)."""

    def __init__(self, client: Any, entry: dict[str, Any], where: str, *, local: bool) -> None:
        self._client = client
        self.entry = entry
        self.collection = str(entry["collection"])
        self.where = where
        self.local = local
        self.centroids = {k: np.asarray(v, dtype=np.float32) for k, v in entry.get("centroids", {}).items()}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, gen: Path, entry: dict[str, Any], server: QdrantServer | None) -> QdrantStore:
        """Open the points of generation folder ``gen`` as its manifest ``entry`` places them; a
        server collection is reached at ``server.url`` when set, else at the URL it was written to.

        Raises:
            IndexStoreError: qdrant-client missing, the store locked by another process, the server
                unreachable, or the collection missing.
        """
        if entry.get("location") == "url":
            url = (server.url if server else None) or entry.get("url")
            base = server or QdrantServer()
            client = server_client(QdrantServer(url, base.api_key, base.timeout_s))
            store = cls(client, entry, str(url), local=False)
        else:
            folder = gen / LOCAL_FOLDER
            store = cls(local_client(folder), entry, str(folder), local=True)
        exists = store.call(lambda c: c.collection_exists(store.collection))
        if not exists:
            raise IndexStoreError(
                f"Qdrant at {store.where} has no collection '{store.collection}' — move the collection "
                "again with `hybrid index --to-qdrant`"
            )
        return store

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)``, failures as one IndexStoreError line."""
        if self.local:
            with self._lock:
                return calling(self.where, lambda: fn(self._client))
        return calling(self.where, lambda: fn(self._client))

    @property
    def size(self) -> int:
        return int(self.call(lambda c: c.count(self.collection, exact=True).count))

    def query(self, requests: Sequence[Any]) -> list[list[Any]]:
        """Points of each ``QueryRequest``, in one batch."""
        if not requests:
            return []
        out = self.call(lambda c: c.query_batch_points(self.collection, list(requests)))
        return [list(r.points) for r in out]

    def vectors(self, rows: Sequence[int], names: Sequence[str]) -> dict[int, dict[str, Any]]:
        """The named vectors of points ``rows``."""
        if not rows:
            return {}
        points = self.call(
            lambda c: c.retrieve(self.collection, list(rows), with_payload=False, with_vectors=list(names))
        )
        return {int(p.id): dict(p.vector or {}) for p in points}
