"""Which base model files the app uses: resolves the GGUF (for llama.cpp), the Hugging Face folder
(for training), its identity and the llama.cpp converters from settings — explicit overrides first,
then the profile (qwen or smollm2) — and says `run hybrid setup` when they are absent. Building
them is ``adapters.base_model``'s job.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from domain.errors import HybridError, ModelMissingError

SMOLLM2_HF_NAME = "smollm2-135m-instruct-hf"


def _smollm2_gguf() -> Path:
    from adapters.base_model import locate_smollm2_gguf

    return locate_smollm2_gguf()


def base_gguf_path(settings: Settings) -> Path:
    """The base model GGUF: ``models.base_gguf`` if set, else the profile's GGUF.

    Raises:
        ModelMissingError: the file is not there (the message names it and the fix).
    """
    override = settings.models.base_gguf
    if override is not None:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelMissingError(
                f"base GGUF {path} (HYBRID_MODELS__BASE_GGUF) not found — fix the path or unset it"
            )
        return path
    if settings.models.profile == "smollm2":
        return _smollm2_gguf()
    path = settings.ws.base_gguf
    if not path.is_file():
        raise ModelMissingError(f"base model {path} not found — run `hybrid setup`")
    return path


def base_hf_target(settings: Settings) -> tuple[Path, Path]:
    """(GGUF to dequantize, HF folder to write) for the setup step that materializes the training copy.

    Ignores ``models.base_hf`` (a user's own folder is used as is, never written).
    """
    if settings.models.base_gguf is not None:
        return base_gguf_path(settings), settings.ws.models / f"{Path(settings.models.base_gguf).stem}-hf"
    if settings.models.profile == "smollm2":
        return _smollm2_gguf(), settings.ws.models / SMOLLM2_HF_NAME
    return settings.ws.base_gguf, settings.ws.base_hf


def base_hf_path(settings: Settings) -> Path:
    """The Hugging Face base model folder used for training and the transformers backend:
    ``models.base_hf`` if set, else the materialized copy of the profile's (or overridden) GGUF.

    Raises:
        ModelMissingError: the folder has no config.json (the message names it and the fix).
    """
    override = settings.models.base_hf
    if override is not None:
        path = Path(override).expanduser()
        if not (path / "config.json").is_file():
            raise ModelMissingError(
                f"base model folder {path} (HYBRID_MODELS__BASE_HF) has no config.json — "
                "point it at a Hugging Face model folder or unset it"
            )
        return path
    _, path = base_hf_target(settings)
    if not (path / "config.json").is_file():
        raise ModelMissingError(f"base model folder {path} not found — run `hybrid setup`")
    return path


def base_sha256(settings: Settings) -> str | None:
    """The base GGUF's verified sha256 (from its setup marker), the identity of the training base."""
    try:
        gguf = base_gguf_path(settings)
        return gguf.with_name(gguf.name + ".sha256").read_text(encoding="utf-8").split()[0]
    except (HybridError, OSError, IndexError):
        return None


def tools_dir(settings: Settings) -> Path:
    """The llama.cpp converters' folder (extracted by `hybrid setup`) for the installed version."""
    from adapters.llama_tools import installed_llama_cpp_version

    return settings.ws.tools / f"llama.cpp-{installed_llama_cpp_version()}"
