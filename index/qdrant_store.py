"""Qdrant as the vector side of an index: where a generation's points live, the clients that reach
them (one per in-process store, one per server), and the opened store that searches run on. Writing
the points is ``index.qdrant_writer``'s; the hybrid query is ``index.qdrant_retriever``'s.

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
Every Qdrant or connection failure surfaces as one ``IndexStoreError`` line with the next step.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from domain.errors import IndexStoreError
from domain.plain import one_line

logger = logging.getLogger(__name__)

LOCAL_FOLDER = "qdrant"
LOCAL_COLLECTION = "chunks"
DENSE, BM25, TERMS = "dense", "bm25", "terms"
LATIN_OFFSET = 1 << 31
T = TypeVar("T")


@dataclass(frozen=True)
class QdrantServer:
    """A Qdrant server for collections moved there (``url`` None: in-process storage)."""

    url: str | None = None
    api_key: str | None = None
    timeout_s: float = 30.0


def qdrant_module() -> Any:
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
            client = qdrant_module().QdrantClient(path=key)
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
    qdrant = qdrant_module()
    key = server.api_key or None
    return calling(
        server.url,
        lambda: qdrant.QdrantClient(
            url=server.url, api_key=key, timeout=max(1, int(server.timeout_s)), check_compatibility=False
        ),
    )


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
