"""Logging setup for entry points (CLI and app)."""

from __future__ import annotations

import logging


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once: time, level, module, message."""
    root = logging.getLogger()
    if getattr(root, "_hybrid_configured", False):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root._hybrid_configured = True  # type: ignore[attr-defined]
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
