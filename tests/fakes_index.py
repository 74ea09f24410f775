"""``FakeEmbedder``: a deterministic stand-in for the ``Embedder`` port that hashes words and
character n-grams into a fixed number of signed buckets and L2-normalises the result.

Texts that share words or characters get similar vectors (enough for retrieval tests), runs are
repeatable across processes, and counters show what was embedded. ``delay_s`` slows each batch so a
test can interrupt an indexing run.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Sequence

import numpy as np

from domain.progress import ProgressFn, no_progress

_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")


class FakeEmbedder:
    """Hashing embedder with inspectable counters (``passages_embedded``, ``queries_embedded``,
    ``passage_calls``)."""

    precision = "fp32"

    def __init__(self, *, dim: int = 64, name: str = "fake-ngram", delay_s: float = 0.0) -> None:
        self._dim = dim
        self._name = name
        self.delay_s = delay_s
        self.passages_embedded = 0
        self.queries_embedded = 0
        self.passage_calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries_embedded += len(texts)
        return self._embed(texts)

    def embed_passages(
        self, texts: Sequence[str], *, batch_size: int = 32, on_progress: ProgressFn = no_progress
    ) -> np.ndarray:
        self.passage_calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            if self.delay_s:
                time.sleep(self.delay_s)
            out[start : start + len(batch)] = self._embed(batch)
            self.passages_embedded += len(batch)
            on_progress(start + len(batch), len(texts), "embedding")
        return out

    def count_tokens(self, text: str) -> int:
        """Words and CJK characters, each one token."""
        return len(_WORD.findall(text.lower()))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = text.lower()
            feats = _WORD.findall(lowered)
            squeezed = re.sub(r"\s+", " ", lowered)
            feats += [squeezed[i : i + 3] for i in range(max(0, len(squeezed) - 2))]
            for feat in feats:
                h = zlib.crc32(feat.encode("utf-8"))
                out[row, h % self._dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out
