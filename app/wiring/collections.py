"""Collections: which one a command or page means, what it holds, and making one (taking over a
workspace from before collections is ``app.wiring.take_over``).

A collection is one document folder and everything derived from it (see ``domain.workspace``).
Its files live in the workspace under ``collections/<name>/``. The bundled sample is described by
``corpus/collection.json``: its documents, datasets, style profile, default adapter and measured
scoreboard are read from the repository, and whatever the user makes for it (index, adapters,
corrections, reports, an edited style, datasets of their own) goes to its workspace folder like
any other collection's. Nothing here knows what the sample is about.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring.take_over import take_over_legacy
from domain.errors import ConfigError
from domain.style import NEUTRAL, StyleProfile, load_style
from domain.workspace import CollectionPaths, check_name

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE_DIR = REPO_ROOT / "corpus"
BUNDLE_FILE = "collection.json"


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

    def _by_profile(self, key: str) -> dict[str, Path]:
        """The bundle's files under ``key`` by model profile: ``collection.json`` names one path
        (the default profile's) or a profile → path map."""
        value = self.bundle.get(key)
        if isinstance(value, str) and value:
            return {"qwen": BUNDLE_DIR / value}
        if isinstance(value, dict):
            return {str(k): BUNDLE_DIR / str(v) for k, v in value.items() if v}
        return {}

    def default_adapters(self) -> dict[str, Path]:
        """The adapters the bundle ships, by the model profile each was trained for (bundle only)."""
        return self._by_profile("default_adapter")

    def scoreboards(self) -> dict[str, Path]:
        """Measured four-mode reports the bundle ships, by the model profile that answered in them,
        shown before the user runs one."""
        return self._by_profile("scoreboard")

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
    spec = bundle_spec()
    take_over_legacy(settings.ws, str(spec["name"]) if spec.get("name") else None)
    paths = settings.ws.collection(name)
    manifest = _read_manifest(paths)
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
    bundled = bundled_name()
    take_over_legacy(settings.ws, bundled)
    names: list[str] = []
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
