"""Index persistence: each build is written whole into a fresh generation folder, and a small
``CURRENT`` pointer is switched atomically last, so a crash at any point leaves the previous index
loadable. Also owns the manifest checks (embedder, splitter, tokenizer) and opening an index.

Layout of ``<workspace>/index/<name>/``: ``CURRENT`` (the live generation's folder name),
``gen-NNNNNN/`` (``manifest.json``, ``chunks.jsonl``, ``tokens.jsonl``, ``vectors.npy``,
``faiss.index`` for HNSW, ``bm25/``, ``qdrant/`` for an in-process Qdrant store), ``pending/``
(embeddings of an unfinished run), ``.lock``. A manifest with a ``qdrant`` entry is searched in
Qdrant (``index.qdrant_store``), any other with FAISS; ``vectors.npy`` is kept either way.

Above ~300 lines because writing a generation, reading it back and checking its manifest all follow
the one on-disk layout described above.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.atomic import read_json, write_json_atomic, write_text_atomic
from domain.errors import IndexMismatchError, IndexStoreError
from domain.types import Chunk

if TYPE_CHECKING:
    from domain.ports import Embedder
    from index.bm25 import BM25Index
    from index.hybrid import FusionSettings, HybridRetriever
    from index.qdrant_retriever import QdrantRetriever
    from index.qdrant_store import QdrantServer, QdrantStore
    from index.qdrant_writer import QdrantWriter
    from index.vector_store import VectorStore

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_GEN = re.compile(r"gen-(\d{6})")


def index_label(index_dir: Path) -> str:
    """The name a user calls the index in ``index_dir`` by: its collection's (the folder above an
    ``index`` folder), else the folder's own."""
    index_dir = Path(index_dir)
    return index_dir.parent.name if index_dir.name == "index" else index_dir.name


def rebuild_hint(name: str, root: object = None) -> str:
    """The command that rebuilds the index of collection ``name`` from ``root`` (PATH when
    unknown), quoted for a shell."""
    folder = shlex.quote(str(root)) if isinstance(root, str) and root else "PATH"
    return f"run `hybrid index {folder} --collection {shlex.quote(name)} --rebuild`"


