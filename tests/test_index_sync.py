"""Incremental sync, manifest checks and crash safety of index.sync / index.store (fake embedder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.errors import IndexMismatchError, IndexStoreError
from index import store
from index.bm25 import TOKENIZER_VERSION
from index.splitter import SplitterSettings
from index.sync import SyncOptions, sync_folder
from tests.fakes_index import FakeEmbedder

SPLIT = SplitterSettings(32, 0.15)


def write_corpus(root: Path) -> Path:
    (root / "hr").mkdir(parents=True, exist_ok=True)
    (root / "hr" / "leave.md").write_text(
        "# Annual leave\n\nEmployees get fifteen days of annual leave per year.\n\n"
        "## Carry over\n\nUp to five unused days carry over to the next year.\n",
        encoding="utf-8",
    )
    (root / "travel.txt").write_text(
        "Travel\n\nSubmit travel expenses within ten days of returning.\n", encoding="utf-8"
    )
    (root / "年假 说明.txt").write_text("员工每年有十五天年假。病假需要医生证明。\n", encoding="gbk")
    return root


def _open(index_dir: Path, emb: FakeEmbedder, split: SplitterSettings = SPLIT) -> store.LoadedIndex:
    return store.open_index(
        index_dir, embedder_name=emb.name, dim=emb.dim, splitter=split.identity(), tokenizer=TOKENIZER_VERSION
    )


def test_build_then_unchanged_embeds_nothing(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    first = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert (first.files_new, first.files_indexed, first.changed) == (3, 3, True)
    assert first.chunks_embedded == first.chunks_total == emb.passages_embedded
    again = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert (again.changed, again.chunks_embedded, again.files_unchanged) == (False, 0, 3)
    assert again.generation == first.generation
    assert emb.passages_embedded == first.chunks_total
    loaded = _open(idx, emb)
    assert sorted({c.path for c in loaded.chunks}) == ["hr/leave.md", "travel.txt", "年假 说明.txt"]
    for c in loaded.chunks:
        assert c.text.strip()
    top = loaded.retriever(emb).search("年假", k=1)[0]
    assert top.chunk.path == "年假 说明.txt"


def test_editing_one_file_reembeds_only_its_chunks(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    before = _open(idx, emb)
    kept_ids = [c.chunk_id for c in before.chunks if c.path != "travel.txt"]
    (docs / "travel.txt").write_text("Travel\n\nHotels are capped at 150 EUR a night.\n", encoding="utf-8")
    emb.passages_embedded = 0
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    after = _open(idx, emb)
    travel = [c for c in after.chunks if c.path == "travel.txt"]
    assert (r.files_changed, r.files_unchanged, r.files_new) == (1, 2, 0)
    assert r.chunks_embedded == emb.passages_embedded == len(travel)
    assert [c.chunk_id for c in after.chunks if c.path != "travel.txt"] == kept_ids
    # vectors of kept chunks are carried over unchanged, rows realigned
    gen = store.current_generation(idx)
    assert gen is not None
    vecs = store.read_vectors(gen)
    rows = [i for i, c in enumerate(after.chunks) if c.path == "hr/leave.md"]
    texts = [c for c in after.chunks if c.path == "hr/leave.md"]
    from index.splitter import index_text

    assert np.allclose(vecs[rows], FakeEmbedder().embed_passages([index_text(c) for c in texts]))
    assert after.retriever(emb).search("hotels capped at 150 EUR", k=1)[0].chunk.path == "travel.txt"


def test_deleted_files_are_dropped(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    (docs / "travel.txt").unlink()
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert (r.files_deleted, r.chunks_embedded, r.files_indexed) == (1, 0, 2)
    assert "travel.txt" not in {c.path for c in _open(idx, emb).chunks}
    assert [p.name for p in idx.iterdir() if p.name.startswith("gen-")] == [r.generation]


def test_other_embedder_or_splitter_is_a_mismatch(tmp_path: Path) -> None:
    docs, idx = write_corpus(tmp_path / "docs"), tmp_path / "idx"
    sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT)
    with pytest.raises(IndexMismatchError) as err:
        _open(idx, FakeEmbedder(name="other", dim=64))
    assert "embedder fake-ngram/64, settings say other/64" in str(err.value)
    assert f"run `hybrid index {docs.resolve()} --collection idx --rebuild`" in str(err.value)
    with pytest.raises(IndexMismatchError, match="chunks of 32 tokens"):
        sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SplitterSettings(64, 0.15))
    r = sync_folder(
        docs,
        idx,
        embedder=FakeEmbedder(),
        splitter=SplitterSettings(64, 0.15),
        options=SyncOptions(rebuild=True),
    )
    assert (r.files_new, r.chunks_embedded) == (3, r.chunks_total)
    _open(idx, FakeEmbedder(), SplitterSettings(64, 0.15))


def test_an_index_split_by_older_code_is_read_again_without_asking(tmp_path, monkeypatch, caplog) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    monkeypatch.setattr("index.splitter.SPLITTER_VERSION", 1)
    old = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError, match=r"splitter v1\), settings say 32 with 5 \(v\d") as e:
        _open(idx, emb)  # answering from it is refused until it is synced
    assert "--rebuild" not in str(e.value) and "unchanged passages keep their vectors" in str(e.value)
    with caplog.at_level("WARNING", logger="index.sync"):
        new = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert "split by splitter v1" in caplog.text
    # every file read again; a chunk whose embedded text is unchanged keeps its vector
    assert (new.files_changed, new.files_unchanged, new.chunks_embedded) == (3, 0, 0)
    assert new.generation != old.generation
    _open(idx, emb)
    # a file edited meanwhile is embedded again; the others keep their vectors
    monkeypatch.setattr("index.splitter.SPLITTER_VERSION", 1)
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=SyncOptions(rebuild=True))
    monkeypatch.undo()
    (docs / "travel.txt").write_text("Travel\n\nSubmit travel expenses within five days.\n", encoding="utf-8")
    (docs / "年假 说明.txt").unlink()
    counted = emb.passages_embedded
    edited = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert (edited.files_changed, edited.files_deleted) == (2, 1)
    travel = [c for c in _open(idx, emb).chunks if c.path == "travel.txt"]
    assert edited.chunks_embedded == emb.passages_embedded - counted == len(travel)
    fresh_idx = tmp_path / "fresh"
    sync_folder(docs, fresh_idx, embedder=emb, splitter=SPLIT)
    assert [c.text for c in _open(idx, emb).chunks] == [c.text for c in _open(fresh_idx, emb).chunks]
    reused, fresh = (store.read_vectors(store.current_generation(d)) for d in (idx, fresh_idx))
    np.testing.assert_allclose(reused, fresh, atol=1e-6)
    # an older version with other chunk settings is still a mismatch, not a silent rebuild
    monkeypatch.setattr("index.splitter.SPLITTER_VERSION", 1)
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=SyncOptions(rebuild=True))
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError, match="chunks of 32 tokens"):
        sync_folder(docs, idx, embedder=emb, splitter=SplitterSettings(64, 0.15))


def test_an_older_index_with_unreadable_vectors_is_embedded_again(tmp_path, monkeypatch) -> None:
    """Vectors to take back that cannot be read cost a re-embedding, never the run."""
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    monkeypatch.setattr("index.splitter.SPLITTER_VERSION", 1)
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    monkeypatch.undo()
    (store.current_generation(idx) / "vectors.npy").write_bytes(b"not an array")
    again = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert again.chunks_embedded == again.chunks_total > 0
    assert len(_open(idx, emb).chunks) == again.chunks_total


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="hybrid index PATH --collection nothing"):
        _open(tmp_path / "nothing", FakeEmbedder())


class _FailingEmbedder(FakeEmbedder):
    """Raises after ``fail_after`` embed_passages calls, like a crash mid-run."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def embed_passages(self, texts, *, batch_size=32, **_ignored):  # type: ignore[override]
        if self.passage_calls >= self.fail_after:
            raise RuntimeError("power cut")
        return super().embed_passages(texts, batch_size=batch_size)


