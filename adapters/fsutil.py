"""Folder-level atomic moves for the setup steps: build in a hidden temporary folder beside the
destination, then swap it in with renames, so a crash leaves either the old folder or the new one.

File-level atomic writes are ``domain.atomic``'s job; this module only handles whole folders.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from domain.errors import SetupError


def folder_bytes(path: Path) -> int:
    """Total size in bytes of the files below ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def require_free_space(folder: Path, need: int, what: str) -> None:
    """Raise SetupError, before anything is written, when ``folder``'s disk has less than ``need``
    bytes free (a full disk would otherwise fail halfway through a multi-GB write)."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SetupError(
            f"{what} needs {need / 1e9:.1f} GB free on the disk holding {folder}, but only "
            f"{free / 1e9:.1f} GB is free — free some space and re-run; nothing was changed"
        )


def fresh_temp_dir(dest: Path) -> Path:
    """An empty hidden folder beside ``dest`` (leftovers of crashed runs are removed first)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for old in dest.parent.glob(f".{dest.name}.tmp-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    return tmp


def swap_in_dir(tmp: Path, dest: Path) -> None:
    """Move the finished folder ``tmp`` to ``dest``, replacing any previous ``dest``.

    The old folder is renamed aside first and deleted only after the new one is in place.
    """
    tmp, dest = Path(tmp), Path(dest)
    aside = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        os.replace(dest, aside)
    os.replace(tmp, dest)
    shutil.rmtree(aside, ignore_errors=True)