def older_split(built: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether an index's splitter identity ``built`` has ``wanted``'s settings but an older
    splitter version: its files are read again, not rebuilt (``index.sync``)."""
    same = {k: v for k, v in built.items() if k != "version"} == {
        k: v for k, v in wanted.items() if k != "version"
    }
    return same and int(built.get("version", 0)) < int(wanted.get("version", 0))


def update_hint(name: str, root: object = None) -> str:
    """The command that brings collection ``name``'s index up to this version's splitting (files
    read again, unchanged chunks keep their vectors), quoted for a shell."""
    folder = shlex.quote(str(root)) if isinstance(root, str) and root else "PATH"
    return (
        f"run `hybrid index {folder} --collection {shlex.quote(name)}` "
        "(it reads the files again; unchanged passages keep their vectors)"
    )


def current_generation(index_dir: Path) -> Path | None:
    """The live generation folder, or None when nothing was ever committed.

    Raises:
        IndexStoreError: ``CURRENT`` is unreadable or names no generation with a manifest.
    """
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise IndexStoreError(
            f"{pointer} is unreadable ({e}) — {rebuild_hint(index_label(index_dir))}"
        ) from e
    gen = index_dir / name
    if not _GEN.fullmatch(name) or not (gen / "manifest.json").is_file():
        raise IndexStoreError(
            f"{pointer} points at {name!r}, which holds no index — {rebuild_hint(index_label(index_dir))}"
        )
    return gen


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The live generation's manifest, or None when there is no index.

    Raises:
        IndexStoreError: the manifest is not a readable JSON object with the embedder and splitter.
    """
    gen = current_generation(index_dir)
    if gen is None:
        return None
    path = gen / "manifest.json"
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as e:
        raise IndexStoreError(f"{path} is unreadable ({e}) — {rebuild_hint(index_label(index_dir))}") from e
    if not (
        isinstance(manifest, dict)
        and isinstance(manifest.get("embedder"), dict)
        and isinstance(manifest.get("splitter"), dict)
        and isinstance(manifest.get("files", {}), dict)
    ):
        raise IndexStoreError(f"{path} is not an index manifest — {rebuild_hint(index_label(index_dir))}")
    return manifest


def vector_family(precision: str | None) -> str:
    """ "int8" for int8 vectors, "float" for fp32 and bf16 (bf16 encodes to fp32 vectors within
    rounding); an index without a record was built at fp32."""
    return "int8" if precision == "int8" else "float"


def check_compatible(
    manifest: dict[str, Any],
    *,
    embedder_name: str,
    dim: int,
    splitter: dict[str, int],
    tokenizer: int,
    precision: str = "fp32",
) -> None:
    """Raise IndexMismatchError unless the index was built with these settings."""
    built_emb = manifest["embedder"]
    problems = []
    if (built_emb.get("name"), built_emb.get("dim")) != (embedder_name, dim):
        problems.append(
            f"embedder {built_emb.get('name')}/{built_emb.get('dim')}, settings say {embedder_name}/{dim}"
        )
    built_precision = str(built_emb.get("precision") or "fp32")
    if vector_family(built_precision) != vector_family(precision):
        problems.append(
            f"{built_precision} embeddings, settings say {precision} (int8 and float vectors are never "
            "mixed; set HYBRID_INDEX__EMBED_PRECISION to match)"
        )
    if manifest["splitter"] != splitter:
        b, s = manifest["splitter"], splitter
        problems.append(
            f"chunks of {b.get('chunk_tokens')} tokens with {b.get('overlap_tokens')} overlap "
            f"(splitter v{b.get('version')}), settings say {s.get('chunk_tokens')} with "
            f"{s.get('overlap_tokens')} (v{s.get('version')})"
        )
    if manifest.get("bm25_tokenizer") != tokenizer:
        problems.append(f"BM25 tokenizer v{manifest.get('bm25_tokenizer')}, this version uses v{tokenizer}")
    if problems:
        name = str(manifest.get("name") or "default")
        older_code = len(problems) == 1 and older_split(manifest["splitter"], splitter)
        # Split by older code with the same settings: indexing again re-reads the files and keeps
        # the vectors of unchanged chunks (index.sync), so no --rebuild is needed.
        hint = (
            update_hint(name, manifest.get("root"))
            if older_code
            else rebuild_hint(name, manifest.get("root"))
        )
        raise IndexMismatchError(f"index {name!r} was built with " + "; ".join(problems) + f" — {hint}")


def chunk_to_json(chunk: Chunk) -> str:
    return json.dumps(asdict(chunk), ensure_ascii=False)


def read_chunks(gen: Path) -> list[Chunk]:
    with (gen / "chunks.jsonl").open(encoding="utf-8") as fh:
        return [Chunk(**json.loads(line)) for line in fh if line.strip()]


def read_tokens(gen: Path) -> list[list[str]]:
    with (gen / "tokens.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_vectors(gen: Path) -> np.ndarray:
    return np.load(gen / "vectors.npy")


@contextlib.contextmanager
def locked(index_dir: Path) -> Iterator[None]:
    """Hold the index's writer lock; a second concurrent build fails with a clear message."""
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise IndexStoreError(
                f"another `hybrid index` run is writing {index_dir} — wait for it to finish"
            ) from e
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_lines(path: Path, lines: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class GenerationData:
    """Everything one generation holds."""

    manifest: dict[str, Any]
    chunks: Sequence[Chunk]
    tokens: Sequence[Sequence[str]]
    vectors: np.ndarray
    store: VectorStore | QdrantWriter
    bm25: BM25Index


def commit_generation(index_dir: Path, data: GenerationData) -> str:
    """Write ``data`` into a new generation, then switch ``CURRENT`` to it (the commit point) and
    remove older generations. Returns the new generation's name. Caller holds ``locked``."""
    existing = [int(m.group(1)) for p in index_dir.iterdir() if (m := _GEN.fullmatch(p.name))]
    name = f"gen-{max(existing, default=0) + 1:06d}"
    tmp = index_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_lines(tmp / "chunks.jsonl", (chunk_to_json(c) for c in data.chunks))
    _write_lines(tmp / "tokens.jsonl", (json.dumps(list(t), ensure_ascii=False) for t in data.tokens))
    with (tmp / "vectors.npy").open("wb") as fh:
        np.save(fh, np.ascontiguousarray(data.vectors, dtype=np.float32))
        fh.flush()
        os.fsync(fh.fileno())
    data.store.save(tmp)
    data.bm25.save(tmp / "bm25")
    manifest = dict(data.manifest, generation=name, format=FORMAT_VERSION)
    write_json_atomic(tmp / "manifest.json", manifest)
    for sub in (tmp / "bm25", tmp):
        _fsync_dir(sub)
    os.replace(tmp, index_dir / name)
    _fsync_dir(index_dir)
    write_text_atomic(index_dir / "CURRENT", name + "\n")
    _fsync_dir(index_dir)
    remove_stale(index_dir)
    return name


def remove_stale(index_dir: Path) -> None:
    """Delete unfinished temp folders and every generation except the current one."""
    try:
        live = current_generation(index_dir)
    except IndexStoreError:
        return
    for p in index_dir.iterdir():
        if p.is_dir() and (p.name.startswith(".gen-") or (_GEN.fullmatch(p.name) and p != live)):
            shutil.rmtree(p, ignore_errors=True)


@dataclass(frozen=True)
class LoadedIndex:
    """A committed index opened for search."""

    index_dir: Path
    generation: str
    manifest: dict[str, Any]
    chunks: list[Chunk]
    store: VectorStore | QdrantStore
    bm25: BM25Index

    def retriever(
        self, embedder: Embedder, fusion: FusionSettings | None = None
    ) -> HybridRetriever | QdrantRetriever:
        from index.hybrid import HybridRetriever
        from index.qdrant_store import QdrantStore

        if isinstance(self.store, QdrantStore):
            from index.qdrant_retriever import QdrantRetriever

            return QdrantRetriever(
                chunks=self.chunks, store=self.store, bm25=self.bm25, embedder=embedder, fusion=fusion
            )
        return HybridRetriever(
            chunks=self.chunks, vectors=self.store, bm25=self.bm25, embedder=embedder, fusion=fusion
        )


def open_index(
    index_dir: Path,
    *,
    embedder_name: str,
    dim: int,
    splitter: dict[str, int],
    tokenizer: int,
    precision: str = "fp32",
    qdrant: QdrantServer | None = None,
) -> LoadedIndex:
    """Open the live generation after checking it was built with these settings; a generation
    in Qdrant is reached in-process or at ``qdrant``'s URL, as its manifest says.

    Raises:
        IndexStoreError: no index there (the message says how to build one), unreadable files, or
            its Qdrant store unreachable or missing.
        IndexMismatchError: built with another embedder, splitter, tokenizer or vector precision.
    """
    from index.bm25 import BM25Index
    from index.qdrant_store import QdrantStore
    from index.vector_store import AnnReport, VectorStore

    gen = current_generation(index_dir)
    if gen is None:
        raise IndexStoreError(
            f"collection '{index_label(index_dir)}' has no index yet — build it with "
            f"`hybrid index PATH --collection {index_label(index_dir)}`"
        )
    manifest = read_manifest(index_dir) or {}
    check_compatible(
        manifest,
        embedder_name=embedder_name,
        dim=dim,
        splitter=splitter,
        tokenizer=tokenizer,
        precision=precision,
    )
    hint = rebuild_hint(index_label(index_dir), manifest.get("root"))
    entry = manifest.get("qdrant")
    store: VectorStore | QdrantStore
    try:
        chunks = read_chunks(gen)
        if isinstance(entry, dict):
            store = QdrantStore.open(gen, entry, qdrant)
        else:
            store = VectorStore.load(gen, AnnReport(**manifest["ann"]))
        bm25 = BM25Index.load(gen / "bm25", len(chunks))
    except (OSError, ValueError, KeyError, TypeError, IndexStoreError) as e:
        if isinstance(e, IndexStoreError) and isinstance(entry, dict):
            raise  # a Qdrant store's own one-line error says what to do
        raise IndexStoreError(
            f"index files in {gen} are unreadable ({type(e).__name__}: {e}) — {hint}"
        ) from e
    size = store.size
    if size != len(chunks):
        if isinstance(entry, dict):
            hint = f"move it again with `hybrid index --to-qdrant --collection {index_label(index_dir)}`"
        raise IndexStoreError(f"{gen} holds {size} vectors for {len(chunks)} chunks — {hint}")
    return LoadedIndex(index_dir, gen.name, manifest, chunks, store, bm25)
