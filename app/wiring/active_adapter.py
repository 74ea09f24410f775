"""Which LoRA adapter answers: the active version of the workspace registry, else the bundled
default adapter in ``corpus/default_adapter``, else none. Every page, command and wiring module
asks here; training, the gate and exports live in ``app.wiring.training``.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "corpus"
DEFAULT_ADAPTER_DIR = CORPUS / "default_adapter"


def registry_root(settings: Settings) -> Path:
    return settings.ws.adapters


def current_adapter(settings: Settings) -> tuple[Path | None, str | None]:
    """(folder, label) of the adapter answers use: the active workspace version, else the bundled
    default adapter (label "default"), else (None, None)."""
    from adapters.registry import resolve_adapter_dir

    return resolve_adapter_dir(registry_root(settings), DEFAULT_ADAPTER_DIR)
