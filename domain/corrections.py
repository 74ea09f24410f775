"""The corrections store: one SQLite file (WAL) in the workspace holding every corrected answer
with its question, language, mode, the passages shown and the original answer.

Rows are only ever inserted (a new correction of the same question is a new row; the newest
wins on lookup), each insert is its own short transaction, and a busy timeout lets several
processes write at once without losing a row. ``find_similar`` is the correction memory's lookup:
the closest stored question in the same language above a similarity threshold.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from domain.errors import CorrectionStoreError, DataError
from domain.serialize import hit_to_json, hits_from_json
from domain.style import NEUTRAL, StyleProfile, answer_line, detect_lang
from domain.types import Hit

logger = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    lang TEXT NOT NULL,
    mode TEXT NOT NULL,
    passages TEXT NOT NULL DEFAULT '[]',
    original TEXT NOT NULL DEFAULT '',
    corrected TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS corrections_lang ON corrections(lang)",
)
_COLUMNS = "id, question, lang, mode, passages, original, corrected, created_at"


@dataclass(frozen=True)
class Correction:
    """One stored correction; ``passages`` is the JSON text of the passages shown at the time."""

    id: int
    question: str
    lang: str
    mode: str
    passages: str
    original: str
    corrected: str
    created_at: str

    def passage_hits(self) -> list[Hit]:
        """The stored passages as ``Hit``s (empty when none or unreadable)."""
        try:
            data = json.loads(self.passages or "[]")
            return hits_from_json(data) if isinstance(data, list) else []
        except (ValueError, TypeError, KeyError) as e:
            logger.warning("correction %d has unreadable passages (%s); showing none", self.id, e)
            return []


CORRECTION_KIND = "correction"  # the kind and split of the evaluation rows corrections make


def correction_eval_row(correction: Correction, style: StyleProfile = NEUTRAL) -> dict[str, Any]:
    """An evaluation row made from ``correction``: its question, the corrected answer as the
    reference, the corrected answer line as the one key fact (an answer scores when it says what the
    correction says), the passages shown at the time as its sources. Kind and split are
    ``CORRECTION_KIND``, so the tuning and held-out splits stay as they were built.

    >>> c = Correction(7, "How long?", "en", "rag", "[]", "", "Answer: 30 days.\\nSource: [a.md]", "")
    >>> row = correction_eval_row(c)
    >>> row["id"], row["key_facts"], row["split"]
    ('en-c-7', ['30 days.'], 'correction')
    """
    line = answer_line(correction.corrected, correction.lang, style)
    paths = list(dict.fromkeys(h.chunk.path for h in correction.passage_hits()))
    return {
        "id": f"{correction.lang}-c-{correction.id}",
        "lang": correction.lang,
        "kind": CORRECTION_KIND,
        "question": correction.question,
        "reference": correction.corrected,
        "key_facts": [line] if line else [],
        "source": paths or None,
        "split": CORRECTION_KIND,
    }


@dataclass(frozen=True)
class SimilarCorrection:
    correction: Correction
    similarity: float


def _normalize_question(text: str) -> str:
    return " ".join(text.casefold().split())


class CorrectionStore:
    """Corrections in the SQLite file at ``path`` (created on first use). Safe to share between
    threads (one connection per operation) and processes (WAL + busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._lock = threading.Lock()
        self._local = threading.local()
        self._vectors: dict[tuple[int, str], np.ndarray] = {}
        self._vector_fn: EmbedFn | None = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened once per thread and process: opening and closing a
        WAL database per call costs a checkpoint each time)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except (OSError, sqlite3.Error) as e:
                raise CorrectionStoreError(
                    f"cannot open the corrections store {self.path} ({e}) — check the workspace folder"
                ) from e
            self._local.conn, self._local.pid = conn, os.getpid()
        try:
            if not self._ready:
                self._init(conn)
            yield conn
        except sqlite3.DatabaseError as e:
            raise CorrectionStoreError(
                f"the corrections store {self.path} failed ({e}) — check the file or move it aside"
            ) from e

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    def _init(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._ready:
                return
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("corrections store %s runs in %s mode, not WAL", self.path, mode)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._ready = True

    def add(
        self,
        *,
        question: str,
        mode: str,
        corrected: str,
        original: str = "",
        passages: Sequence[Hit] = (),
        lang: str | None = None,
    ) -> int:
        """Insert a correction and return its id (never replaces an existing row).

        Raises:
            DataError: the question or the corrected answer is empty.
            CorrectionStoreError: the database cannot be written.
        """
        if not question.strip() or not corrected.strip():
            raise DataError(
                "a correction needs a question and a non-empty corrected answer — type the corrected text"
            )
        lang = lang or detect_lang(question)
        passages_json = json.dumps([hit_to_json(h) for h in passages], ensure_ascii=False)
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO corrections (question, lang, mode, passages, original, corrected, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (question.strip(), lang, str(mode), passages_json, original, corrected.strip(), created),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            row_id = cur.lastrowid
        logger.info("stored correction %s (%s, mode %s)", row_id, lang, mode)
        return int(row_id or 0)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Correction]:
        if not self.path.is_file():
            return []
        with self._connect() as conn:
            return [Correction(*row) for row in conn.execute(sql, args).fetchall()]

    def all(self) -> list[Correction]:
        """Every correction, oldest first."""
        return self._rows(f"SELECT {_COLUMNS} FROM corrections ORDER BY id")

    def get(self, correction_id: int) -> Correction | None:
        found = self._rows(f"SELECT {_COLUMNS} FROM corrections WHERE id = ?", (correction_id,))
        return found[0] if found else None

    def count(self) -> int:
        if not self.path.is_file():
            return 0
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM corrections").fetchone()[0])

    def by_lang(self, lang: str) -> list[Correction]:
        return self._rows(f"SELECT {_COLUMNS} FROM corrections WHERE lang = ? ORDER BY id", (lang,))

    def _question_vectors(self, items: Sequence[Correction], embed_fn: EmbedFn) -> np.ndarray:
        """Embeddings of the stored questions, cached per (id, question) for one embed function."""
        with self._lock:
            if self._vector_fn is not embed_fn and self._vector_fn != embed_fn:
                self._vectors.clear()
                self._vector_fn = embed_fn
            missing = [c for c in items if (c.id, c.question) not in self._vectors]
        if missing:
            vecs = np.asarray(embed_fn([c.question for c in missing]), dtype=np.float32)
            with self._lock:
                for c, v in zip(missing, vecs, strict=True):
                    self._vectors[(c.id, c.question)] = v
        with self._lock:
            return np.stack([self._vectors[(c.id, c.question)] for c in items])

    def find_similar(
        self, question: str, embed_fn: EmbedFn, threshold: float, *, lang: str | None = None
    ) -> SimilarCorrection | None:
        """The stored correction whose question is closest to ``question`` (cosine of the
        embeddings, which ``embed_fn`` returns L2-normalised), in the same language, at or above
        ``threshold``; the newest wins ties. An identical question (case and spacing aside)
        matches with similarity 1.0 without embedding anything.
        """
        lang = lang or detect_lang(question)
        candidates = self.by_lang(lang)
        if not candidates or not question.strip():
            return None
        norm = _normalize_question(question)
        exact = [c for c in candidates if _normalize_question(c.question) == norm]
        if exact:
            return SimilarCorrection(exact[-1], 1.0)
        stored = self._question_vectors(candidates, embed_fn)
        query = np.asarray(embed_fn([question]), dtype=np.float32)[0]
        sims = stored @ query
        best = max(range(len(candidates)), key=lambda i: (round(float(sims[i]), 6), candidates[i].id))
        similarity = float(sims[best])
        if similarity < threshold:
            return None
        return SimilarCorrection(candidates[best], similarity)
