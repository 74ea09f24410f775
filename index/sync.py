"""Building and incrementally syncing an index from a folder: unchanged files (same content hash)
keep their chunks and vectors, new and changed files are split and embedded, deleted ones dropped.

Embeddings of an unfinished run are checkpointed per file (``index.checkpoint``) so a re-run after
a crash or kill resumes instead of starting over; the new generation is committed atomically by
``index.store``. Loading files is ``index.loaders``', splitting ``index.splitter``'s; both run in a
worker process ahead of the embedding for large folders (``index.reader``). A collection
whose index was moved to Qdrant gets each new generation's vectors written there too
(``index.move``).

Above ~300 lines because one sync run (reuse, embed with checkpoints, assemble, commit, report)
shares its previous index and checkpoint state; reading, splitting and storing are already their own
modules.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.errors import ConfigError, IndexStoreError
from domain.progress import ProgressFn, no_progress
from domain.types import Chunk
from index import store
from index.bm25 import TOKENIZER_VERSION, BM25Index, tokenize
from index.checkpoint import clear_other_checkpoints, embed_files
from index.loaders import SkippedFile, SourceFile, scan_folder
from index.move import commit_with, vector_side
from index.reader import FileReader
from index.splitter import SplitterSettings, index_text

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.qdrant_store import QdrantServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    """Knobs of one indexing run (defaults match ``IndexSettings``)."""

    max_file_mb: float = 20.0
    ann_threshold: int = 50_000
    batch_size: int = 8
    rebuild: bool = False
    batches_per_checkpoint: int = 512
    qdrant: QdrantServer | None = None  # the server of collections moved to one
    reader: str = "auto"  # "process": read and split in a worker while embedding; "inline": in
    # this process; "auto": a worker for folders of at least index.reader.WORKER_MIN_BYTES


@dataclass
class SyncReport:
    """What a run did; ``changed`` is False when the folder matched the index already."""

    name: str
    root: str
    generation: str
    files_indexed: int
    files_new: int
    files_changed: int
    files_unchanged: int
    files_deleted: int
    files_resumed: int
    chunks_total: int
    chunks_embedded: int
    seconds: float
    changed: bool
    ann: dict[str, Any] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _FileWork:
    path: str
    digest: str
    size: int
    kind: str
    title: str
    chunks: list[Chunk]
    status: str  # "new" or "changed"
    vectors: np.ndarray | None = None


class _EmbedFeed:
    """Embeds files as the reader hands them over, in groups of about ``batch_size *
    batches_per_checkpoint`` chunks (each group checkpointed per file by ``embed_files``), starting
    with a smaller group as soon as the reader would make it wait.

    Progress: "reading <path>" per file until the first group is embedded, then "embedding" with
    chunks done (embedded or resumed) of the expected total: the chunks read so far, scaled up by
    the share of the folder's bytes still unread until reading ends.
    """

    def __init__(
        self,
        embedder: Embedder,
        pending: Path,
        opts: SyncOptions,
        on_progress: ProgressFn,
        sources: list[SourceFile],
    ) -> None:
        self.embedder, self.pending, self.opts, self.on_progress = embedder, pending, opts, on_progress
        self.sources = sources
        self.total_bytes = sum(s.size for s in sources)
        self.bytes_read = 0
        self.queue: deque[_FileWork] = deque()
        self.queued = 0  # chunks waiting in ``queue``
        self.chunks_read = 0
        self.done = 0  # chunks embedded or resumed
        self.resumed = self.embedded = 0
        self.started = False
        self.finished_reading = False
        self.group = max(1, opts.batch_size * opts.batches_per_checkpoint)
        self.first_group = min(self.group, opts.batch_size * 8)

    def reading(self, i: int, src: SourceFile) -> None:
        self.bytes_read += src.size
        if not self.started:
            self.on_progress(i, len(self.sources), f"reading {src.path}")

    def read_all(self) -> None:
        self.finished_reading = True
        if not self.started:
            self.on_progress(len(self.sources), len(self.sources), "read")

    def add(self, w: _FileWork) -> None:
        self.queue.append(w)
        self.queued += len(w.chunks)
        self.chunks_read += len(w.chunks)

    def expected_total(self) -> int:
        if self.finished_reading or not self.bytes_read:
            return self.chunks_read
        return max(self.chunks_read, round(self.chunks_read * self.total_bytes / self.bytes_read))

    def embed_some(self, *, more_waiting: bool) -> None:
        """Embed a full group; or, when the reader has nothing at hand, whatever is queued once it
        makes a first group."""
        while self.queued >= self.group or (not more_waiting and self.queued >= self.first_group):
            self._embed_group()

    def embed_rest(self) -> None:
        while self.queue:
            self._embed_group()

    def _embed_group(self) -> None:
        group: list[_FileWork] = []
        size = 0
        while self.queue and (not group or size + len(self.queue[0].chunks) <= self.group):
            w = self.queue.popleft()
            group.append(w)
            size += len(w.chunks)
        self.queued -= size
        if not self.started:
            clear_other_checkpoints(self.pending.parent, keep=self.pending)
            self.started = True
        base = self.done

        def report(d: int, _t: int, _m: str = "") -> None:
            self.on_progress(base + d, self.expected_total(), "embedding")

        resumed, embedded = embed_files(
            group,
            self.embedder,
            self.pending,
            batch_size=self.opts.batch_size,
            batches_per_checkpoint=self.opts.batches_per_checkpoint,
            on_progress=report,
        )
        self.resumed += resumed
        self.embedded += embedded
        self.done += size
        self.on_progress(self.done, self.expected_total(), "embedding")


def _settings_key(embedder: Embedder, splitter: SplitterSettings) -> str:
    # int8 vectors get their own checkpoint; float ones keep the key they always had.
    family = [store.vector_family(embedder.precision)] if embedder.precision == "int8" else []
    ident = json.dumps([embedder.name, embedder.dim, splitter.identity(), *family], sort_keys=True)
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


def sync_folder(
    root: str | Path,
    index_dir: Path,
    *,
    embedder: Embedder,
    splitter: SplitterSettings,
    options: SyncOptions | None = None,
    on_progress: ProgressFn = no_progress,
) -> SyncReport:
    """Bring the index in ``index_dir`` in line with the documents under ``root``.

    Raises:
        ConfigError: ``root`` is not a folder.
        IndexMismatchError: the index was built with other settings and ``rebuild`` is False.
        IndexStoreError: another run holds the index, or the stored index is unreadable.
    """
    opts = options or SyncOptions()
    t0 = time.perf_counter()
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise ConfigError(f"{root} is not a folder — pass the folder that holds your documents")
    with store.locked(index_dir):
        store.remove_stale(index_dir)
        qdrant_entry = _qdrant_entry(index_dir)
        prev, reuse = (None, None) if opts.rebuild else _read_previous(index_dir, embedder, splitter)
        prev_files: dict[str, Any] = prev[0]["files"] if prev else {}
        sources, skipped = scan_folder(base, max_file_bytes=int(opts.max_file_mb * 1e6))
        kept: dict[str, dict[str, Any]] = {}
        work: list[_FileWork] = []
        pending = index_dir / "pending" / _settings_key(embedder, splitter)
        feed = _EmbedFeed(embedder, pending, opts, on_progress, sources)
        prev_digests = {path: str(f["sha256"]) for path, f in prev_files.items()}
        indexed_before = reuse.paths if reuse is not None else set()  # files read again (older code)
        with FileReader(
            sources, prev_digests, embedder=embedder, settings=splitter, mode=opts.reader
        ) as reader:
            for i, res in enumerate(reader):
                src = res.source
                feed.reading(i, src)
                if res.skipped is not None:
                    skipped.append(res.skipped)
                elif res.chunks is None:
                    kept[src.path] = prev_files[src.path]
                else:
                    status = "changed" if src.path in prev_files or src.path in indexed_before else "new"
                    w = _FileWork(src.path, res.digest, res.size, src.kind, res.title, res.chunks, status)
                    work.append(w)
                    w.vectors = reuse.take(w.chunks) if reuse is not None else None
                    if w.vectors is None:
                        feed.add(w)
                feed.embed_some(more_waiting=reader.ready())
        feed.read_all()
        if reuse is not None:
            logger.info("%d chunks kept their vectors from the previous generation", reuse.taken)
        deleted = sorted((set(prev_files) | indexed_before) - set(kept) - {w.path for w in work})
        skipped.sort(key=lambda s: s.path)
        if prev is not None and not work and not deleted:
            return _report(
                index_dir,
                base,
                prev[0]["generation"],
                kept,
                work,
                deleted,
                skipped,
                t0,
                changed=False,
                ann=prev[0]["ann"],
                resumed=0,
                embedded=0,
            )
        feed.embed_rest()
        resumed, embedded = feed.resumed, feed.embedded
        on_progress(0, 1, "building search indexes")
        chunks, vectors, tokens, files = _assemble(prev, kept, work, embedder.dim)
        bm25 = BM25Index.build(tokens)
        vstore = vector_side(
            qdrant_entry,
            chunks=chunks,
            vectors=vectors,
            bm25=bm25,
            label=store.index_label(index_dir),
            ann_threshold=opts.ann_threshold,
            qdrant=opts.qdrant,
        )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        manifest = {
            "name": store.index_label(index_dir),
            "root": str(base),
            "embedder": {"name": embedder.name, "dim": embedder.dim, "precision": embedder.precision},
            "splitter": splitter.identity(),
            "bm25_tokenizer": TOKENIZER_VERSION,
            "ann": vstore.report.to_dict(),
            "n_chunks": len(chunks),
            "created_at": prev[0].get("created_at", now) if prev else now,
            "updated_at": now,
            "files": files,
            "skipped": [asdict(s) for s in skipped],
        }
        entry = getattr(vstore, "entry", None)
        if entry is not None:
            manifest["qdrant"] = entry
        on_progress(0, 1, "saving")
        generation = commit_with(
            index_dir,
            store.GenerationData(manifest, chunks, tokens, vectors, vstore, bm25),
            qdrant_entry,
            opts.qdrant,
        )
        shutil.rmtree(index_dir / "pending", ignore_errors=True)
        on_progress(1, 1, "saved")
        return _report(
            index_dir,
            base,
            generation,
            kept,
            work,
            deleted,
            skipped,
            t0,
            changed=True,
            ann=manifest["ann"],
            resumed=resumed,
            embedded=embedded,
        )


def _read_previous(
    index_dir: Path, embedder: Embedder, splitter: SplitterSettings
) -> tuple[tuple[dict[str, Any], list[Chunk], np.ndarray, list[list[str]]] | None, _Reuse | None]:
    """The live generation (None when there is none or older splitting code built it), and, when
    older code built it, its vectors by embedded text for the re-read files to take back."""
    gen = store.current_generation(index_dir)
    if gen is None:
        return None, None
    manifest = store.read_manifest(index_dir) or {}
    wanted = splitter.identity()
    built = manifest.get("splitter") or {}
    older_code = store.older_split(built, wanted)
    store.check_compatible(
        manifest,
        embedder_name=embedder.name,
        dim=embedder.dim,
        splitter=built if older_code else wanted,
        tokenizer=TOKENIZER_VERSION,
        precision=embedder.precision,
    )
    if older_code:
        # Same settings, older extraction/splitting code: its chunks are stale, so every file is
        # read again (the old generation stays loadable until the new one is in place); a chunk
        # whose embedded text is unchanged keeps its vector.
        logger.warning(
            "index '%s' was split by splitter v%s; this version (v%s) splits differently — "
            "re-reading every file (unchanged chunks keep their vectors)",
            manifest.get("name"),
            built.get("version"),
            wanted["version"],
        )
        try:
            return None, _Reuse(store.read_chunks(gen), store.read_vectors(gen))
        except (OSError, ValueError, KeyError, TypeError):
            return None, None  # nothing to take back: every file is embedded again
    try:
        return (manifest, store.read_chunks(gen), store.read_vectors(gen), store.read_tokens(gen)), None
    except (OSError, ValueError, KeyError, TypeError) as e:
        hint = store.rebuild_hint(store.index_label(index_dir), manifest.get("root"))
        raise IndexStoreError(
            f"index files in {gen} are unreadable ({type(e).__name__}: {e}) — {hint}"
        ) from e


class _Reuse:
    """Vectors of an older generation by the text that was embedded for them (``index_text``), for
    files read again after a splitter change that left most chunks as they were."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.rows = {_text_key(c): i for i, c in enumerate(chunks)} if len(chunks) == len(vectors) else {}
        self.paths = {c.path for c in chunks}
        self.taken = 0

    def take(self, chunks: list[Chunk]) -> np.ndarray | None:
        """The vectors of ``chunks`` when every one of them was embedded before, else None."""
        rows = [self.rows.get(_text_key(c)) for c in chunks]
        if not chunks or any(r is None for r in rows):
            return None
        self.taken += len(chunks)
        return np.asarray(self.vectors[[r for r in rows if r is not None]], dtype=np.float32)


