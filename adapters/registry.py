"""The adapter registry: immutable LoRA versions in ``<workspace>/adapters/<version>/``, the
``ACTIVE`` pointer (switched atomically), and the activation history that ``rollback`` walks back.

A version is built in a hidden staging folder and renamed into place only when complete, so a
killed job leaves no half version. What goes into a version (training, conversion, the gate) is
the job's business; this module only stores, lists and switches.

A version folder holds ``adapter_model.safetensors`` + ``adapter_config.json`` (peft),
``lora.gguf`` (llama.cpp), ``params.json``, ``metrics.json`` and ``loss.json``.

Above ~300 lines because its operations (list, stage, activate, roll back, publish) share the
version folder layout and the ``ACTIVE`` pointer and history, which stay consistent only if one
module writes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.jobs import process_alive
from domain.atomic import read_json, write_json_atomic, write_text_atomic
from domain.errors import RegistryError
from domain.workspace import NAME_RE, NAME_RULE

logger = logging.getLogger(__name__)

ACTIVE = "ACTIVE"
HISTORY = "history.json"
STAGING_PREFIX = ".staging-"
REQUIRED_FILES = ("adapter_model.safetensors", "adapter_config.json", "params.json")
NUMBERED_RE = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class VersionInfo:
    """One stored version as listed to the user."""

    version: str
    path: Path
    active: bool
    created_at: str = ""
    has_gguf: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def gate_passed(self) -> bool | None:
        gate = self.metrics.get("gate") or {}
        return gate.get("passed")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "active": self.active,
            "created_at": self.created_at,
            "has_gguf": self.has_gguf,
            "gate_passed": self.gate_passed,
            "metrics": self.metrics,
            "params": self.params,
        }


def is_complete(path: Path) -> bool:
    """True when ``path`` holds every file a version needs."""
    return all((Path(path) / name).is_file() for name in REQUIRED_FILES)


def _sort_key(name: str) -> tuple[int, int, str]:
    m = NUMBERED_RE.match(name)
    return (0, int(m.group(1)), "") if m else (1, 0, name)


def _read_active(root: Path) -> str | None:
    try:
        text = (root / ACTIVE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def _load(path: Path, name: str) -> dict[str, Any]:
    try:
        data = read_json(path / name)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_versions(root: Path) -> list[VersionInfo]:
    """Complete versions under ``root`` (oldest first: v1, v2, …, then other names alphabetically)."""
    root = Path(root)
    if not root.is_dir():
        return []
    active = _read_active(root)
    out = []
    for p in sorted(
        (p for p in root.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name)),
        key=lambda p: _sort_key(p.name),
    ):
        if not is_complete(p):
            continue
        params = _load(p, "params.json")
        out.append(
            VersionInfo(
                version=p.name,
                path=p,
                active=p.name == active,
                created_at=str(params.get("created_at", "")),
                has_gguf=(p / "lora.gguf").is_file(),
                params=params,
                metrics=_load(p, "metrics.json"),
            )
        )
    return out


def active_version(root: Path) -> str | None:
    """The name in ``ACTIVE`` when that version exists and is complete, else None."""
    root = Path(root)
    name = _read_active(root)
    if name is None:
        return None
    if not NAME_RE.fullmatch(name) or not is_complete(root / name):
        logger.warning("ACTIVE names %r, which is not a complete version in %s; ignoring it", name, root)
        return None
    return name


def active_version_dir(root: Path) -> Path | None:
    """The active version's folder, or None when no (valid) version is active."""
    name = active_version(root)
    return Path(root) / name if name else None


def next_version_name(root: Path) -> str:
    """``v<N+1>`` where N is the highest numbered version (staging folders count too)."""
    root = Path(root)
    highest = 0
    if root.is_dir():
        for p in root.iterdir():
            name = (
                p.name[len(STAGING_PREFIX) :].rsplit("-", 1)[0]
                if p.name.startswith(STAGING_PREFIX)
                else p.name
            )
            m = NUMBERED_RE.match(name)
            if m:
                highest = max(highest, int(m.group(1)))
    return f"v{highest + 1}"


def clean_staging(root: Path) -> list[str]:
    """Remove staging folders left by jobs that died (their process is gone); return their names."""
    root = Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(STAGING_PREFIX):
            try:
                pid = int(p.name.rsplit("-", 1)[-1])
            except ValueError:
                pid = -1
            if pid != os.getpid() and (pid < 0 or not process_alive(pid)):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    if removed:
        logger.info("removed %d staging folder(s) of dead jobs: %s", len(removed), ", ".join(removed))
    return removed


