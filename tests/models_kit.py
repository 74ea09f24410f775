"""Profiles "set up" in a test workspace: the tiny GGUF under a profile's file name, with the
checksum marker `hybrid setup` leaves, so the wiring finds the profile ready."""

from __future__ import annotations

import shutil
from pathlib import Path


def set_up_profile(models: Path, key: str, gguf: Path) -> None:
    from adapters.base_model import PROFILES

    name = PROFILES[key].gguf_name
    models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(gguf, models / name)
    (models / f"{name}.sha256").write_text("checked at setup\n", encoding="utf-8")
