"""The project's exception tree. Every error a user can cause or fix is a ``HybridError``.

    HybridError
     ├── ConfigError            bad settings or arguments
     │    └── AdapterMismatchError an adapter of another base model
     ├── SetupError             models or tools missing, wrong checksum, conversion failed
     │    └── ModelMissingError a model file or folder is not where settings say
     ├── DataError              malformed input data (JSONL rows, corpus files)
     ├── DocumentError          one document could not be loaded (reason kept)
     ├── IndexStoreError        index missing, corrupt, or built with other settings
     │    └── IndexMismatchError
     ├── GenerationError        a generator failed to produce text
     ├── TrainingError          a training job failed or was cancelled
     ├── RegistryError          adapter registry problems (unknown version, nothing to roll back)
     └── ExportError            merge / convert / quantize failed

Messages name the bad value and the next step. Library errors are translated at the boundary with
``raise ... from e`` so the cause is kept.
"""

from __future__ import annotations


class HybridError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(HybridError):
    """Settings or arguments are invalid."""


class SetupError(HybridError):
    """A model, embedder or tool is missing or broken; `hybrid setup` is the usual fix."""


class ModelMissingError(SetupError):
    """A model file or folder is not where the settings say it is."""


class AdapterMismatchError(ConfigError):
    """A LoRA adapter was trained on another base model than the one it would be applied to."""


class DataError(HybridError):
    """Input data is malformed (a JSONL row, a corpus file)."""


class DocumentError(HybridError):
    """A single document cannot be used; ``reason`` is a short machine-friendly tag."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


class IndexStoreError(HybridError):
    """An index is missing, corrupt or unusable."""


class IndexMismatchError(IndexStoreError):
    """An index was built with another embedder or splitter settings."""


class GenerationError(HybridError):
    """A generator failed to produce text."""


class TrainingError(HybridError):
    """A training job failed or was cancelled."""


class RegistryError(HybridError):
    """The adapter registry cannot do what was asked."""


class ExportError(HybridError):
    """Merging, converting or quantizing an export failed."""


class CorrectionStoreError(HybridError):
    """The corrections database cannot be opened or written."""
