"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidate lists fused by weighted reciprocal
rank fusion into ``Hit``s that carry both scores, both ranks and the fused rank.

When an index holds chunks in several languages, each language is its own pool with its own dense
and BM25 list, so a document in another language than the question still gets a top rank in its
pool (multilingual embedders score same-language text higher whatever it says, and BM25 rarely
matches across languages). When a pool in another language than the question is searched, the
question's vector first has the mean vector of its own language's chunks taken off: that shared
"this is Chinese" (or English) direction says nothing about the content, yet it decides which
foreign chunks look closest (the chunks with some text in the question's language). Reported dense
scores stay plain cosines. The final top k keeps at most ``max_per_doc`` chunks of one document
while other documents are left. Implements the ``Retriever`` port; dense-only and BM25-only searches
are exposed beside it for evaluation.

A search may also be given the question translated into other languages (``translations``,
language -> text; ``domain.crosslingual`` asks a model for them): each pool in such a language is
then searched, dense and BM25, with the translation instead of the question (an index of one
language counts as one pool in its main language), and its hits carry the scores of the text they
were found with.

Above ~300 lines because the language pools, the per-pool dense and BM25 lists and their fusion are
one search: every step reads the same query state (``QuerySearch``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from domain.types import Chunk, Hit
from index.splitter import detect_lang

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.bm25 import BM25Index
    from index.vector_store import VectorStore

METHODS = ("dense", "bm25", "hybrid")
RETRIEVAL_VERSION = 3  # bump when ranking changes: cached gate scores are then re-measured


@dataclass(frozen=True)
class FusionSettings:
    """How lists are fused and the top k assembled.

    Fused score = Σ weight / (rrf_k + rank) over the lists a chunk is in; each list contributes its
    best ``candidates`` chunks. A BM25 vote is further multiplied by (share of the question's
    distinct terms found in the chunk) ** ``coverage_power``, so a stray word match counts little
    (0 turns that off); for chunks written without Chinese, a Chinese question's share counts only
    its Latin-script terms (codes, numbers, names) when it has at least two that the index knows.
    ``language_pools`` ranks each chunk language separately — each language holding at least
    ``min_pool_share`` of the chunks; a rarer language's chunks are ranked with the largest pool's
    (a pool of four stray chunks would hold a top place in every search, see ``pool_languages``).
    ``max_per_doc`` chunks of one document enter the top k before other documents' chunks run out.
    ``cross_lingual_centering`` is the share of the question language's mean chunk vector taken off
    the question's vector when another language's pool is searched (0 turns that off).
    """

    rrf_k: int = 10
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    coverage_power: float = 2.0
    candidates: int = 50
    language_pools: bool = True
    min_pool_share: float = 0.05
    max_per_doc: int = 1
    cross_lingual_centering: float = 1.0


# the question in one pool's language and its embedded vector
PoolQuery = tuple[str, np.ndarray]


@dataclass
class _Lists:
    """Per-query candidate lists: row -> (rank within its list, score), and each row's BM25 score
    under the text its pool was searched with."""

    dense: dict[int, tuple[int, float]]
    bm25: dict[int, tuple[int, float]]
    bm25_score: np.ndarray


class QuerySearch:
    """What every retriever of ours shares: the ``Retriever`` port's ``search`` as a hybrid
    ``search_with`` of the embedded query, and embedding one query under the embedder's lock."""

    embedder: Embedder
    _embed_lock: threading.Lock

    chunks: list[Chunk]
    _main_lang: str  # the chunks' most common language when the index is one ranking, else ""

    def search(self, query: str, *, k: int = 5, translations: Mapping[str, str] | None = None) -> list[Hit]:
        """The ``k`` best chunks by fused rank (the ``Retriever`` port); ``translations`` (language
        -> the question in it) search the pools of those languages in place of the question."""
        if not translations:
            return self.search_with(query, self.embed_query(query), k=k, method="hybrid")
        langs = list(translations)
        with self._embed_lock:
            vecs = np.asarray(
                self.embedder.embed_queries([query, *(translations[x] for x in langs)]), dtype=np.float32
            )
        pool_queries = {x: (translations[x], v) for x, v in zip(langs, vecs[1:], strict=True)}
        return self.search_with(query, vecs[0], k=k, method="hybrid", pool_queries=pool_queries)

    def search_languages(self) -> list[str]:
        """The languages the index is searched in: one per language pool, else the main language
        of its chunks (none when it is empty)."""
        return sorted(self._pool_names()) or ([self._main_lang] if self._main_lang else [])

    def _pool_names(self) -> Sequence[str]:
        raise NotImplementedError

    def embed_query(self, query: str) -> np.ndarray:
        with self._embed_lock:
            return np.asarray(self.embedder.embed_queries([query])[0], dtype=np.float32)

    def search_with(
        self,
        query: str,
        qvec: np.ndarray | None,
        *,
        k: int,
        method: str,
        pool_queries: Mapping[str, PoolQuery] | None = None,
    ) -> list[Hit]:
        raise NotImplementedError


class HybridRetriever(QuerySearch):
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
        langs = np.array([c.lang for c in self.chunks])
        self._pools: dict[str, np.ndarray] = {}
        self._centroids: dict[str, np.ndarray] = {}
        if self.fusion.language_pools:
            for lang, members in pool_languages(langs.tolist(), self.fusion.min_pool_share).items():
                rows = np.flatnonzero(np.isin(langs, members))
                self._pools[lang] = rows
                vectors.add_subset(f"lang:{lang}", rows)
                if self.fusion.cross_lingual_centering:
                    self._centroids[lang] = vectors.mean_vector(rows)
        self._latin_rows = np.array([c.lang != "zh" for c in self.chunks], dtype=bool)
        self._main_lang = "" if self._pools else main_language(self.chunks)

    def _pool_names(self) -> Sequence[str]:
        return list(self._pools)

    def search_many(self, queries: Sequence[str], *, k: int, method: str) -> list[list[Hit]]:
        """Search several queries, embedding them in one batch (used by evaluation)."""
        if method == "bm25":
            return [self.search_with(q, None, k=k, method=method) for q in queries]
        with self._embed_lock:
            qvecs = np.asarray(self.embedder.embed_queries(list(queries)), dtype=np.float32)
        return [self.search_with(q, v, k=k, method=method) for q, v in zip(queries, qvecs, strict=True)]

    def search_with(
        self,
        query: str,
        qvec: np.ndarray | None,
        *,
        k: int,
        method: str,
        pool_queries: Mapping[str, PoolQuery] | None = None,
    ) -> list[Hit]:
        """Search with an already embedded query; ``method`` is 'dense', 'bm25' or 'hybrid'.

        Dense and BM25 ranks in the hits are ranks within the list the chunk came from (its
        language pool for hybrid search over a multilingual index). ``pool_queries`` (hybrid only):
        language -> (the question in it, its vector), searched in that language's pool.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not self.chunks or k <= 0:
            return []
        if method != "bm25" and qvec is None:
            raise ValueError(f"method {method!r} needs the query's vector")
        from index.bm25 import top_k

        f = self.fusion
        depth = max(k, f.candidates)
        latin = self._latin_rows if method == "hybrid" else None
        bm25_all, coverage = self.bm25.match(query, latin)
        pools: list[tuple[str | None, np.ndarray | None]] = (
            [(f"lang:{lang}", rows) for lang, rows in self._pools.items()]
            if method == "hybrid" and self._pools
            else [(None, None)]
        )
        translated = dict(pool_queries or {}) if method == "hybrid" else {}
        lists = _Lists({}, {}, bm25_all)
        q_lang = detect_lang(query) if self._centroids else ""
        for subset, rows in pools:
            pool_lang = subset.split(":", 1)[1] if subset else self._main_lang
            text, vec = translated.get(pool_lang, (query, qvec))
            scores_all = bm25_all
            if text is not query:
                scores_all, cover = self.bm25.match(text, latin)
                if lists.bm25_score is bm25_all:
                    lists.bm25_score, coverage = bm25_all.copy(), coverage.copy()
                in_pool = slice(None) if rows is None else rows
                lists.bm25_score[in_pool] = scores_all[in_pool]
                coverage[in_pool] = cover[in_pool]
            if method != "bm25":
                v_lang = pool_lang if text is not query else q_lang
                lists.dense.update(self._dense_list(np.asarray(vec), v_lang, subset, depth))
            if method != "dense":
                scores = scores_all if rows is None else _masked(scores_all, rows)
                b_rows, b_scores = top_k(scores, depth)
                lists.bm25.update(
                    {
                        int(row): (i, float(sc))
                        for i, (row, sc) in enumerate(zip(b_rows, b_scores, strict=True), start=1)
                    }
                )
        if method == "dense":
            order = [(row, sc) for row, (_, sc) in sorted(lists.dense.items(), key=lambda kv: kv[1][0])]
        elif method == "bm25":
            order = [(row, sc) for row, (_, sc) in sorted(lists.bm25.items(), key=lambda kv: kv[1][0])]
        else:
            fused: dict[int, float] = {}
            for row, (rank, _) in lists.dense.items():
                fused[row] = fused.get(row, 0.0) + f.dense_weight / (f.rrf_k + rank)
            for row, (rank, _) in lists.bm25.items():
                weight = f.bm25_weight * float(coverage[row]) ** f.coverage_power
                fused[row] = fused.get(row, 0.0) + weight / (f.rrf_k + rank)
            order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        picked = self._diverse_top(order, k)
        return [self._hit(row, score, rank, qvec, lists) for rank, (row, score) in enumerate(picked, start=1)]

    def _dense_list(
        self, qvec: np.ndarray, q_lang: str, subset: str | None, depth: int
    ) -> dict[int, tuple[int, float]]:
        """row -> (rank, cosine) of the ``depth`` best chunks of ``subset`` (a ``lang:xx`` pool or
        everything); another language's pool is ranked with the question's language centroid taken
        off its vector, and the cosines are then those of the plain vector."""
        pool_lang = subset.split(":", 1)[1] if subset and subset.startswith("lang:") else ""
        shift = self.fusion.cross_lingual_centering
        centroid = self._centroids.get(q_lang)
        foreign = bool(shift and centroid is not None and pool_lang and pool_lang != q_lang)
        query = qvec - shift * centroid if foreign else qvec
        s, r = self.vectors.search(query.reshape(1, -1), depth, subset=subset)
        rows = np.array([int(row) for row in r[0] if row >= 0], dtype=np.int64)
        scores = self.vectors.score_rows(qvec, rows) if foreign else s[0][: len(rows)]
        return {
            int(row): (i, float(sc)) for i, (row, sc) in enumerate(zip(rows, scores, strict=True), start=1)
        }

    def _diverse_top(self, order: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
        return diverse_top(order, self.chunks, k, self.fusion.max_per_doc)

    def _hit(
        self,
        row: int,
        score: float,
        rank: int,
        qvec: np.ndarray | None,
        lists: _Lists,
    ) -> Hit:
        dense = lists.dense.get(row)
        bm25 = lists.bm25.get(row)
        dense_score = dense[1] if dense else None
        if dense_score is None and qvec is not None:
            dense_score = float(self.vectors.score_rows(qvec, np.array([row]))[0])
        return Hit(
            chunk=self.chunks[row],
            score=score,
            rank=rank,
            dense_score=dense_score,
            bm25_score=float(lists.bm25_score[row]),
            dense_rank=dense[0] if dense else None,
            bm25_rank=bm25[0] if bm25 else None,
        )


def pool_languages(langs: Sequence[str], min_share: float) -> dict[str, tuple[str, ...]]:
    """The language pools for chunks in ``langs``: pool name -> the chunk languages it ranks. One
    pool per language holding at least ``min_share`` of the chunks; the chunks of rarer languages
    join the largest pool. Empty when fewer than two pools remain (one ranking of everything).

    >>> pool_languages(["zh"] * 6 + ["en"] * 4, 0.05)
    {'en': ('en',), 'zh': ('zh',)}
    >>> pool_languages(["zh"] * 996 + ["en"] * 4, 0.05)
    {}
    """
    counts = Counter(langs)
    total = sum(counts.values())
    major = sorted(lang for lang, n in counts.items() if n >= min_share * total)
    if len(major) < 2:
        return {}
    largest = max(major, key=lambda lang: (counts[lang], lang))
    return {
        lang: tuple(sorted(x for x in counts if x == lang or (lang == largest and x not in major)))
        for lang in major
    }


def main_language(chunks: Sequence[Chunk]) -> str:
    """The most common language of ``chunks`` (ties: the later name), "" when there are none.

    >>> main_language([Chunk("a", "a.md", "", "", "x", 0, 1, lang=x) for x in ("en", "zh", "zh")])
    'zh'
    """
    counts = Counter(c.lang for c in chunks)
    return max(counts, key=lambda x: (counts[x], x)) if counts else ""


def _masked(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros_like(scores)
    out[rows] = scores[rows]
    return out


def diverse_top(
    order: list[tuple[int, float]], chunks: Sequence[Chunk], k: int, max_per_doc: int
) -> list[tuple[int, float]]:
    """The first ``k`` of ``order`` (rows with scores, best first) with at most ``max_per_doc``
    chunks per document, topped up in order when fewer documents than that are left (0: no cap)."""
    if max_per_doc <= 0:
        return order[:k]
    taken: list[tuple[int, float]] = []
    held: list[tuple[int, float]] = []
    per_doc: Counter[str] = Counter()
    for row, score in order:
        path = chunks[row].path
        if per_doc[path] < max_per_doc:
            taken.append((row, score))
            per_doc[path] += 1
            if len(taken) == k:
                return taken
        else:
            held.append((row, score))
    keep = set(taken) | set(held[: k - len(taken)])
    return [item for item in order if item in keep]
