"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused by weighted reciprocal rank
fusion into ``Hit``s that carry both scores, both ranks and the fused rank.

Implements the ``Retriever`` port; dense-only and BM25-only searches are exposed beside it for
evaluation. Building the parts from a stored index is ``index.store``'s job.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from domain.types import Chunk, Hit

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.bm25 import BM25Index
    from index.vector_store import VectorStore

METHODS = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class FusionSettings:
    """Reciprocal rank fusion: score = Σ weight / (rrf_k + rank) over the lists a chunk is in;
    each list contributes its best ``candidates`` chunks. BM25's weight for a chunk is further
    multiplied by (share of the query's distinct terms in the chunk) ** ``coverage_power``, so a
    stray word match (typical when an English question meets Chinese documents) counts little;
    0 turns that off."""

    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    coverage_power: float = 2.0
    candidates: int = 50


class HybridRetriever:
    """Searches one loaded index. Thread-safe: searches only read shared state."""

    def __init__(
        self,
        *,
        chunks: Sequence[Chunk],
        vectors: VectorStore,
        bm25: BM25Index,
        embedder: Embedder,
        fusion: FusionSettings | None = None,
    ) -> None:
        self.chunks = list(chunks)
        self.vectors = vectors
        self.bm25 = bm25
        self.embedder = embedder
        self.fusion = fusion or FusionSettings()
        self._embed_lock = threading.Lock()

    def search(self, query: str, *, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks by fused rank (the ``Retriever`` port)."""
        return self.search_with(query, self.embed_query(query), k=k, method="hybrid")

    def embed_query(self, query: str) -> np.ndarray:
        with self._embed_lock:
            return np.asarray(self.embedder.embed_queries([query])[0], dtype=np.float32)

    def search_many(self, queries: Sequence[str], *, k: int, method: str) -> list[list[Hit]]:
        """Search several queries, embedding them in one batch (used by evaluation)."""
        if method == "bm25":
            return [self.search_with(q, None, k=k, method=method) for q in queries]
        with self._embed_lock:
            qvecs = np.asarray(self.embedder.embed_queries(list(queries)), dtype=np.float32)
        return [self.search_with(q, v, k=k, method=method) for q, v in zip(queries, qvecs, strict=True)]

    def search_with(self, query: str, qvec: np.ndarray | None, *, k: int, method: str) -> list[Hit]:
        """Search with an already embedded query; ``method`` is 'dense', 'bm25' or 'hybrid'."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        n = len(self.chunks)
        if n == 0 or k <= 0:
            return []
        depth = max(k, self.fusion.candidates) if method == "hybrid" else k
        dense_rows: np.ndarray = np.zeros(0, dtype=np.int64)
        dense_scores: np.ndarray = np.zeros(0, dtype=np.float32)
        if method != "bm25":
            if qvec is None:
                raise ValueError(f"method {method!r} needs the query's vector")
            s, r = self.vectors.search(qvec.reshape(1, -1), depth)
            keep = r[0] >= 0
            dense_rows, dense_scores = r[0][keep].astype(np.int64), s[0][keep]
        bm25_all, coverage = self.bm25.match(query)
        dense_rank = {int(r): i for i, r in enumerate(dense_rows, start=1)}
        dense_of = {int(r): float(v) for r, v in zip(dense_rows, dense_scores, strict=True)}
        if method == "dense":
            return [
                self._hit(row, dense_of[row], rank, qvec, bm25_all, dense_of, dense_rank, {})
                for row, rank in dense_rank.items()
            ]
        from index.bm25 import top_k

        bm25_rows, bm25_scores = top_k(bm25_all, depth)
        bm25_rank = {int(r): i for i, r in enumerate(bm25_rows, start=1)}
        if method == "bm25":
            return [
                self._hit(int(row), float(score), rank, qvec, bm25_all, dense_of, {}, bm25_rank)
                for rank, (row, score) in enumerate(zip(bm25_rows, bm25_scores, strict=True), start=1)
            ]
        f = self.fusion
        fused: dict[int, float] = {}
        for row, rank in dense_rank.items():
            fused[row] = fused.get(row, 0.0) + f.dense_weight / (f.rrf_k + rank)
        for row, rank in bm25_rank.items():
            weight = f.bm25_weight * float(coverage[row]) ** f.coverage_power
            fused[row] = fused.get(row, 0.0) + weight / (f.rrf_k + rank)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [
            self._hit(row, score, rank, qvec, bm25_all, dense_of, dense_rank, bm25_rank)
            for rank, (row, score) in enumerate(best, start=1)
        ]

    def _hit(
        self,
        row: int,
        score: float,
        rank: int,
        qvec: np.ndarray | None,
        bm25_all: np.ndarray,
        dense_of: dict[int, float],
        dense_rank: dict[int, int],
        bm25_rank: dict[int, int],
    ) -> Hit:
        dense = dense_of.get(row)
        if dense is None and qvec is not None:
            dense = float(self.vectors.score_rows(qvec, np.array([row]))[0])
        return Hit(
            chunk=self.chunks[row],
            score=score,
            rank=rank,
            dense_score=dense,
            bm25_score=float(bm25_all[row]),
            dense_rank=dense_rank.get(row),
            bm25_rank=bm25_rank.get(row),
        )
