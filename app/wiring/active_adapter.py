"""Which LoRA adapter answers in a collection: its active version in its adapter registry, else
the default adapter its bundle ships (the bundled collection only), else none. Every page, command
and wiring module asks here; training and its gate live in ``app.wiring.training``, exports in ``.export``.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings


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
