"""The Index page's backend: syncing a folder, searching, reading the committed manifest and chunk
table (without loading the embedder) and deleting the whole index all go through
``app.wiring.index``, as ``hybrid index`` / ``hybrid search`` do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from domain.ports import Embedder
    from domain.types import Chunk, Hit


class RealIndexBackend:
    """One index per collection (``<workspace>/collections/<name>/index``); uploads go to the
    collection's ``uploads`` folder. ``name`` arguments are collection names."""

    def __init__(self, settings: Settings, *, embedder: Callable[[], Embedder] | None = None) -> None:
        self.settings = settings
        self._injected = embedder

    def _embedder(self, vectors: str | None = None) -> Embedder:
        """The embedder a build uses: the injected one (tests), else the settings' one made
        ``vectors`` ("int8" or "float"; float is the settings' own precision unless that is int8)."""
        if self._injected is not None:
            return self._injected()
        from app.wiring.embedder import build_embedder, vectors_precision

        return build_embedder(self.settings, precision=vectors_precision(self.settings, vectors))

    def vectors(self, name: str) -> str:
        """The index's kind, "int8" or "float", else what the settings would build (read from the
        manifest and settings; nothing is loaded)."""
        from app.wiring.index import index_vectors

        built = index_vectors(self.settings, name)
        return built or ("int8" if self.settings.index.embed_precision == "int8" else "float")

    def index_names(self) -> list[str]:
        """Every collection's name (built or not)."""
        from app.wiring.collections import collection_names

        return collection_names(self.settings)

    def summary(self, name: str) -> dict[str, Any] | None:
        from app.wiring.index import index_manifest

        manifest = index_manifest(self.settings, name)
        if manifest is None:
            return None
        return {k: v for k, v in manifest.items() if k not in ("files", "skipped")} | {
            "n_files": len(manifest.get("files", {})),
            "n_skipped": len(manifest.get("skipped", [])),
        }

    def documents(self, name: str) -> list[dict[str, Any]]:
        from app.wiring.index import chunk_table, index_manifest

        manifest = index_manifest(self.settings, name)
        if manifest is None:
            return []
        chunks = chunk_table(self.settings, name)
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
        from app.wiring.index import chunk_table

        return [c for c in chunk_table(self.settings, name) if c.path == path]

    def sync(
        self,
        folder: str | Path,
        *,
        name: str,
        rebuild: bool = False,
        vectors: str | None = None,
        on_progress: ProgressFn = no_progress,
    ) -> dict[str, Any]:
        """Index ``folder`` into collection ``name``; ``vectors`` ("int8" or "float", default the
        settings') — another kind than the index's needs ``rebuild``."""
        from app.wiring.index import sync_index

        report = sync_index(
            self.settings,
            folder,
            name=name,
            rebuild=rebuild,
            embedder=self._embedder(vectors),
            on_progress=on_progress,
        )
        return report.to_dict()

    def search(self, name: str, query: str, k: int) -> list[Hit]:
        from app.wiring.index import build_retriever

        injected = self._injected() if self._injected is not None else None
        return build_retriever(self.settings, name, embedder=injected).search(query, k=k)

    def delete(self, name: str) -> None:
        from app.wiring.index import delete_index

        delete_index(self.settings, name)

    def upload_dir(self, name: str) -> Path:
        from app.wiring.collections import get_collection

        return get_collection(self.settings, name).paths.uploads
