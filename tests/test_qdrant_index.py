"""Qdrant as the vector side of an index (in-process, fake embedder): its hybrid query ranks as the
FAISS + BM25 retriever does, Chinese questions go through the project's tokenizer, a collection
moves to Qdrant and back keeping every chunk and vector, and failures are one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from domain.errors import IndexStoreError
from domain.types import Chunk
from index import store
from index.bm25 import TOKENIZER_VERSION, BM25Index, tokenize
from index.hybrid import FusionSettings, HybridRetriever
from index.move import move_vectors
from index.qdrant_retriever import QdrantRetriever
from index.qdrant_store import DENSE, QdrantServer, QdrantStore, close_local
from index.qdrant_writer import QdrantWriter
from index.splitter import SplitterSettings
from index.sync import SyncOptions, sync_folder
from index.vector_store import VectorStore
from tests.fakes_index import FakeEmbedder
from tests.test_index_sync import write_corpus

SPLIT = SplitterSettings(32, 0.15)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there

CORPUS = [
    ("leave.md", "en", "Employees get fifteen days of annual leave per year."),
    ("leave.md", "en", "Up to five unused leave days carry over to the next year."),
    ("travel.md", "en", "Submit travel expenses within ten days of returning from a trip."),
    ("hotel.md", "en", "Hotels are capped at 150 EUR a night in every city."),
    ("sensor.md", "en", "Error E-417 on the LT-350 means the humidity sensor is not responding."),
    ("disk.md", "en", "When the disk alert fires, free space on the data volume first."),
    ("年假.md", "zh", "员工每年有十五天年假，未休完的年假可以结转五天。"),
    ("报销.md", "zh", "出差费用需要在十天内报销，超过期限需要主管批准。"),
    ("病假.md", "zh", "病假需要医生证明，每年最多八天带薪病假。"),
    ("屏幕.md", "zh", "LT-350 屏幕显示 E-417 时请先晾干传感器再重启。"),
]
QUESTIONS = [
    "How many days of annual leave do employees get?",
    "hotels capped per night in EUR",
    "What does error E-417 mean on the LT-350?",
    "年假有多少天？",
    "出差费用多久内报销",
    "LT-350 屏幕显示 E-417，应该怎么处理？",
    "disk alert data volume",
    "病假",
    "nothing here matches zzz",
]


def _chunks() -> list[Chunk]:
    return [
        Chunk(f"c{i}", path, "", "", text, 0, len(text), lang=lang)
        for i, (path, lang, text) in enumerate(CORPUS)
    ]


@pytest.fixture()
def pair(tmp_path: Path):
    """The FAISS + BM25 retriever and the in-process Qdrant one over the same chunks and vectors."""
    emb = FakeEmbedder()
    chunks = _chunks()
    vectors = emb.embed_passages([c.text for c in chunks])
    bm25 = BM25Index.build([tokenize(c.text) for c in chunks])
    writer = QdrantWriter(chunks=chunks, vectors=vectors, bm25=bm25, server=None, label="t")
    writer.save(tmp_path)
    qstore = QdrantStore.open(tmp_path, writer.entry, None)

    def make(**fusion: object) -> tuple[HybridRetriever, QdrantRetriever]:
        settings = FusionSettings(**fusion)  # type: ignore[arg-type]
        faiss = HybridRetriever(
            chunks=chunks,
            vectors=VectorStore.build(vectors, ann_threshold=1000),
            bm25=bm25,
            embedder=emb,
            fusion=settings,
        )
        return faiss, QdrantRetriever(chunks=chunks, store=qstore, bm25=bm25, embedder=emb, fusion=settings)

    yield make
    close_local(tmp_path / "qdrant")


def _same_hits(a: list, b: list) -> None:
    assert [h.chunk.chunk_id for h in b] == [h.chunk.chunk_id for h in a]
    assert [h.rank for h in b] == [h.rank for h in a]
    assert [h.score for h in b] == pytest.approx([h.score for h in a], rel=1e-5)
    assert [h.bm25_score for h in b] == pytest.approx([h.bm25_score for h in a], rel=1e-5)
    assert [h.dense_score for h in b] == pytest.approx([h.dense_score for h in a], abs=1e-5)


@pytest.mark.parametrize("method", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize(
    "fusion", [{}, {"max_per_doc": 0}, {"language_pools": False}, {"coverage_power": 0.0}]
)
def test_qdrant_ranks_as_faiss_and_bm25_do(pair, method: str, fusion: dict) -> None:
    faiss, qdrant = pair(**fusion)
    for got, want in zip(
        qdrant.search_many(QUESTIONS, k=4, method=method),
        faiss.search_many(QUESTIONS, k=4, method=method),
        strict=True,
    ):
        _same_hits(want, got)


def test_clear_answers_come_first_in_both(pair) -> None:
    faiss, qdrant = pair()
    expected = {
        "hotels capped per night in EUR": "hotel.md",
        "What does error E-417 mean on the LT-350?": "sensor.md",
        "disk alert data volume": "disk.md",
    }
    for question, path in expected.items():
        assert qdrant.search(question, k=3)[0].chunk.path == path
        assert faiss.search(question, k=3)[0].chunk.path == path


def test_a_chinese_question_goes_through_the_cjk_tokenizer(pair) -> None:
    _, qdrant = pair()
    question = "未休完的年假可以结转吗"
    assert {"结转", "可以", "年", "假", "结", "转"} <= set(tokenize(question))  # words and characters
    hits = qdrant.search(question, k=3)
    assert hits[0].chunk.path == "年假.md"
    assert hits[0].bm25_score == pytest.approx(float(qdrant.bm25.scores(question)[6]), rel=1e-5)
    assert hits[0].bm25_score > 0
    # a Chinese question about product codes also finds the English chunk with those codes
    found = [h.chunk.path for h in qdrant.search("LT-350 屏幕显示 E-417，应该怎么处理？", k=3)]
    assert {"屏幕.md", "sensor.md"} <= set(found)


def _open(idx: Path, emb: FakeEmbedder, server: QdrantServer | None = None) -> store.LoadedIndex:
    return store.open_index(
        idx,
        embedder_name=emb.name,
        dim=emb.dim,
        splitter=SPLIT.identity(),
        tokenizer=TOKENIZER_VERSION,
        qdrant=server,
    )


def test_move_to_qdrant_keeps_every_chunk_and_vector_and_back(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    before_gen = store.current_generation(idx)
    assert before_gen is not None
    chunks, vectors = store.read_chunks(before_gen), store.read_vectors(before_gen)
    faiss_hits = _open(idx, emb).retriever(emb).search("年假", k=3)

    report = move_vectors(idx, to="qdrant")
    assert (report.moved_from, report.moved_to, report.location) == ("faiss", "qdrant", "path")
    assert report.chunks == report.vectors == len(chunks)
    gen = store.current_generation(idx)
    assert gen is not None and gen != before_gen and not before_gen.exists()
    assert (gen / "qdrant").is_dir() and not (gen / "faiss.index").exists()
    assert store.read_chunks(gen) == chunks
    assert np.array_equal(store.read_vectors(gen), vectors)  # the source of truth stays
    loaded = _open(idx, emb)
    assert isinstance(loaded.store, QdrantStore)
    assert loaded.store.size == len(chunks)
    stored = loaded.store.vectors(list(range(len(chunks))), [DENSE])
    assert np.array_equal(np.array([stored[i][DENSE] for i in range(len(chunks))], np.float32), vectors)
    retriever = loaded.retriever(emb)
    assert isinstance(retriever, QdrantRetriever)
    _same_hits(faiss_hits, retriever.search("年假", k=3))

    # a later sync keeps the collection in Qdrant
    (docs / "travel.txt").write_text("Travel\n\nHotels are capped at 150 EUR a night.\n", encoding="utf-8")
    synced = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert synced.ann["kind"] == "qdrant"
    again = _open(idx, emb)
    assert isinstance(again.store, QdrantStore)
    assert again.retriever(emb).search("hotels capped at 150 EUR", k=1)[0].chunk.path == "travel.txt"

    back = move_vectors(idx, to="faiss")
    assert (back.moved_from, back.moved_to, back.chunks) == ("qdrant", "faiss", len(again.chunks))
    assert not isinstance(_open(idx, emb).store, QdrantStore)
    close_local()


def test_an_unreachable_server_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    before = store.current_generation(idx)
    with pytest.raises(IndexStoreError) as e:
        move_vectors(idx, to="qdrant", qdrant=QdrantServer(url=UNREACHABLE, timeout_s=2))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"Qdrant at {UNREACHABLE} failed (")
    assert "HYBRID_QDRANT__URL" in message
    assert store.current_generation(idx) == before
    assert _open(idx, emb).retriever(emb).search("年假", k=1)[0].chunk.path == "年假 说明.txt"
    with pytest.raises(IndexStoreError, match="^Qdrant at "):
        move_vectors(idx, to="qdrant", qdrant=QdrantServer(url="not a url", timeout_s=2))
    assert store.current_generation(idx) == before


def test_missing_storage_and_missing_client_are_one_line(tmp_path: Path, monkeypatch) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=SyncOptions())
    move_vectors(idx, to="qdrant")
    gen = store.current_generation(idx)
    assert gen is not None
    close_local(gen / "qdrant")
    import shutil

    shutil.rmtree(gen / "qdrant")
    with pytest.raises(IndexStoreError, match="holds no Qdrant storage — move the collection again"):
        _open(idx, emb)
    monkeypatch.setitem(sys.modules, "qdrant_client", None)
    with pytest.raises(IndexStoreError, match="^qdrant-client is not installed — run `make install`"):
        move_vectors(idx, to="qdrant")
    assert store.current_generation(idx) == gen


def test_moving_an_index_that_is_not_there_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="has no index to move — build it with `hybrid index PATH"):
        move_vectors(tmp_path / "coll" / "index", to="qdrant")


def test_the_cli_moves_a_collection_and_search_answers_from_qdrant(
    cli_env: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from app.cli import main
    from app.wiring.index import clear_index_cache

    docs = write_corpus(cli_env / "docs")
    assert main(["index", str(docs), "--collection", "docs", "--json", str(cli_env / "i.json")]) == 0
    faiss_file, qdrant_file = cli_env / "faiss.json", cli_env / "qdrant.json"
    assert main(["search", "年假", "--collection", "docs", "--json", str(faiss_file)]) == 0
    assert main(["index", "--collection", "docs"]) == 2
    assert "error: name the folder to index" in capsys.readouterr().err

    monkeypatch.setenv("HYBRID_QDRANT__URL", UNREACHABLE)
    monkeypatch.setenv("HYBRID_QDRANT__TIMEOUT_S", "2")
    assert main(["index", "--to-qdrant", "--collection", "docs"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: Qdrant at {UNREACHABLE} failed (")

    monkeypatch.delenv("HYBRID_QDRANT__URL")
    moved = cli_env / "move.json"
    assert main(["index", "--to-qdrant", "--collection", "docs", "--json", str(moved)]) == 0
    report = json.loads(moved.read_text(encoding="utf-8"))
    assert (report["moved_from"], report["moved_to"], report["location"]) == ("faiss", "qdrant", "path")
    synced = cli_env / "sync.json"
    assert main(["index", str(docs), "--collection", "docs", "--to-qdrant", "--json", str(synced)]) == 0
    again = json.loads(synced.read_text(encoding="utf-8"))  # already there: the sync's report, no move
    assert (again["changed"], again["generation"], again["ann"]["kind"]) == (
        False,
        report["generation"],
        "qdrant",
    )
    clear_index_cache()
    assert main(["search", "年假", "--collection", "docs", "--json", str(qdrant_file)]) == 0
    want = json.loads(faiss_file.read_text(encoding="utf-8"))["hits"]
    got = json.loads(qdrant_file.read_text(encoding="utf-8"))["hits"]
    assert [h["chunk_id"] for h in got] == [h["chunk_id"] for h in want]
    assert [h["bm25_score"] for h in got] == pytest.approx([h["bm25_score"] for h in want], abs=1e-3)
    assert [h["dense_score"] for h in got] == pytest.approx([h["dense_score"] for h in want], abs=1e-3)
    assert main(["index", "--to-faiss", "--collection", "docs"]) == 0
    assert "moved from qdrant to faiss" in capsys.readouterr().out
    close_local()


TRANSLATED = {
    "年假有多少天？": {"en": "How many days of annual leave?"},
    "How many days of annual leave do employees get?": {"zh": "员工有多少天年假？"},
    "LT-350 屏幕显示 E-417，应该怎么处理？": {"en": "What to do when the LT-350 shows E-417?"},
}


@pytest.mark.parametrize("fusion", [{}, {"max_per_doc": 0}, {"language_pools": False}])
def test_qdrant_ranks_translated_questions_as_faiss_does(pair, fusion: dict) -> None:
    faiss, qdrant = pair(**fusion)
    for question, translations in TRANSLATED.items():
        _same_hits(
            faiss.search(question, k=4, translations=translations),
            qdrant.search(question, k=4, translations=translations),
        )
