"""The Index page's backend: syncing a folder and searching go through ``app.wiring.index`` (as
``hybrid index`` / ``hybrid search`` do); listing documents and chunks reads the committed
manifest and chunk table without loading the embedder; deleting removes the whole index.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import ConfigError, IndexStoreError
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.types import Chunk, Hit

logger = logging.getLogger(__name__)


class RealIndexBackend:
    """Indexes under ``<workspace>/index``; uploads go to ``<workspace>/uploads/<index name>``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _dir(self, name: str) -> Path:
        from app.wiring.index import index_dir

        return index_dir(self.settings, name)

    def index_names(self) -> list[str]:
        root = self.settings.ws.indexes
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "CURRENT").is_file())

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
        from index.store import current_generation, read_chunks

        gen = current_generation(self._dir(name))
        return [] if gen is None else read_chunks(gen)

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
            rows.append({
                "path": path, "title": f.get("title", ""), "kind": f.get("kind", ""), "chunks": n,
                "lang": langs.most_common(1)[0][0] if langs else "", "status": "indexed", "reason": "",
                "bytes": f.get("size"),
            })
        for s in manifest.get("skipped", []):
            detail = s.get("detail") or ""
            rows.append({
                "path": s.get("path", ""), "title": "", "kind": "", "chunks": 0, "lang": "",
                "status": "skipped", "reason": s.get("reason", "") + (f" — {detail}" if detail else ""),
                "bytes": None,
            })
        return rows

    def chunks(self, name: str, path: str) -> list[Chunk]:
        return [c for c in self._chunks(name) if c.path == path]

    def sync(
        self, folder: str | Path, *, name: str, rebuild: bool = False, on_progress: ProgressFn = no_progress
    ) -> dict[str, Any]:
        from app.wiring.embedder import build_embedder
        from app.wiring.index import sync_index

        embedder = build_embedder(self.settings)
        report = sync_index(
            self.settings, folder, name=name, rebuild=rebuild, embedder=embedder, on_progress=on_progress
        )
        return report.to_dict()

    def search(self, name: str, query: str, k: int) -> list[Hit]:
        from app.wiring.embedder import build_embedder
        from app.wiring.index import build_retriever

        embedder = build_embedder(self.settings)
        return build_retriever(self.settings, name, embedder=embedder).search(query, k=k)

    def delete(self, name: str) -> None:
        from app.wiring.index import clear_index_cache
        from index.store import locked

        folder = self._dir(name)
        if not folder.is_dir():
            raise ConfigError(f"there is no index named '{name}' — pick one from the list")
        try:
            with locked(folder):
                for p in folder.iterdir():
                    if p.name != ".lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError as e:
            raise IndexStoreError(f"could not delete index '{name}' in {folder} ({e}) — close other runs and retry") from e
        shutil.rmtree(folder, ignore_errors=True)
        clear_index_cache()
        logger.info("deleted index %s", name)

    def upload_dir(self, name: str) -> Path:
        return self.settings.ws.uploads / name
