"""The corrections store: inserts never overwrite, WAL mode, passages round-trip, the near-duplicate
lookup (same language only, threshold, newest wins), and two processes writing 500 rows each at
the same time leaving 1000 rows."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from domain.corrections import CorrectionStore
from domain.errors import DataError
from tests.fakes_answer import SAMPLE_CHUNKS, FakeQuestionEmbedder, make_hit

HITS = [make_hit(SAMPLE_CHUNKS[0], 1, dense=0.83, bm25=9.0), make_hit(SAMPLE_CHUNKS[1], 2, dense=0.7)]


def test_add_and_read_back(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "feedback.sqlite")
    cid = store.add(
        question="How long is annual leave?",
        mode="rag",
        original="I am not sure.",
        corrected="Conclusion: 15 days.",
        passages=HITS,
    )
    rec = store.get(cid)
    assert rec is not None
    assert (rec.id, rec.question, rec.lang, rec.mode, rec.original, rec.corrected) == (
        1,
        "How long is annual leave?",
        "en",
        "rag",
        "I am not sure.",
        "Conclusion: 15 days.",
    )
    assert rec.passage_hits() == HITS
    assert rec.created_at.endswith("+00:00")
    assert store.count() == 1


def test_wal_mode_and_busy_timeout(tmp_path) -> None:
    path = tmp_path / "feedback.sqlite"
    CorrectionStore(path).add(question="q?", mode="prompt", corrected="a")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_insert_never_overwrites(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "f.sqlite")
    a = store.add(question="Same question?", mode="rag", corrected="first")
    b = store.add(question="Same question?", mode="rag", corrected="second")
    assert (a, b) == (1, 2)
    assert [c.corrected for c in store.all()] == ["first", "second"]


def test_empty_correction_is_refused(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "f.sqlite")
    with pytest.raises(DataError, match="non-empty corrected answer"):
        store.add(question="q?", mode="rag", corrected="  ")
    assert store.count() == 0


def test_reading_a_missing_store_creates_nothing(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "none.sqlite")
    assert (store.all(), store.count()) == ([], 0)
    assert not (tmp_path / "none.sqlite").exists()


def test_find_similar_near_duplicate_same_language_newest_wins(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "f.sqlite")
    embed = FakeQuestionEmbedder()
    store.add(question="How many annual leave days do I get?", mode="rag", corrected="old")
    store.add(question="How many annual leave days do I get?", mode="rag", corrected="new")
    store.add(question="年假有几天？", mode="rag", corrected="十五天")
    found = store.find_similar("how many annual leave days do I get", embed, 0.92)
    assert found is not None
    assert (found.correction.corrected, round(found.similarity, 4)) == ("new", 1.0)
    assert store.find_similar("Who approves travel for interns?", embed, 0.92) is None
    zh = store.find_similar("年假有几天", embed, 0.92)
    assert zh is not None and zh.correction.corrected == "十五天"


def test_exact_question_matches_without_embedding(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "f.sqlite")
    embed = FakeQuestionEmbedder()
    store.add(question="How long is annual leave?", mode="rag", corrected="15 days")
    found = store.find_similar("  how long is ANNUAL leave? ", embed, 0.99)
    assert found is not None and found.similarity == 1.0
    assert embed.texts_embedded == 0


def test_stored_question_vectors_are_cached(tmp_path) -> None:
    store = CorrectionStore(tmp_path / "f.sqlite")
    embed = FakeQuestionEmbedder()
    for q in ("How long is annual leave?", "Who signs travel requests?"):
        store.add(question=q, mode="rag", corrected="x")
    store.find_similar("annual leave length", embed, 0.5)
    store.find_similar("travel request signer", embed, 0.5)
    assert embed.texts_embedded == 2 + 1 + 1  # stored questions once, then each query


def _write_many(path: str, worker: int, n: int) -> None:
    store = CorrectionStore(path)
    for i in range(n):
        store.add(
            question=f"worker {worker} question {i}?", mode="rag", corrected=f"answer {i}", passages=HITS[:1]
        )


def test_two_processes_writing_500_each_leave_1000_rows(tmp_path) -> None:
    path = str(tmp_path / "feedback.sqlite")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(path, w, 500)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    rows = CorrectionStore(path).all()
    assert len(rows) == 1000
    assert len({r.id for r in rows}) == 1000
    for w in (1, 2):
        assert sorted(
            int(r.question.split()[3].rstrip("?")) for r in rows if r.question.startswith(f"worker {w} ")
        ) == list(range(500))