def test_interrupted_run_keeps_old_index_and_resumes(tmp_path: Path) -> None:
    docs, idx = write_corpus(tmp_path / "docs"), tmp_path / "idx"
    first = sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT)
    for i in range(6):
        (docs / f"new{i}.md").write_text(f"# Note {i}\n\nItem {i} costs {i * 10} euros.\n", encoding="utf-8")
    opts = SyncOptions(batch_size=1, batches_per_checkpoint=1)  # one checkpoint per file here
    with pytest.raises(RuntimeError, match="power cut"):
        sync_folder(docs, idx, embedder=_FailingEmbedder(fail_after=3), splitter=SPLIT, options=opts)
    old = _open(idx, FakeEmbedder())
    assert old.generation == first.generation
    assert len(old.chunks) == first.chunks_total
    emb = FakeEmbedder()
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=opts)
    assert (r.files_new, r.files_resumed) == (6, 3)
    assert r.chunks_embedded == emb.passages_embedded == 3
    assert not (idx / "pending").exists()
    assert len(_open(idx, emb).chunks) == first.chunks_total + 6


def test_stale_temp_generation_is_cleaned(tmp_path: Path) -> None:
    docs, idx, emb = write_corpus(tmp_path / "docs"), tmp_path / "idx", FakeEmbedder()
    sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    (idx / ".gen-000002.tmp-999").mkdir()
    (idx / "gen-000007").mkdir()
    (docs / "travel.txt").write_text("changed\n", encoding="utf-8")
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT)
    assert r.generation == "gen-000002"
    assert sorted(p.name for p in idx.iterdir()) == [".lock", "CURRENT", "gen-000002"]


def test_concurrent_run_is_refused(tmp_path: Path) -> None:
    docs, idx = write_corpus(tmp_path / "docs"), tmp_path / "idx"
    with store.locked(idx), pytest.raises(IndexStoreError, match="another `hybrid index` run is writing"):
        sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT)
    assert sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT).files_new == 3
