"""Reading and splitting in a worker process while the main process embeds (index.reader and
index.sync): the same chunks as in-process, checkpoints and resume, cancellation stops the worker,
and a worker that dies or counts differently hands over to in-process reading."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import pytest

from index import store
from index.bm25 import TOKENIZER_VERSION
from index.loaders import scan_folder
from index.reader import FileReader, TokenizerFileCounter, portable_counter
from index.splitter import SplitterSettings
from index.sync import SyncOptions, sync_folder
from tests.fakes_index import FakeEmbedder

SPLIT = SplitterSettings(32, 0.15)


def _folder(root: Path, files: int = 30) -> Path:
    docs = root / "docs"
    docs.mkdir()
    for i in range(files):
        body = " ".join(f"Item {i} rule {j} applies to every team." for j in range(12))
        (docs / f"note{i:02d}.md").write_text(
            f"# Note {i}\n\n{body}\n\n## More\n\n{body}\n", encoding="utf-8"
        )
    (docs / "page.html").write_text(
        "<html><body><nav>Home</nav><h1>Page</h1><p>Leave is fifteen days.</p></body></html>",
        encoding="utf-8",
    )
    (docs / "empty.txt").write_text("   \n", encoding="utf-8")
    (docs / "broken.md").write_bytes(b"\x00\x01\x02\x03" * 100)
    return docs


def _chunks(idx: Path) -> list[tuple[str, str, str, int, int]]:
    emb = FakeEmbedder()
    loaded = store.open_index(
        idx, embedder_name=emb.name, dim=emb.dim, splitter=SPLIT.identity(), tokenizer=TOKENIZER_VERSION
    )
    return [(c.chunk_id, c.path, c.text, c.start, c.end) for c in loaded.chunks]


def _no_reader_left() -> None:
    assert [p for p in multiprocessing.active_children() if p.name == "hybrid-index-reader"] == []


def test_worker_gives_the_same_index_as_in_process(tmp_path: Path) -> None:
    docs = _folder(tmp_path)
    sources, _ = scan_folder(docs, max_file_bytes=10**6)
    with FileReader(sources, {}, embedder=FakeEmbedder(), settings=SPLIT, mode="process") as reader:
        assert reader.in_worker
        assert [r.source.path for r in reader] == [s.path for s in sources]
    reports = {}
    for mode in ("inline", "process"):
        events: list[tuple[int, int, str]] = []
        reports[mode] = sync_folder(
            docs,
            tmp_path / mode,
            embedder=FakeEmbedder(),
            splitter=SPLIT,
            options=SyncOptions(batch_size=4, batches_per_checkpoint=2, reader=mode),
            on_progress=lambda d, t, m="", ev=events: ev.append((d, t, m)),
        )
        embedding = [(d, t) for d, t, m in events if m == "embedding"]
        assert embedding and embedding[-1][0] == embedding[-1][1] == reports[mode].chunks_embedded
        assert all(d <= t for d, t in embedding)
    assert _chunks(tmp_path / "inline") == _chunks(tmp_path / "process")
    a, b = reports["inline"], reports["process"]
    assert (a.files_indexed, a.chunks_total, a.skipped) == (b.files_indexed, b.chunks_total, b.skipped)
    assert {s.path: s.reason for s in b.skipped} == {"broken.md": "binary", "empty.txt": "no_text"}
    _no_reader_left()


def test_worker_run_resumes_from_checkpoints_after_a_stop(tmp_path: Path) -> None:
    docs = _folder(tmp_path)
    idx = tmp_path / "idx"
    opts = SyncOptions(batch_size=2, batches_per_checkpoint=1, reader="process")

    class Stop(Exception):
        pass

    def stop_early(done: int, _total: int, message: str = "") -> None:
        if message == "embedding" and done >= 30:
            raise Stop

    with pytest.raises(Stop):
        sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT, options=opts, on_progress=stop_early)
    _no_reader_left()  # the worker was stopped with the run
    assert store.current_generation(idx) is None
    emb = FakeEmbedder()
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=opts)
    assert r.files_resumed >= 2
    assert r.chunks_embedded == emb.passages_embedded < r.chunks_total
    again = sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT, options=opts)
    assert not again.changed and again.files_unchanged == r.files_indexed


class _DiesInWorker(FakeEmbedder):
    """Counts like FakeEmbedder, but its counter kills the process it runs in unless that is the
    test's own: the worker dies after its probe check, on the first file's text."""

    def __init__(self) -> None:
        super().__init__()
        self.home = os.getpid()

    def count_tokens(self, text: str) -> int:
        if os.getpid() != self.home and "Item" in text:
            os._exit(3)
        return super().count_tokens(text)


class _CountsOtherwiseInWorker(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.home = os.getpid()

    def count_tokens(self, text: str) -> int:
        return super().count_tokens(text) + (os.getpid() != self.home)


@pytest.mark.parametrize("embedder_type", [_DiesInWorker, _CountsOtherwiseInWorker])
def test_reading_moves_in_process_when_the_worker_cannot_go_on(tmp_path: Path, embedder_type: type) -> None:
    docs = _folder(tmp_path, files=6)
    inline = sync_folder(
        docs,
        tmp_path / "inline",
        embedder=FakeEmbedder(),
        splitter=SPLIT,
        options=SyncOptions(reader="inline"),
    )
    r = sync_folder(
        docs,
        tmp_path / "idx",
        embedder=embedder_type(),
        splitter=SPLIT,
        options=SyncOptions(reader="process"),
    )
    assert (r.files_indexed, r.chunks_total) == (inline.files_indexed, inline.chunks_total)
    assert _chunks(tmp_path / "idx") == _chunks(tmp_path / "inline")
    _no_reader_left()


def test_unchanged_files_are_not_split_again_in_the_worker(tmp_path: Path) -> None:
    docs = _folder(tmp_path, files=4)
    idx = tmp_path / "idx"
    opts = SyncOptions(reader="process")
    sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT, options=opts)
    (docs / "note01.md").write_text("# Changed\n\nNew text.\n", encoding="utf-8")
    emb = FakeEmbedder()
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=opts)
    assert (r.files_changed, r.files_unchanged, r.chunks_embedded) == (1, 4, 1)


def test_tokenizer_json_is_the_portable_counter(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "leave", "is", "fifteen", "days"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))

    class FolderEmbedder(FakeEmbedder):
        path = tmp_path

        def count_tokens(self, text: str) -> int:
            return len(tok.encode(text).ids)

    counter = portable_counter(FolderEmbedder())
    assert isinstance(counter, TokenizerFileCounter)
    clone = pickle.loads(pickle.dumps(counter))
    assert clone("leave is fifteen days, unknown") == FolderEmbedder().count_tokens(
        "leave is fifteen days, unknown"
    )
    assert len(pickle.dumps(counter)) < 1000


def test_a_counter_that_does_not_pickle_keeps_reading_in_process(tmp_path: Path) -> None:
    import threading

    class Locked(FakeEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    assert portable_counter(Locked()) is None
    docs = _folder(tmp_path, files=2)
    sources, _ = scan_folder(docs, max_file_bytes=10**6)
    with FileReader(sources, {}, embedder=Locked(), settings=SPLIT, mode="process") as reader:
        assert not reader.in_worker
        assert len(list(reader)) == len(sources)
