"""Embedding new chunks in file-aligned groups with a per-file checkpoint after each group, so an
interrupted indexing run resumes from the files it already embedded.

Checkpoints are ``<pending>/<content sha256>.npy`` (one array per file, written atomically); the
caller picks a ``pending`` folder per embedder-and-splitter identity and deletes it after commit.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from domain.atomic import write_bytes_atomic
from domain.progress import ProgressFn, no_progress
from domain.types import Chunk
from index.splitter import index_text

if TYPE_CHECKING:
    from domain.ports import Embedder

logger = logging.getLogger(__name__)


class FileChunks(Protocol):
    """One file's new chunks; ``vectors`` is filled in by ``embed_files``."""

    digest: str
    chunks: list[Chunk]
    vectors: np.ndarray | None


def clear_other_checkpoints(parent: Path, *, keep: Path) -> None:
    """Remove checkpoint folders made under other settings (their vectors no longer fit)."""
    if parent.is_dir():
        for p in parent.iterdir():
            if p != keep:
                shutil.rmtree(p, ignore_errors=True)


def embed_files(
    files: Sequence[FileChunks],
    embedder: Embedder,
    pending: Path,
    *,
    batch_size: int,
    batches_per_checkpoint: int,
    on_progress: ProgressFn = no_progress,
) -> tuple[int, int]:
    """Fill ``vectors`` of every file, reusing checkpoints. Files are grouped so that one
    ``embed_passages`` call covers about ``batch_size * batches_per_checkpoint`` chunks.

    Returns (files resumed from checkpoints, chunks embedded now).
    """
    resumed = 0
    todo: list[FileChunks] = []
    for f in files:
        saved = pending / f"{f.digest}.npy"
        if saved.is_file():
            try:
                vecs = np.load(saved)
                if vecs.shape == (len(f.chunks), embedder.dim):
                    f.vectors = vecs
                    resumed += 1
                    continue
            except (OSError, ValueError):
                logger.debug("ignoring unreadable checkpoint %s", saved)
        todo.append(f)
    total = sum(len(f.chunks) for f in todo)
    group_size = max(1, batch_size * batches_per_checkpoint)
    done = 0
    on_progress(0, total, "embedding")
    group: list[FileChunks] = []
    for i, f in enumerate(todo):
        group.append(f)
        if sum(len(g.chunks) for g in group) < group_size and i + 1 < len(todo):
            continue
        texts = [index_text(c) for g in group for c in g.chunks]

        def report(d: int, _t: int, _m: str = "", offset: int = done) -> None:
            on_progress(offset + d, total, "embedding")

        vecs = embedder.embed_passages(texts, batch_size=batch_size, on_progress=report)
        row = 0
        for g in group:
            g.vectors = np.asarray(vecs[row : row + len(g.chunks)], dtype=np.float32)
            row += len(g.chunks)
            buf = io.BytesIO()
            np.save(buf, g.vectors)
            write_bytes_atomic(pending / f"{g.digest}.npy", buf.getvalue())
        done += len(texts)
        group = []
    return resumed, total
