"""Lexical search: a tokenizer for English and Chinese (words with a light plural stemmer; jieba's
search-mode words plus single characters for Chinese) and a BM25 index built with bm25s.

The index scores every chunk for a query, so hybrid fusion can report a BM25 score for any hit.
Persistence is bm25s's own save/load inside a folder the caller chooses.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domain.progress import ProgressFn, no_progress
from domain.style import CJK_RE as _CJK_RE

logger = logging.getLogger(__name__)

TOKENIZER_VERSION = 1
_TOKEN = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*|[\u3400-\u9fff\uf900-\ufaff]+")
_EN_STOP_WORDS = (
    "a an and are as at be been but by can do does for from had has have how i if in into is it its "
    "me my of on or our so than that the their them then there these they this to was we were what "
    "when where which who why will with would you your"
)
_ZH_STOP_WORDS = (
    "的 了 是 在 和 与 及 或 也 都 就 而 之 其 这 那 有 为 对 吗 呢 吧 啊 个 我 你 他 她 它 们 请 中"
)
_EN_STOP = frozenset(_EN_STOP_WORDS.split())
_ZH_STOP = frozenset(_ZH_STOP_WORDS.split())
_jieba_lock = threading.Lock()
_jieba: Any = None


def _cut_chinese(run: str) -> list[str]:
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return [w for w in _jieba.cut_for_search(run) if w.strip()]


def _stem(word: str) -> str:
    """Harman's S-stemmer for English plurals ("policies" -> "policy", "expenses" -> "expense",
    "days" -> "day")."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased terms: English words (stop words dropped, plurals folded), Chinese words from
    jieba's search mode plus each Chinese character, digits as written."""
    out: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        term = match.group()
        if term[0] < "\u3400":
            if term not in _EN_STOP:
                out.append(_stem(term))
            continue
        out.extend(w for w in _cut_chinese(term) if w not in _ZH_STOP)
        out.extend(ch for ch in term if ch not in _ZH_STOP)
    return out


class BM25Index:
    """BM25 over tokenised chunks (bm25s, Lucene variant). Read-only after ``build``/``load``, so
    it is safe to share between threads."""

    def __init__(self, model: Any, n_docs: int) -> None:
        self._model = model
        self.n_docs = n_docs

    @classmethod
    def build(
        cls, corpus_tokens: Sequence[Sequence[str]], *, on_progress: ProgressFn = no_progress
    ) -> BM25Index:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG
        on_progress(0, len(corpus_tokens), "BM25 index")
        model = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        # An empty chunk list still gets a valid (empty-token) document so bm25s can build.
        docs = [list(toks) or [""] for toks in corpus_tokens] or [[""]]
        model.index(docs, show_progress=False)
        on_progress(len(corpus_tokens), len(corpus_tokens), "BM25 index")
        return cls(model, len(corpus_tokens))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._model.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> BM25Index:
        import bm25s

        model = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0)
        return cls(model, n_docs)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (float32, zeros when no term matches)."""
        return self.match(query)[0]

    def match(self, query: str, latin_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(BM25 score of every chunk, share of the query's distinct terms each chunk contains).

        The share is what hybrid fusion uses to weigh BM25's vote: a chunk that matches two stray
        words of a long question explains little of it, however rare those words are. For chunks
        in ``latin_rows`` (a boolean mask of chunks written without Chinese), the share counts only
        the question's terms without Chinese characters, when at least ``MIN_LATIN_TERMS`` of them
        are in the index: an English passage cannot contain the Chinese words of a question, but
        it can contain every product code and number in it (one lone number is too weak a sign).
        """
        terms = tokenize(query)
        zeros = np.zeros(self.n_docs, dtype=np.float32)
        ids = self._model.get_tokens_ids(terms)
        if not ids or self.n_docs == 0:
            return zeros, zeros.copy()
        s = self._model.scores
        data, indices, indptr = s["data"], s["indices"], s["indptr"]
        at = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in ids])
        scores = np.bincount(indices[at], weights=data[at], minlength=s["num_docs"])
        distinct = sorted(set(ids))
        at_once = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in distinct])
        found = np.bincount(indices[at_once], minlength=s["num_docs"])[: self.n_docs]
        coverage = found / len(set(terms))
        latin_terms = {t for t in terms if not _CJK_RE.search(t)}
        if latin_rows is not None and latin_terms and len(latin_terms) < len(set(terms)):
            latin_ids = sorted(set(self._model.get_tokens_ids(sorted(latin_terms))))
            if len(latin_ids) >= MIN_LATIN_TERMS:
                at_latin = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in latin_ids])
                found_latin = np.bincount(indices[at_latin], minlength=s["num_docs"])[: self.n_docs]
                coverage = np.where(latin_rows, found_latin / len(latin_terms), coverage)
        return scores[: self.n_docs].astype(np.float32), coverage.astype(np.float32)

    def term_ids(self, terms: Sequence[str]) -> list[int]:
        """Vocabulary ids of the ``terms`` this index knows, in order, repeats kept."""
        return list(self._model.get_tokens_ids(list(terms)))

    def chunk_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every chunk's BM25 weight per term it holds, as CSR arrays (``indptr`` over chunks,
        term ids, weights): a query's BM25 score of a chunk is the sum of the weights of the
        query's known terms, repeats counted, which is what ``scores`` adds up (a sparse vector
        store gets the same numbers this way)."""
        s = self._model.scores
        data, docs, indptr = (np.asarray(s[key]) for key in ("data", "indices", "indptr"))
        terms = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        keep = docs < self.n_docs
        data, docs, terms = data[keep], docs[keep], terms[keep]
        order = np.lexsort((terms, docs))
        counts = np.bincount(docs, minlength=self.n_docs)[: self.n_docs]
        rows = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return rows, terms[order], data[order].astype(np.float32)

    def top(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk rows, scores) of the best ``k`` chunks with a positive score, best first."""
        scores = self.scores(query)
        return top_k(scores, k)


MIN_LATIN_TERMS = 2


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and values of the ``k`` largest positive entries, largest first (ties by row)."""
    positive = np.flatnonzero(scores > 0)
    if positive.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if positive.size > k:
        part = np.argpartition(-scores[positive], k - 1)[:k]
        positive = positive[part]
    order = np.lexsort((positive, -scores[positive]))
    rows = positive[order]
    return rows.astype(np.int64), scores[rows].astype(np.float32)
