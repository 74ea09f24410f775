"""The Index page's backend: syncing a folder and searching go through ``app.wiring.index`` (as
``hybrid index`` / ``hybrid search`` do); listing documents and chunks reads the committed
manifest and chunk table without loading the embedder; deleting removes the whole index.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import ConfigError, IndexStoreError
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.ports import Embedder
    from domain.types import Chunk, Hit

logger = logging.getLogger(__name__)


class RealIndexBackend:
    """One index per collection (``<workspace>/collections/<name>/index``); uploads go to the
    collection's ``uploads`` folder. ``name`` arguments are collection names."""

    def __init__(self, settings: Settings, *, embedder: Callable[[], Embedder] | None = None) -> None:
        self.settings = settings
        self._embedder = embedder or self._shared_embedder
        self._lock = threading.Lock()
        self._chunk_tables: dict[str, list[Chunk]] = {}

    def _shared_embedder(self) -> Embedder:
        from app.wiring.embedder import build_embedder

        return build_embedder(self.settings)

    def _dir(self, name: str) -> Path:
        from app.wiring.index import index_dir

        return index_dir(self.settings, name)

    def index_names(self) -> list[str]:
        """Every collection's name (built or not)."""
        from app.wiring.collections import collection_names

        return collection_names(self.settings)

    def summary(self, name: str) -> dict[str, Any] | None:
        from index.store import read_manifest

        manifest = read_manifest(self._dir(name))
        if manifest is None:
            return None
        return {k: v for k, v in manifest.items() if k not in ("files", "skipped")} | {
            "n_files": len(manifest.get("files", {})),
            "n_skipped": len(manifest.get("skipped", [])),
        }

    def _chunks(self, name: str) -> list[Chunk]:
        """The live generation's chunk table, read once per generation (generations are immutable)."""
        from index.store import current_generation, read_chunks

        gen = current_generation(self._dir(name))
        if gen is None:
            return []
        key = f"{gen}:{(gen / 'chunks.jsonl').stat().st_mtime_ns}"  # a deleted and rebuilt index reuses gen names
        with self._lock:
            if key not in self._chunk_tables:
                if len(self._chunk_tables) >= 4:
                    self._chunk_tables.pop(next(iter(self._chunk_tables)))
                self._chunk_tables[key] = read_chunks(gen)
            return self._chunk_tables[key]

    def documents(self, name: str) -> list[dict[str, Any]]:
        from index.store import read_manifest

        manifest = read_manifest(self._dir(name))
        if manifest is None:
            return []
        chunks = self._chunks(name)
        rows = []
        for path, f in sorted(manifest.get("files", {}).items()):
            lo, n = int(f.get("first_row", 0)), int(f.get("chunks", 0))
            langs = Counter(c.lang for c in chunks[lo : lo + n])
            rows.append(
                {
                    "path": path,
                    "title": f.get("title", ""),
                    "kind": f.get("kind", ""),
                    "chunks": n,
                    "lang": langs.most_common(1)[0][0] if langs else "",
                    "status": "indexed",
                    "reason": "",
                    "bytes": f.get("size"),
                }
            )
        for s in manifest.get("skipped", []):
            detail = s.get("detail") or ""
            rows.append(
                {
                    "path": s.get("path", ""),
                    "title": "",
                    "kind": "",
                    "chunks": 0,
                    "lang": "",
                    "status": "skipped",
                    "reason": s.get("reason", "") + (f" — {detail}" if detail else ""),
                    "bytes": None,
                }
            )
        return rows

    def chunks(self, name: str, path: str) -> list[Chunk]:
        return [c for c in self._chunks(name) if c.path == path]

    def sync(
        self, folder: str | Path, *, name: str, rebuild: bool = False, on_progress: ProgressFn = no_progress
    ) -> dict[str, Any]:
        from app.wiring.index import sync_index

        report = sync_index(
            self.settings,
            folder,
            name=name,
            rebuild=rebuild,
            embedder=self._embedder(),
            on_progress=on_progress,
        )
        return report.to_dict()

    def search(self, name: str, query: str, k: int) -> list[Hit]:
        from app.wiring.index import build_retriever

        return build_retriever(self.settings, name, embedder=self._embedder()).search(query, k=k)

    def delete(self, name: str) -> None:
        from app.wiring.index import clear_index_cache
        from index.store import locked

        folder = self._dir(name)
        if not folder.is_dir():
            raise ConfigError(f"collection '{name}' has no index to delete — pick another collection")
        try:
            with locked(folder):
                for p in folder.iterdir():
                    if p.name != ".lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError as e:
            raise IndexStoreError(
                f"could not delete index '{name}' in {folder} ({e}) — close other runs and retry"
            ) from e
        shutil.rmtree(folder, ignore_errors=True)
        clear_index_cache()
        with self._lock:
            self._chunk_tables.clear()
        logger.info("deleted index %s", name)

    def upload_dir(self, name: str) -> Path:
        from app.wiring.collections import get_collection

        return get_collection(self.settings, name).paths.uploads