@contextlib.contextmanager
def staged_version(root: Path, version: str | None = None) -> Iterator[tuple[Path, str]]:
    """Yield (staging folder, version name); on normal exit the folder is renamed to ``root/version``.

    On an exception the staging folder is deleted; on a kill it stays hidden (``list_versions``
    never shows it) and ``clean_staging`` removes it later.

    Raises:
        RegistryError: the name is invalid or taken, or the finished folder lacks a required file.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_staging(root)
    name = version or next_version_name(root)
    if not NAME_RE.fullmatch(name):
        raise RegistryError(f"version name {name!r} is invalid — use {NAME_RULE}")
    if (root / name).exists():
        raise RegistryError(f"adapter version {name} already exists in {root} — pick another name")
    staging = root / f"{STAGING_PREFIX}{name}-{os.getpid()}"
    staging.mkdir()
    try:
        yield staging, name
        missing = [f for f in REQUIRED_FILES if not (staging / f).is_file()]
        if missing:
            raise RegistryError(
                f"new version {name} lacks {', '.join(missing)} — the job did not finish; run it again"
            )
        os.rename(staging, root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("registered adapter version %s in %s", name, root)


def _history(root: Path) -> list[dict[str, Any]]:
    data = _load(root, HISTORY).get("activations") if (root / HISTORY).is_file() else None
    return list(data or [])


def resolve_name(root: Path, version: str) -> str:
    """``version`` with "active" and "latest" (newest by creation) made a name ("" for none)."""
    if version == "active":
        return _read_active(Path(root)) or ""
    if version == "latest":
        found = sorted(list_versions(root), key=lambda v: v.created_at)
        return found[-1].version if found else ""
    return version


def recently_active(root: Path) -> list[str]:
    """Complete versions in the order they were last active: the active one first, then back
    through the activation history (each once). A collection answering with several base models
    takes, per base, the first of these that fits it."""
    root = Path(root)
    order: list[str] = []
    active = active_version(root)
    if active:
        order.append(active)
    for entry in reversed(_history(root)):
        name = str(entry.get("version", "")) if isinstance(entry, dict) else ""
        if name and name not in order and NAME_RE.fullmatch(name) and is_complete(root / name):
            order.append(name)
    return order


def activate(root: Path, version: str, *, reason: str = "manual") -> VersionInfo:
    """Make ``version`` the active adapter (ACTIVE rewritten atomically; the switch is recorded).

    Raises:
        RegistryError: no such complete version (the message lists the known ones).
    """
    root = Path(root)
    if not NAME_RE.fullmatch(version):
        raise RegistryError(f"adapter version {version!r} is not allowed — use {NAME_RULE}")
    if not is_complete(root / version):
        known = ", ".join(v.version for v in list_versions(root)) or "none yet — run `hybrid train`"
        raise RegistryError(f"adapter version {version!r} not found in {root} — known versions: {known}")
    history = _history(root)
    history.append({"version": version, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "reason": reason})
    write_json_atomic(root / HISTORY, {"activations": history})
    write_text_atomic(root / ACTIVE, version + "\n")
    logger.info("activated adapter %s (%s)", version, reason)
    return next(v for v in list_versions(root) if v.version == version)


def rollback(root: Path) -> VersionInfo:
    """Re-activate the version that was active before the current one.

    Raises:
        RegistryError: there is no earlier activation of a version that still exists.
    """
    root = Path(root)
    history = _history(root)
    current = _read_active(root)
    while history and history[-1]["version"] == current:
        history.pop()
    while history and not is_complete(root / history[-1]["version"]):
        history.pop()
    if not history:
        raise RegistryError(
            f"nothing to roll back to from {current or 'no active adapter'} — "
            "use `hybrid adapters activate VERSION` (see `hybrid adapters list`)"
        )
    target = history[-1]["version"]
    history.append(
        {"version": target, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "reason": f"rollback from {current}"}
    )
    # the rolled-back-from entries are dropped, so a second rollback goes further back
    write_json_atomic(root / HISTORY, {"activations": history})
    write_text_atomic(root / ACTIVE, target + "\n")
    logger.info("rolled back adapter %s -> %s", current, target)
    return next(v for v in list_versions(root) if v.version == target)


PUBLISHED_FILES = (*REQUIRED_FILES, "lora.gguf", "metrics.json", "loss.json")


def publish(root: Path, version: str, target: Path) -> Path:
    """Copy ``version`` (a name, "active" or "latest") to ``target`` — the bundled default
    adapter's folder — replacing what is there only once the copy is complete.

    Raises:
        RegistryError: no such complete version, or it lacks its GGUF LoRA, or ``target`` is a
            folder that holds something other than an adapter (it would be replaced whole).
    """
    root, target = Path(root), Path(target)
    if target.exists() and not (target / "adapter_config.json").is_file() and any(target.iterdir()):
        raise RegistryError(
            f"{target} holds files that are not an adapter and publishing replaces the whole folder — "
            "pass an empty or new folder with --to"
        )
    version = resolve_name(root, version)
    source = root / version if version else None
    if source is None or not NAME_RE.fullmatch(version) or not is_complete(source):
        known = ", ".join(v.version for v in list_versions(root)) or "none yet — run `hybrid train`"
        raise RegistryError(f"adapter version {version or '(none)'!r} not found in {root} — known: {known}")
    missing = [f for f in PUBLISHED_FILES if not (source / f).is_file()]
    if missing:
        raise RegistryError(f"version {version} lacks {', '.join(missing)} — retrain it with `hybrid train`")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.publish-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name in PUBLISHED_FILES:
            shutil.copy2(source / name, staging / name)
        write_json_atomic(
            staging / "SOURCE.json", {"version": version, "published_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        )
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("published adapter %s to %s", version, target)
    return target
