"""Hybrid retrieval inside Qdrant: the same ranking as ``index.hybrid`` (language pools, the
cross-lingual centering of the query vector, BM25 votes weighed by the share of the question's
terms a chunk holds, at most ``max_per_doc`` passages per document), asked of Qdrant as one query.

Qdrant's reciprocal rank fusion (``RrfQuery``, constant ``rrf_k + 1``, since Qdrant counts ranks
from 0) fuses the dense lists of the pools into one score and their BM25 lists into another; a
formula query then adds them, the BM25 score multiplied by the term share (a third prefetch: the
BM25 candidates re-scored by the sparse ``terms`` vector) to the power ``coverage_power``. The
sparse vectors come from the project's own tokenizer (``index.bm25.tokenize``). Only the fused
order and the chosen passages' vectors come back; passages are read from the local chunk table.
Implements the ``Retriever`` port, with dense-only and BM25-only searches beside it for evaluation.
A search given translations of the question asks one query per pool, each with the pool's own text
(a chunk is ranked only within its pool, so the fused scores are the same as in one query).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.style import CJK_RE
from domain.types import Chunk, Hit
from index.bm25 import MIN_LATIN_TERMS, tokenize
from index.hybrid import (
    METHODS,
    FusionSettings,
    PoolQuery,
    QuerySearch,
    diverse_top,
    main_language,
    pool_languages,
)
from index.qdrant_store import BM25, DENSE, LATIN_OFFSET, TERMS
from index.splitter import detect_lang

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.bm25 import BM25Index
    from index.qdrant_store import QdrantStore


class QdrantRetriever(QuerySearch):
    """Searches one generation's Qdrant points. Thread-safe: searches only read shared state."""

    def __init__(
        self,
        *,
        chunks: Sequence[Chunk],
        store: QdrantStore,
        bm25: BM25Index,
        embedder: Embedder,
        fusion: FusionSettings | None = None,
    ) -> None:
        self.chunks = list(chunks)
        self.store = store
        self.bm25 = bm25
        self.embedder = embedder
        self.fusion = fusion or FusionSettings()
        self._embed_lock = threading.Lock()
        langs = [c.lang for c in self.chunks]
        # pool name -> the chunk languages it ranks ({}: one ranking of everything)
        self._pools = pool_languages(langs, self.fusion.min_pool_share) if self.fusion.language_pools else {}
        use_centroids = self._pools and self.fusion.cross_lingual_centering
        self._centroids = dict(store.centroids) if use_centroids else {}
        self._main_lang = "" if self._pools else main_language(self.chunks)

    def _pool_names(self) -> Sequence[str]:
        return list(self._pools)

    def search_many(self, queries: Sequence[str], *, k: int, method: str) -> list[list[Hit]]:
        """Search several queries, embedding them in one batch and asking Qdrant in one batch."""
        if method == "bm25":
            return self._search(list(queries), [None] * len(queries), k=k, method=method)
        with self._embed_lock:
            qvecs = np.asarray(self.embedder.embed_queries(list(queries)), dtype=np.float32)
        return self._search(list(queries), list(qvecs), k=k, method=method)

    def search_with(
        self,
        query: str,
        qvec: np.ndarray | None,
        *,
        k: int,
        method: str,
        pool_queries: Mapping[str, PoolQuery] | None = None,
    ) -> list[Hit]:
        """Search with an already embedded query; ``method`` is 'dense', 'bm25' or 'hybrid';
        ``pool_queries`` (hybrid only): language -> (the question in it, its vector)."""
        if pool_queries and method == "hybrid" and self.chunks and k > 0:
            return self._search_pools(query, qvec, dict(pool_queries), k=k)
        return self._search([query], [qvec], k=k, method=method)[0]

    def _search_pools(
        self, query: str, qvec: np.ndarray | None, pool_queries: dict[str, PoolQuery], *, k: int
    ) -> list[Hit]:
        """One hybrid query per pool, each with the pool's text; the orders merged by score."""
        from qdrant_client import models

        if qvec is None:
            raise ValueError("method 'hybrid' needs the query's vector")
        pools: list[str | None] = list(self._pools) or [None]
        asked = []
        for pool in pools:
            text, vec = pool_queries.get(pool or self._main_lang, (query, qvec))
            asked.append((pool, text, vec, tokenize(text)))
        plans = [
            self._request(models, t, v, terms, k=k, method="hybrid", pools=[p]) for p, t, v, terms in asked
        ]
        answers = iter(self.store.query([p for p in plans if p is not None]))
        order = sorted(
            (item for p in plans if p is not None for item in _ordered(next(answers))),
            key=lambda rs: (-rs[1], rs[0]),
        )
        chosen = diverse_top(order, self.chunks, k, self.fusion.max_per_doc)
        stored = self.store.vectors(sorted(row for row, _ in chosen), [DENSE, BM25])
        by_pool = {p: (v, Counter(self.bm25.term_ids(terms))) for p, _, v, terms in asked}
        list_rank = {row: i for i, (row, _) in enumerate(order, start=1)}
        hits = []
        for rank, (row, score) in enumerate(chosen, start=1):
            vec, counts = by_pool[self._pool_of(row)]
            hits.append(
                self._hit(row, score, rank, vec, counts, stored.get(row, {}), "hybrid", list_rank[row])
            )
        return hits

    def _pool_of(self, row: int) -> str | None:
        """The pool that ranks chunk ``row`` (None: the index is one ranking)."""
        lang = self.chunks[row].lang
        return next((p for p, members in self._pools.items() if lang in members), None)

    def _search(
        self, queries: list[str], qvecs: list[np.ndarray | None], *, k: int, method: str
    ) -> list[list[Hit]]:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not self.chunks or k <= 0:
            return [[] for _ in queries]
        if method != "bm25" and any(v is None for v in qvecs):
            raise ValueError(f"method {method!r} needs the query's vector")
        from qdrant_client import models

        terms = [tokenize(q) for q in queries]
        plans = [
            self._request(models, q, v, t, k=k, method=method)
            for q, v, t in zip(queries, qvecs, terms, strict=True)
        ]
        asked = [p for p in plans if p is not None]
        answers = iter(self.store.query(asked))
        orders = [[] if p is None else _ordered(next(answers)) for p in plans]
        picked = [diverse_top(order, self.chunks, k, self.fusion.max_per_doc) for order in orders]
        names = [BM25] if method == "bm25" else [DENSE, BM25]
        stored = self.store.vectors(sorted({row for p in picked for row, _ in p}), names)
        hits = []
        for q_terms, qvec, order, chosen in zip(terms, qvecs, orders, picked, strict=True):
            counts = Counter(self.bm25.term_ids(q_terms))
            list_rank = {row: i for i, (row, _) in enumerate(order, start=1)}
            hits.append(
                [
                    self._hit(row, score, rank, qvec, counts, stored.get(row, {}), method, list_rank[row])
                    for rank, (row, score) in enumerate(chosen, start=1)
                ]
            )
        return hits

    def _request(
        self,
        m: Any,
        query: str,
        qvec: np.ndarray | None,
        terms: list[str],
        *,
        k: int,
        method: str,
        pools: list[str | None] | None = None,
    ) -> Any | None:
        """The Qdrant query for one question (None when it cannot match anything); ``pools``: the
        pools it ranks (default: all of them)."""
        f = self.fusion
        depth = max(k, f.candidates)
        counts = Counter(self.bm25.term_ids(terms))
        lexical = m.SparseVector(indices=list(counts), values=[float(n) for n in counts.values()])
        if method == "dense":
            return m.QueryRequest(query=np.asarray(qvec).tolist(), using=DENSE, limit=depth)
        if method == "bm25":
            return m.QueryRequest(query=lexical, using=BM25, limit=depth) if counts else None
        assert qvec is not None
        pools = pools or list(self._pools) or [None]
        q_lang = detect_lang(query) if self._centroids else ""
        dense = [
            m.Prefetch(
                query=self._pool_vector(qvec, q_lang, p), using=DENSE, filter=self._filter(m, p), limit=depth
            )
            for p in pools
        ]
        rrf = m.RrfQuery(rrf=m.Rrf(k=f.rrf_k + 1))
        fused_limit = 2 * depth * len(pools)
        prefetch = [m.Prefetch(prefetch=dense, query=rrf, limit=fused_limit)]
        formula: Any = m.MultExpression(mult=[f.dense_weight, "$score[0]"])
        if counts:
            lists = [
                m.Prefetch(query=lexical, using=BM25, filter=self._filter(m, p), limit=depth) for p in pools
            ]
            prefetch.append(m.Prefetch(prefetch=lists, query=rrf, limit=fused_limit))
            prefetch.append(
                m.Prefetch(prefetch=lists, query=self._share_vector(m, terms), using=TERMS, limit=fused_limit)
            )
            share = m.PowExpression(pow=m.PowParams(base="$score[2]", exponent=f.coverage_power))
            formula = m.SumExpression(
                sum=[formula, m.MultExpression(mult=[f.bm25_weight, "$score[1]", share])]
            )
        defaults = {f"$score[{i}]": 0.0 for i in range(len(prefetch))}
        return m.QueryRequest(
            prefetch=prefetch,
            query=m.FormulaQuery(formula=formula, defaults=defaults),
            limit=fused_limit,
        )

    def _filter(self, m: Any, pool: str | None) -> Any:
        """The Qdrant filter that keeps ``pool``'s chunks (None: every chunk)."""
        if pool is None:
            return None
        members = self._pools.get(pool, (pool,))
        match = m.MatchValue(value=members[0]) if len(members) == 1 else m.MatchAny(any=list(members))
        return m.Filter(must=[m.FieldCondition(key="lang", match=match)])

    def _pool_vector(self, qvec: np.ndarray, q_lang: str, pool: str | None) -> list[float]:
        """The query vector for ``pool``: with the question language's mean chunk vector taken off
        when the pool is in another language (as ``index.hybrid`` does)."""
        shift = self.fusion.cross_lingual_centering
        centroid = self._centroids.get(q_lang)
        if shift and centroid is not None and pool and pool != q_lang:
            return (qvec - shift * centroid).tolist()
        return np.asarray(qvec).tolist()

    def _share_vector(self, m: Any, terms: list[str]) -> Any:
        """Sparse query whose dot product with a chunk's ``terms`` vector is the share of the
        question's distinct terms the chunk holds (``BM25Index.match``'s coverage): for chunks not
        written in Chinese, the share of its Latin-script terms when a Chinese question has at
        least ``MIN_LATIN_TERMS`` of them that the index knows."""
        distinct = set(terms)
        known = set(self.bm25.term_ids(sorted(distinct)))
        weights = {t: 1.0 / len(distinct) for t in known}
        latin = {t for t in distinct if not CJK_RE.search(t)}
        latin_ids = set(self.bm25.term_ids(sorted(latin))) if latin and len(latin) < len(distinct) else set()
        if len(latin_ids) >= MIN_LATIN_TERMS:
            weights.update({t + LATIN_OFFSET: 1.0 / len(latin) for t in latin_ids})
        else:
            weights.update({t + LATIN_OFFSET: 1.0 / len(distinct) for t in known})
        return m.SparseVector(indices=list(weights), values=list(weights.values()))

    def _hit(
        self,
        row: int,
        score: float,
        rank: int,
        qvec: np.ndarray | None,
        counts: Counter[int],
        vectors: dict[str, Any],
        method: str,
        list_rank: int,
    ) -> Hit:
        dense_score = None
        if qvec is not None and vectors.get(DENSE) is not None:
            dense_score = float(np.dot(np.asarray(vectors[DENSE], dtype=np.float32), qvec))
        sparse = vectors.get(BM25)
        bm25_score = 0.0
        if sparse is not None:
            bm25_score = float(
                sum(
                    counts.get(int(i), 0) * float(v)
                    for i, v in zip(sparse.indices, sparse.values, strict=True)
                )
            )
        return Hit(
            chunk=self.chunks[row],
            score=score,
            rank=rank,
            dense_score=dense_score,
            bm25_score=bm25_score,
            dense_rank=list_rank if method == "dense" else None,
            bm25_rank=list_rank if method == "bm25" else None,
        )


def _ordered(points: Sequence[Any]) -> list[tuple[int, float]]:
    """(row, score) best first, ties by row (as ``index.hybrid`` orders them)."""
    return sorted(((int(p.id), float(p.score)) for p in points), key=lambda rs: (-rs[1], rs[0]))
