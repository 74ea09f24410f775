"""Taking over a workspace from before collections: its indexes become collections and its
adapters, corrections, router thresholds, evaluation reports and uploads the bundled collection's
(``take_over_legacy``, run once per process and workspace by ``app.wiring.collections``)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.errors import ConfigError
from domain.workspace import CollectionPaths, Workspace

logger = logging.getLogger(__name__)

LEGACY_DEFAULT_INDEX = "default"  # the index name settings used before collections

_TAKEN_OVER: set[str] = set()
_TAKE_OVER_LOCK = threading.Lock()


def _move(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` when ``dst`` does not exist yet (same disk: nothing is copied)."""
    if not src.exists() or dst.exists():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:
        if dst.exists():  # another process moved it first
            return False
        shutil.move(str(src), str(dst))
    logger.info("moved %s to %s", src, dst)
    return True


def take_over_legacy(ws: Workspace, bundled: str | None) -> None:
    """Move what a workspace from before collections holds into collection folders, once per
    process: ``index/<name>`` becomes collection ``<name>``'s index (``index/default`` the bundled
    collection's), and the adapters, corrections, router thresholds, evaluation reports and
    uploads become the bundled collection's. Indexes are moved, never re-embedded; nothing is
    overwritten. ``bundled``: the bundled collection's name (None: there is none)."""
    key = str(ws.root)
    if key in _TAKEN_OVER:
        return
    with _TAKE_OVER_LOCK:
        if key in _TAKEN_OVER:
            return
        _TAKEN_OVER.add(key)
        old_indexes = ws.root / "index"
        if old_indexes.is_dir():
            for old in sorted(old_indexes.iterdir()):
                target = bundled if old.name == LEGACY_DEFAULT_INDEX and bundled else old.name
                try:
                    paths = ws.collection(target)
                except ConfigError:
                    continue
                if _move(old, paths.index):
                    _write_taken_over_manifest(paths, old.name)
                    _move(ws.root / "uploads" / old.name, paths.uploads)
            _remove_if_empty(old_indexes)
        if bundled:
            paths = ws.collection(bundled)
            _move(ws.root / "adapters", paths.adapters)
            _move(ws.root / "feedback.sqlite", paths.feedback_db)
            _move(ws.root / "router.json", paths.router)
            _move(ws.root / "evals", paths.evals)
        _remove_if_empty(ws.root / "uploads")


def _write_taken_over_manifest(paths: CollectionPaths, old_name: str) -> None:
    from domain.atomic import write_json_atomic

    if paths.manifest.exists():
        return
    manifest: dict[str, Any] = {"name": paths.name, "taken_over_from": f"index/{old_name}"}
    from domain.errors import HybridError
    from index.store import read_manifest

    try:
        index_manifest = read_manifest(paths.index) or {}
        if index_manifest.get("root"):
            manifest["docs"] = str(index_manifest["root"])
    except HybridError:
        pass
    manifest["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(paths.manifest, manifest)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def forget_take_over() -> None:
    """Check for a workspace from before collections again (tests)."""
    with _TAKE_OVER_LOCK:
        _TAKEN_OVER.clear()
