"""The progress callback type shared by every long operation, and a no-op default."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    """Called as work advances: ``done`` of ``total`` units, with a short human message."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def no_progress(done: int, total: int, message: str = "") -> None:
    """A progress callback that ignores everything."""
