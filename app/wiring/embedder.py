"""Wires the embedder: turns ``settings.models.embedder`` ('e5', 'minilm' or a folder path) into one
shared ``SentenceTransformerEmbedder`` per folder and process. sentence-transformers is imported
only when an embedder is first built.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings

if TYPE_CHECKING:
    from domain.ports import Embedder

_BUILD_LOCK = threading.Lock()


def resolve_embedder(settings: Settings) -> tuple[Path, str]:
    """The folder to load and the identity name recorded with indexes, without loading anything.

    'e5' is the workspace's converted multilingual-e5-small, 'minilm' the packaged
    all-MiniLM-L6-v2, anything else a path to a sentence-transformers folder.

    Raises:
        ModelMissingError: 'minilm' was asked for but its package is missing.
    """
    choice = settings.models.embedder.strip()
    if choice.lower() == "e5":
        folder = settings.ws.embedder
        return folder, folder.name
    if choice.lower() == "minilm":
        from index.embedder import MINILM_NAME, locate_minilm

        return locate_minilm(), MINILM_NAME
    folder = Path(choice).expanduser().resolve()
    return folder, folder.name


def int8_folder(settings: Settings) -> Path:
    """Where the int8 copy of the configured embedder lives (built by `hybrid setup`)."""
    _, name = resolve_embedder(settings)
    return settings.ws.models / f"{name}-int8"


def embed_precision(settings: Settings) -> str:
    """The precision the embedder runs at: "auto" made concrete (bf16 where this CPU has native
    bf16 matmuls, else fp32); "int8" and the others as set."""
    precision = settings.index.embed_precision
    if precision == "auto":
        from index.embedder import fast_bf16_cpu

        precision = "bf16" if fast_bf16_cpu() else "fp32"
    return precision


def vectors_precision(settings: Settings, vectors: str | None) -> str | None:
    """The precision that makes ``vectors`` ("int8" or "float"): int8, or for float the settings'
    own precision unless that is int8 (then fp32); None (the settings') when ``vectors`` is None."""
    if vectors == "int8":
        return "int8"
    if vectors == "float" and settings.index.embed_precision == "int8":
        return "fp32"
    return None


def build_embedder(settings: Settings, precision: str | None = None) -> Embedder:
    """The process-wide embedder for these settings (built once per folder and precision,
    thread-safe); ``precision`` overrides the settings' one (an index built at another precision
    is queried at its own).

    Raises:
        ModelMissingError: the folder is missing or does not load (message says to run `hybrid setup`).
    """
    folder, name = resolve_embedder(settings)
    precision = precision or embed_precision(settings)
    if precision == "int8":
        folder = int8_folder(settings)
    with _BUILD_LOCK:
        return _load(str(folder), name, precision)


@functools.lru_cache(maxsize=4)
def _load(folder: str, name: str, precision: str) -> Embedder:
    if precision == "int8":
        from index.int8_embedder import Int8Embedder

        return Int8Embedder(Path(folder), name=name)
    from index.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(Path(folder), name=name, precision=precision)


def clear_embedder_cache() -> None:
    """Forget built embedders (after `hybrid setup --force` replaced a folder, and in tests)."""
    with _BUILD_LOCK:
        _load.cache_clear()
