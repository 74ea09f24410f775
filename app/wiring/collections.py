"""Collections: which one a command or page means, what it holds, making one, and taking over a
workspace from before collections.

A collection is one document folder and everything derived from it (see ``domain.workspace``).
Its files live in the workspace under ``collections/<name>/``. The bundled sample is described by
``corpus/collection.json``: its documents, datasets, style profile, default adapter and measured
scoreboard are read from the repository, and whatever the user makes for it (index, adapters,
corrections, reports, an edited style, datasets of their own) goes to its workspace folder like
any other collection's. Nothing here knows what the sample is about.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.settings import Settings
from domain.errors import ConfigError
from domain.style import NEUTRAL, StyleProfile, load_style
from domain.workspace import CollectionPaths, Workspace, check_name

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_DIR = REPO_ROOT / "corpus"
BUNDLE_FILE = "collection.json"
LEGACY_DEFAULT_INDEX = "default"  # the index name settings used before collections

_TAKEN_OVER: set[str] = set()
_TAKE_OVER_LOCK = threading.Lock()


def bundle_spec(bundle_dir: Path = BUNDLE_DIR) -> dict[str, Any]:
    """The bundled collection's description (``corpus/collection.json``), or {} when absent."""
    try:
        data = json.loads((bundle_dir / BUNDLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def bundled_name() -> str | None:
    name = bundle_spec().get("name")
    return str(name) if name else None


@dataclass(frozen=True)
class Collection:
    """One collection's folder and the files it reads (its own, else the bundle's)."""

    name: str
    paths: CollectionPaths
    docs: Path | None
    bundle: dict[str, Any]
    created: str | None = None
    profile: str | None = None  # the model profile chosen for this collection, if any

    def _bundled(self, key: str) -> Path | None:
        value = self.bundle.get(key)
        return BUNDLE_DIR / str(value) if value else None

    @property
    def is_bundled(self) -> bool:
        return bool(self.bundle)

    @property
    def eval_set(self) -> Path:
        """The evaluation rows: the collection's own file, else the bundle's."""
        own = self.paths.eval_set
        bundled = self._bundled("eval_set")
        return own if own.is_file() or bundled is None else bundled

    @property
    def train_set(self) -> Path:
        """The training rows: the collection's own file, else the bundle's."""
        own = self.paths.train_set
        bundled = self._bundled("train_set")
        return own if own.is_file() or bundled is None else bundled

    def default_adapters(self) -> dict[str, Path]:
        """The adapters the bundle ships, by the model profile each was trained for (bundle only).
        ``collection.json`` names one folder (for the default profile) or a profile → folder map."""
        value = self.bundle.get("default_adapter")
        if not value:
            return {}
        if isinstance(value, str):
            return {"qwen": BUNDLE_DIR / value}
        if isinstance(value, dict):
            return {str(k): BUNDLE_DIR / str(v) for k, v in value.items() if v}
        return {}

    @property
    def scoreboard(self) -> Path | None:
        """A measured four-mode report shipped with the bundle, shown before the user runs one."""
        return self._bundled("scoreboard")

    def style_file(self) -> Path | None:
        """Where the style is read from: the collection's ``style.json``, else the bundle's."""
        if self.paths.style.is_file():
            return self.paths.style
        return self._bundled("style")

    def style(self) -> StyleProfile:
        """The collection's style profile (``NEUTRAL`` until one is saved).

        Raises:
            ConfigError: the stored profile is unreadable (the message names the file).
        """
        path = self.style_file()
        return load_style(path) if path is not None else NEUTRAL

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "docs": str(self.docs) if self.docs else None,
            "indexed": (self.paths.index / "CURRENT").is_file(),
            "bundled": self.is_bundled,
            "eval_set": str(self.eval_set) if self.eval_set.is_file() else None,
            "train_set": str(self.train_set) if self.train_set.is_file() else None,
            "style": self.style().name,
            "created": self.created,
            "profile": self.profile,
        }


def _read_manifest(paths: CollectionPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{paths.manifest} is unreadable ({e}) — delete it and index the folder again with "
            f"`hybrid index FOLDER --collection {paths.name}`"
        ) from e
    return data if isinstance(data, dict) else {}


def get_collection(settings: Settings, name: str | None = None) -> Collection:
    """The collection ``name`` (default: the one settings select).

    Raises:
        ConfigError: a bad name or an unreadable ``collection.json``.
    """
    name = check_name(name or settings.collection, "collection name")
    take_over_legacy(settings.ws)
    paths = settings.ws.collection(name)
    manifest = _read_manifest(paths)
    spec = bundle_spec()
    bundle = spec if spec.get("name") == name else {}
    docs_value = manifest.get("docs") or (str(BUNDLE_DIR / spec["docs"]) if bundle.get("docs") else None)
    return Collection(
        name=name,
        paths=paths,
        docs=Path(docs_value) if docs_value else None,
        bundle=bundle,
        created=manifest.get("created"),
        profile=manifest.get("profile") or bundle.get("profile"),
    )


def collection_names(settings: Settings) -> list[str]:
    """Every collection: the bundled one first, then those in the workspace by name."""
    take_over_legacy(settings.ws)
    names: list[str] = []
    bundled = bundled_name()
    if bundled:
        names.append(bundled)
    root = settings.ws.collections
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if (
                p.is_dir()
                and not p.is_symlink()
                and p.name not in names
                and ((p / "collection.json").is_file() or (p / "index").is_dir())
            ):
                try:
                    names.append(check_name(p.name))
                except ConfigError:
                    logger.warning("skipping %s: not a valid collection name", p)
    return names


def create_collection(settings: Settings, name: str, docs: str | Path | None = None) -> Collection:
    """Make collection ``name`` (its folders and ``collection.json``), or update its document
    folder; an existing collection keeps everything else.

    Raises:
        ConfigError: a bad name, or ``docs`` is not a folder.
    """
    name = check_name(name, "collection name")
    paths = settings.ws.collection(name).ensure()
    manifest = _read_manifest(paths)
    if docs is not None:
        folder = Path(docs).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder — name the folder that holds the documents")
        manifest["docs"] = str(folder.resolve())
    manifest.setdefault("name", name)
    manifest.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    from domain.atomic import write_json_atomic

    write_json_atomic(paths.manifest, manifest)
    return get_collection(settings, name)


def set_profile(settings: Settings, name: str, key: str | None) -> Collection:
    """Make collection ``name`` answer with model profile ``key`` (None: the settings' default).

    Raises:
        ConfigError: a bad collection name or no such profile.
    """
    from adapters.base_model import get_profile
    from domain.atomic import write_json_atomic

    if key is not None:
        get_profile(key)
    paths = get_collection(settings, name).paths.ensure()
    manifest = _read_manifest(paths)
    manifest.setdefault("name", paths.name)
    if key is None:
        manifest.pop("profile", None)
    else:
        manifest["profile"] = key
    write_json_atomic(paths.manifest, manifest)
    return get_collection(settings, name)


def save_style(settings: Settings, name: str, style: StyleProfile) -> Path:
    """Store ``style`` as collection ``name``'s profile (the bundle's file is never written)."""
    from domain.atomic import write_json_atomic

    paths = get_collection(settings, name).paths.ensure()
    StyleProfile.from_json(style.to_json())  # the stored form must read back
    write_json_atomic(paths.style, style.to_json())
    return paths.style


def reset_style(settings: Settings, name: str) -> StyleProfile:
    """Drop collection ``name``'s own profile: it answers in its bundle's style, else the neutral one."""
    get_collection(settings, name).paths.style.unlink(missing_ok=True)
    return get_collection(settings, name).style()


def with_collection(settings: Settings, name: str | None) -> Settings:
    """``settings`` selecting collection ``name`` (unchanged for None).

    Raises:
        ConfigError: a bad name.
    """
    if not name or name == settings.collection:
        return settings
    return settings.model_copy(update={"collection": check_name(name, "collection name")})


# ----------------------------------------------------------------------------- take-over
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


def take_over_legacy(ws: Workspace) -> None:
    """Move what a workspace from before collections holds into collection folders, once per
    process: ``index/<name>`` becomes collection ``<name>``'s index (``index/default`` the bundled
    collection's), and the adapters, corrections, router thresholds, evaluation reports and
    uploads become the bundled collection's. Indexes are moved, never re-embedded; nothing is
    overwritten."""
    key = str(ws.root)
    if key in _TAKEN_OVER:
        return
    with _TAKE_OVER_LOCK:
        if key in _TAKEN_OVER:
            return
        _TAKEN_OVER.add(key)
        bundled = bundled_name()
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
