"""Logging setup for entry points (CLI and app)."""

from __future__ import annotations

import logging
import sys


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (a stream swapped after
    setup, as test harnesses and some servers do, is followed rather than written to closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once: time, level, module, message."""
    root = logging.getLogger()
    if getattr(root, "_hybrid_configured", False):
        root.setLevel(level.upper())
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._hybrid_configured = True  # type: ignore[attr-defined]
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
