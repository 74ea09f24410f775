"""Dense search with FAISS: an exact inner-product index by default, an HNSW graph above a size
threshold whose recall against exact search is measured at build time (efSearch is raised until it
reaches the target). Vectors are L2-normalised, so inner product is cosine similarity.

Persistence writes the vectors (``vectors.npy``, the source of truth) and, for HNSW, the graph;
where those files live and when they become current is ``index.store``'s business.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domain.errors import IndexStoreError

logger = logging.getLogger(__name__)

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
EF_SEARCH_STEPS = (64, 128, 256, 512, 1024)
RECALL_TARGET = 0.95
RECALL_QUERIES = 200
RECALL_K = 10


@dataclass(frozen=True)
class AnnReport:
    """Which FAISS index serves queries; for HNSW, its measured recall@10 against exact search."""

    kind: str  # "flat" or "hnsw"
    n_vectors: int
    recall_at_10: float = 1.0
    ef_search: int = 0
    build_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _faiss() -> Any:
    import faiss

    return faiss


class VectorStore:
    """A FAISS index over the rows of ``vectors``; row ``i`` is chunk ``i`` of the index."""

    def __init__(self, index: Any, dim: int, report: AnnReport) -> None:
        self._index = index
        self.dim = dim
        self.report = report
        self._subsets: dict[str, tuple[np.ndarray, Any]] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, *, ann_threshold: int, seed: int = 0) -> VectorStore:
        """Exact (flat) index up to ``ann_threshold`` rows, HNSW above it with measured recall."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        t0 = time.perf_counter()
        if n <= ann_threshold:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return cls(index, dim, AnnReport("flat", n, build_s=time.perf_counter() - t0))
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(vectors)
        build_s = time.perf_counter() - t0
        recall, ef = tune_ef_search(index, vectors, seed=seed)
        logger.info(
            "HNSW over %d vectors built in %.1f s; recall@10 %.3f at efSearch %d", n, build_s, recall, ef
        )
        return cls(index, dim, AnnReport("hnsw", n, recall, ef, build_s))

    def add_subset(self, name: str, rows: np.ndarray) -> None:
        """Register a named subset of rows (e.g. the chunks of one language) for ``search``; a
        name registered before is kept (the rows of a loaded store never change)."""
        with self._lock:
            if name not in self._subsets:
                ids = np.ascontiguousarray(rows, dtype=np.int64)
                self._subsets[name] = (ids, _faiss().IDSelectorBatch(ids))

    def search(
        self, queries: np.ndarray, k: int, *, subset: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of shape (len(queries), k'), best first; ``subset`` (see ``add_subset``)
        limits the search to those rows."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if subset is None:
            k = min(k, self.size)
            if k <= 0:
                return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
            return self._index.search(q, k)
        faiss = _faiss()
        ids, selector = self._subsets[subset]
        k = min(k, len(ids))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self.report.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.report.ef_search, k))
        else:
            params = faiss.SearchParameters(sel=selector)
        return self._index.search(q, k, params=params)

    def mean_vector(self, rows: np.ndarray, *, batch: int = 8192) -> np.ndarray:
        """Mean of the stored vectors of ``rows`` (read back in batches, so memory stays small)."""
        total = np.zeros(self.dim, dtype=np.float64)
        ids = np.asarray(rows, dtype=np.int64)
        for start in range(0, len(ids), batch):
            total += self._index.reconstruct_batch(ids[start : start + batch]).sum(axis=0)
        return (total / max(1, len(ids))).astype(np.float32)

    def score_rows(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner products of one query vector with the stored vectors of ``rows``."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        stored = self._index.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        return (stored @ np.asarray(query, dtype=np.float32).reshape(-1)).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write the HNSW graph (flat indexes are rebuilt from ``vectors.npy`` on load)."""
        if self.report.kind == "hnsw":
            _faiss().write_index(self._index, str(folder / "faiss.index"))

    @classmethod
    def load(cls, folder: Path, report: AnnReport) -> VectorStore:
        """Open a saved store; ``report`` comes from the manifest."""
        faiss = _faiss()
        try:
            if report.kind == "hnsw":
                index = faiss.read_index(str(folder / "faiss.index"))
                index.hnsw.efSearch = report.ef_search
            else:
                vectors = np.load(folder / "vectors.npy")
                index = faiss.IndexFlatIP(int(vectors.shape[1]))
                index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        except (OSError, RuntimeError, ValueError) as e:
            raise IndexStoreError(f"cannot read the vectors in {folder} ({e})") from e
        return cls(index, int(index.d), report)


def tune_ef_search(index: Any, vectors: np.ndarray, *, seed: int = 0) -> tuple[float, int]:
    """Raise efSearch until HNSW recall@10 against exact search reaches ``RECALL_TARGET``.

    Queries are stored vectors with Gaussian noise (re-normalised), so they are near real data
    without being exact copies. Returns (recall, efSearch).
    """
    faiss = _faiss()
    rng = np.random.default_rng(seed)
    n, dim = vectors.shape
    picks = rng.choice(n, size=min(RECALL_QUERIES, n), replace=False)
    queries = vectors[picks] + rng.normal(0.0, 0.05, size=(len(picks), dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    k = min(RECALL_K, n)
    _, truth = exact.search(queries, k)
    recall, ef = 0.0, EF_SEARCH_STEPS[0]
    for ef in EF_SEARCH_STEPS:
        index.hnsw.efSearch = ef
        _, got = index.search(queries, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)]))
        if recall >= RECALL_TARGET:
            break
    return recall, ef
