"""Building and incrementally syncing an index from a folder: unchanged files (same content hash)
keep their chunks and vectors, new and changed files are split and embedded, deleted ones dropped.

Embeddings of an unfinished run are checkpointed per file (``index.checkpoint``) so a re-run after
a crash or kill resumes instead of starting over; the new generation is committed atomically by
``index.store``. Loading files is ``index.loaders``', splitting ``index.splitter``'s. A collection
whose index was moved to Qdrant gets each new generation's vectors written there too
(``index.move``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.errors import ConfigError, DocumentError, IndexStoreError
from domain.progress import ProgressFn, no_progress
from domain.types import Chunk
from index import store
from index.bm25 import TOKENIZER_VERSION, BM25Index, tokenize
from index.checkpoint import clear_other_checkpoints, embed_files
from index.loaders import SkippedFile, content_digest, load_document, read_bytes, scan_folder
from index.move import commit_with, vector_side
from index.splitter import DocumentSplitter, SplitterSettings, index_text

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


def _settings_key(embedder: Embedder, splitter: SplitterSettings) -> str:
    ident = json.dumps([embedder.name, embedder.dim, splitter.identity()], sort_keys=True)
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
        prev = None if opts.rebuild else _read_previous(index_dir, embedder, splitter)
        prev_files: dict[str, Any] = prev[0]["files"] if prev else {}
        sources, skipped = scan_folder(base, max_file_bytes=int(opts.max_file_mb * 1e6))
        doc_splitter = DocumentSplitter(embedder.count_tokens, splitter)
        kept: dict[str, dict[str, Any]] = {}
        work: list[_FileWork] = []
        for i, src in enumerate(sources):
            on_progress(i, len(sources), f"reading {src.path}")
            try:
                data = read_bytes(src)
                digest = content_digest(data)
                old = prev_files.get(src.path)
                if old is not None and old["sha256"] == digest:
                    kept[src.path] = old
                    continue
                doc = load_document(src, data)
                chunks = doc_splitter.split(doc, digest=digest)
                if not chunks:
                    raise DocumentError(src.path, "no_text", "no text left after splitting")
            except DocumentError as e:
                skipped.append(SkippedFile(e.path, e.reason, e.detail))
                continue
            status = "changed" if src.path in prev_files else "new"
            work.append(_FileWork(src.path, digest, len(data), src.kind, doc.title, chunks, status))
        on_progress(len(sources), len(sources), "read")
        deleted = sorted(set(prev_files) - set(kept) - {w.path for w in work})
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
        pending = index_dir / "pending" / _settings_key(embedder, splitter)
        clear_other_checkpoints(index_dir / "pending", keep=pending)
        resumed, embedded = embed_files(
            work,
            embedder,
            pending,
            batch_size=opts.batch_size,
            batches_per_checkpoint=opts.batches_per_checkpoint,
            on_progress=on_progress,
        )
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
            "embedder": {"name": embedder.name, "dim": embedder.dim},
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
) -> tuple[dict[str, Any], list[Chunk], np.ndarray, list[list[str]]] | None:
    gen = store.current_generation(index_dir)
    if gen is None:
        return None
    manifest = store.read_manifest(index_dir) or {}
    wanted = splitter.identity()
    built = manifest.get("splitter") or {}
    older_code = _same_but_version(built, wanted) and int(built.get("version", 0)) < wanted["version"]
    store.check_compatible(
        manifest,
        embedder_name=embedder.name,
        dim=embedder.dim,
        splitter=built if older_code else wanted,
        tokenizer=TOKENIZER_VERSION,
    )
    if older_code:
        # Same settings, older extraction/splitting code: its chunks are stale, so every file is
        # read again (the old generation stays loadable until the new one is in place).
        logger.warning(
            "index '%s' was split by splitter v%s; this version (v%s) splits differently — "
            "re-reading every file",
            manifest.get("name"),
            built.get("version"),
            wanted["version"],
        )
        return None
    try:
        return manifest, store.read_chunks(gen), store.read_vectors(gen), store.read_tokens(gen)
    except (OSError, ValueError, KeyError, TypeError) as e:
        hint = store.rebuild_hint(store.index_label(index_dir), manifest.get("root"))
        raise IndexStoreError(
            f"index files in {gen} are unreadable ({type(e).__name__}: {e}) — {hint}"
        ) from e


def _qdrant_entry(index_dir: Path) -> dict[str, Any] | None:
    """The live generation's Qdrant entry (None: FAISS, no index, or an unreadable manifest, which
    a rebuild replaces)."""
    try:
        entry = (store.read_manifest(index_dir) or {}).get("qdrant")
    except IndexStoreError:
        return None
    return entry if isinstance(entry, dict) else None


def _same_but_version(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "version"} == {k: v for k, v in b.items() if k != "version"}


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
