"""SIGKILL an indexing process mid-run: the previous index still loads, and a re-run completes
(resuming from the embeddings checkpointed before the kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from index import store
from index.bm25 import TOKENIZER_VERSION
from index.splitter import SplitterSettings
from index.sync import SyncOptions, sync_folder
from tests.fakes_index import FakeEmbedder

REPO = Path(__file__).resolve().parents[1]
SPLIT = SplitterSettings(32, 0.15)
OPTS = SyncOptions(batch_size=1, batches_per_checkpoint=1)

CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from index.splitter import SplitterSettings
from index.sync import SyncOptions, sync_folder
from tests.fakes_index import FakeEmbedder

marker = Path({marker!r})

def on_progress(done, total, message=""):
    if message == "embedding" and done >= 3:
        marker.touch()

sync_folder({docs!r}, Path({idx!r}), embedder=FakeEmbedder(delay_s=0.3),
            splitter=SplitterSettings(32, 0.15), options=SyncOptions(batch_size=1, batches_per_checkpoint=1),
            on_progress=on_progress)
print("finished")
"""


def _open(idx: Path) -> store.LoadedIndex:
    emb = FakeEmbedder()
    return store.open_index(
        idx, embedder_name=emb.name, dim=emb.dim, splitter=SPLIT.identity(), tokenizer=TOKENIZER_VERSION
    )


def test_sigkill_mid_run_keeps_previous_index_and_rerun_completes(tmp_path: Path) -> None:
    docs, idx, marker = tmp_path / "docs", tmp_path / "idx", tmp_path / "embedding-started"
    docs.mkdir()
    (docs / "base.md").write_text("# Base\n\nThe first document.\n", encoding="utf-8")
    first = sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT, options=OPTS)
    for i in range(40):
        (docs / f"note{i:02d}.md").write_text(f"# Note {i}\n\nItem {i} costs {i} euros.\n", encoding="utf-8")
    script = CHILD.format(repo=str(REPO), marker=str(marker), docs=str(docs), idx=str(idx))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.stderr.read().decode() if child.poll() is not None else "no progress"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL

    old = _open(idx)
    assert old.generation == first.generation
    assert [c.path for c in old.chunks] == ["base.md"]

    emb = FakeEmbedder()
    r = sync_folder(docs, idx, embedder=emb, splitter=SPLIT, options=OPTS)
    assert r.files_new == 40
    assert r.files_resumed >= 2  # checkpoints written before the marker appeared
    assert r.chunks_embedded == emb.passages_embedded == 40 - r.files_resumed
    done = _open(idx)
    assert len(done.chunks) == 41
    assert sorted(p.name for p in idx.iterdir()) == [".lock", "CURRENT", r.generation]