def _text_key(chunk: Chunk) -> str:
    return hashlib.sha1(index_text(chunk).encode()).hexdigest()


def _qdrant_entry(index_dir: Path) -> dict[str, Any] | None:
    """The live generation's Qdrant entry (None: FAISS, no index, or an unreadable manifest, which
    a rebuild replaces)."""
    try:
        entry = (store.read_manifest(index_dir) or {}).get("qdrant")
    except IndexStoreError:
        return None
    return entry if isinstance(entry, dict) else None


def _assemble(
    prev: tuple[dict[str, Any], list[Chunk], np.ndarray, list[list[str]]] | None,
    kept: dict[str, dict[str, Any]],
    work: list[_FileWork],
    dim: int,
) -> tuple[list[Chunk], np.ndarray, list[list[str]], dict[str, dict[str, Any]]]:
    """All chunks in path order with their vectors and BM25 tokens, plus the manifest's file table."""
    by_path = {w.path: w for w in work}
    chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    tokens: list[list[str]] = []
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(set(kept) | set(by_path)):
        first = len(chunks)
        if path in kept:
            assert prev is not None
            old = kept[path]
            lo, hi = old["first_row"], old["first_row"] + old["chunks"]
            chunks.extend(prev[1][lo:hi])
            parts.append(prev[2][lo:hi])
            tokens.extend(prev[3][lo:hi])
            files[path] = dict(old, first_row=first)
            continue
        w = by_path[path]
        assert w.vectors is not None
        chunks.extend(w.chunks)
        parts.append(w.vectors)
        tokens.extend(tokenize(index_text(c)) for c in w.chunks)
        files[path] = {
            "sha256": w.digest,
            "size": w.size,
            "kind": w.kind,
            "title": w.title,
            "chunks": len(w.chunks),
            "first_row": first,
        }
    vectors = np.vstack(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
    return chunks, vectors, tokens, files


def _report(
    index_dir: Path,
    base: Path,
    generation: str,
    kept: dict[str, Any],
    work: list[_FileWork],
    deleted: list[str],
    skipped: list[SkippedFile],
    t0: float,
    *,
    changed: bool,
    ann: dict[str, Any],
    resumed: int,
    embedded: int,
) -> SyncReport:
    return SyncReport(
        name=store.index_label(index_dir),
        root=str(base),
        generation=generation,
        files_indexed=len(kept) + len(work),
        files_new=sum(w.status == "new" for w in work),
        files_changed=sum(w.status == "changed" for w in work),
        files_unchanged=len(kept),
        files_deleted=len(deleted),
        files_resumed=resumed,
        chunks_total=sum(int(k["chunks"]) for k in kept.values()) + sum(len(w.chunks) for w in work),
        chunks_embedded=embedded,
        seconds=round(time.perf_counter() - t0, 3),
        changed=changed,
        ann=ann,
        skipped=skipped,
    )
