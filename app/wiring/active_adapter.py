"""Which LoRA adapter answers in a collection: its active version in its adapter registry, else
the default adapter its bundle ships (the bundled collection only), else none — and only an
adapter trained on the base model that answers (its recorded sha256, else its recorded shape): an
adapter of another base is never applied, and the tuned modes then say why. Also the registry
operations that change it (list, activate, roll back, publish). Every page, command and wiring
module asks here; training and its gate live in ``app.wiring.training``, exports in ``.export``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import AdapterMismatchError, ConfigError, HybridError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from adapters.model_info import ModelInfo
    from adapters.registry import VersionInfo


def registry_root(settings: Settings) -> Path:
    """The adapter registry of the selected collection."""
    from app.wiring.collections import get_collection

    return get_collection(settings).paths.adapters


def default_adapter_dir(settings: Settings) -> Path | None:
    """The adapter the selected collection's bundle ships for the profile that answers, or None."""
    from app.wiring.collections import get_collection
    from app.wiring.models import profile_key

    return get_collection(settings).default_adapters().get(profile_key(settings))


def shipped_default_adapter(settings: Settings) -> Path | None:
    """The bundle's default adapter for this profile when it holds every file a version needs."""
    from adapters.registry import is_complete

    default = default_adapter_dir(settings)
    return default if default is not None and is_complete(default) else None


@dataclass(frozen=True)
class AdapterChoice:
    """The adapter that answers, or None with the reason the tuned modes are unavailable."""

    folder: Path | None
    label: str | None
    note: str | None = None


def _short(sha: str | None) -> str:
    return f"sha256 {sha[:12]}…" if sha else "sha256 unknown"


def recorded_base(folder: Path) -> dict[str, Any]:
    """What an adapter version records about its base: {"sha256", "name", "shape"} (missing keys:
    not recorded)."""
    from domain.atomic import read_json

    try:
        params = read_json(Path(folder) / "params.json")
    except (OSError, ValueError):
        return {}
    if not isinstance(params, dict):
        return {}
    base = params.get("base") if isinstance(params.get("base"), dict) else {}
    sha = params.get("base_sha256")
    return {
        "sha256": sha if isinstance(sha, str) and sha not in ("", "unknown") else None,
        "name": base.get("name") or Path(str(params.get("base_model") or "unknown base")).name,
        "shape": base.get("shape"),
    }


def _answering_base(settings: Settings) -> tuple[str, ModelInfo] | None:
    """(sha256, metadata) of the local base that answers; None for the remote backend or when the
    base is not there (loading it then fails with its own message)."""
    if settings.generation.backend == "remote":
        return None
    from app.wiring.models import base_identity

    try:
        return base_identity(settings)
    except (HybridError, OSError):
        return None


def base_mismatch(
    settings: Settings, folder: Path, label: str | None = None, *, base: tuple[str, ModelInfo] | None = None
) -> str | None:
    """None when the adapter in ``folder`` was trained on the base that answers (``base``, else
    looked up), else a one-line reason naming both. An adapter recording neither sha256 nor shape
    is assumed to fit (logged)."""
    answering = base if base is not None else _answering_base(settings)
    if answering is None:
        return None
    sha, info = answering
    rec = recorded_base(folder)
    if rec.get("sha256"):
        if rec["sha256"] == sha:
            return None
    elif rec.get("shape"):
        if rec["shape"] == info.shape():
            return None
    else:
        logger.warning("adapter %s records no base model; assuming it fits %s", folder, info.name)
        return None
    name = label or Path(folder).name
    return (
        f"adapter {name} was trained on {rec.get('name')} ({_short(rec.get('sha256'))}) and cannot be "
        f"applied to {info.name} ({_short(sha)}) — train one for this base with `hybrid train`"
    )


def adapter_choice(settings: Settings) -> AdapterChoice:
    """The adapter answers use in the selected collection: its active version, else the version
    active most recently before it, …, else the bundled default adapter (label "default") —
    whichever first fits the base that answers (so switching the model and back keeps each
    model's own adapter)."""
    from adapters.registry import recently_active

    root = registry_root(settings)
    candidates: list[tuple[Path, str]] = [(root / name, name) for name in recently_active(root)]
    default = shipped_default_adapter(settings)
    if default is not None:
        candidates.append((default, "default"))
    base = _answering_base(settings) if candidates else None
    if base is None:  # nothing to compare with: the first candidate, as without a base check
        return AdapterChoice(*candidates[0]) if candidates else AdapterChoice(None, None)
    notes = []
    for folder, label in candidates:
        why = base_mismatch(settings, folder, label, base=base)
        if why is None:
            return AdapterChoice(folder, label)
        notes.append(why)
    return AdapterChoice(None, None, "tuned modes unavailable: " + notes[0])


def current_adapter(settings: Settings) -> tuple[Path | None, str | None]:
    """(folder, label) of the adapter answers use (see ``adapter_choice``), else (None, None)."""
    choice = adapter_choice(settings)
    return choice.folder, choice.label


def require_fit(settings: Settings, folder: Path, label: str | None = None) -> None:
    """Refuse an adapter named explicitly (a candidate scored by the gate, an export) that was
    trained on another base.

    Raises:
        AdapterMismatchError: one line naming both bases.
    """
    why = base_mismatch(settings, folder, label)
    if why is not None:
        raise AdapterMismatchError(why)


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
        ConfigError: no ``to`` and the collection's bundle names no default adapter for this profile.
        AdapterMismatchError: no ``to`` and the version was trained on another base than the profile's.
        RegistryError: no such version.
    """
    from adapters.registry import publish, resolve_name

    target = to or default_adapter_dir(settings)
    if target is None:
        raise ConfigError(
            f"collection {settings.collection!r} has no bundled default adapter for this model profile to "
            "publish to — pass --to FOLDER"
        )
    if to is None:  # the profile's default adapter must fit the profile's base
        root = registry_root(settings)
        name = resolve_name(root, version)
        if name and (root / name).is_dir():
            require_fit(settings, root / name, name)
    return publish(registry_root(settings), version, target)
