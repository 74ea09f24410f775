"""Which LoRA adapter answers in a collection: its active version in its adapter registry, else
the default adapter its bundle ships (the bundled collection only), else none; and the registry
operations that change it (list, activate, roll back, publish). Every page, command and wiring
module asks here; training and its gate live in ``app.wiring.training``, exports in ``.export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings
from domain.errors import ConfigError

if TYPE_CHECKING:
    from adapters.registry import VersionInfo


def registry_root(settings: Settings) -> Path:
    """The adapter registry of the selected collection."""
    from app.wiring.collections import get_collection

    return get_collection(settings).paths.adapters


def default_adapter_dir(settings: Settings) -> Path | None:
    """The adapter the selected collection's bundle ships, or None."""
    from app.wiring.collections import get_collection

    return get_collection(settings).default_adapter


def current_adapter(settings: Settings) -> tuple[Path | None, str | None]:
    """(folder, label) of the adapter answers use in the selected collection: its active version,
    else the bundled default adapter (label "default"), else (None, None)."""
    from adapters.registry import resolve_adapter_dir

    return resolve_adapter_dir(registry_root(settings), default_adapter_dir(settings))


def shipped_default_adapter(settings: Settings) -> Path | None:
    """The bundle's default adapter when it holds every file a version needs, else None."""
    from adapters.registry import is_complete

    default = default_adapter_dir(settings)
    return default if default is not None and is_complete(default) else None


def adapter_versions(settings: Settings) -> list[VersionInfo]:
    """The selected collection's complete adapter versions, oldest first."""
    from adapters.registry import list_versions

    return list_versions(registry_root(settings))


def activate_version(settings: Settings, version: str, *, reason: str = "manual") -> VersionInfo:
    """Make ``version`` active, ``reason`` kept in the history (RegistryError: no such version)."""
    from adapters.registry import activate

    return activate(registry_root(settings), version, reason=reason)


def rollback_version(settings: Settings) -> VersionInfo:
    """Activate the previous version again (RegistryError: there is none)."""
    from adapters.registry import rollback

    return rollback(registry_root(settings))


def publish_version(settings: Settings, version: str, to: Path | None = None) -> Path:
    """Copy ``version`` ("active", "latest" or a name) to ``to``, by default the folder of the
    bundle's default adapter; returns the folder written.

    Raises:
        ConfigError: no ``to`` and the collection's bundle ships no default adapter.
        RegistryError: no such version.
    """
    from adapters.registry import publish

    target = to or default_adapter_dir(settings)
    if target is None:
        raise ConfigError(
            f"collection {settings.collection!r} has no bundled default adapter to publish to — pass --to FOLDER"
        )
    return publish(registry_root(settings), version, target)
