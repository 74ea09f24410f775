"""Which base model answers and trains: the profile (settings, else the collection's choice, else
the default), explicit file overrides, the GGUF (for llama.cpp), the Hugging Face folder (for
training), what each is (``adapters.model_info``: identified by its metadata and sha256, never by
its file name), and the llama.cpp converters. Says `run hybrid setup` when a file is absent.
Building the files is ``adapters.base_model``'s job.

Precedence for the profile: ``HYBRID_MODELS__PROFILE`` (or the CLI's ``--profile``) when given,
else the profile the selected collection was set to (``hybrid model use`` or the sidebar),
else the settings' default. ``models.base_gguf`` / ``models.base_hf`` name the user's own files and
win over any profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings
from domain.errors import ConfigError, HybridError, ModelMissingError

if TYPE_CHECKING:
    from adapters.base_model import Profile
    from adapters.model_info import ModelInfo

IDENTITY_CACHE = ".identity"  # under the workspace's models folder


def profile_key(settings: Settings) -> str:
    """The profile that answers in the selected collection (see the module docstring)."""
    if "profile" in settings.models.model_fields_set:
        return settings.models.profile
    try:
        from app.wiring.collections import get_collection

        chosen = get_collection(settings).profile
    except ConfigError:
        chosen = None
    return chosen or settings.models.profile


def profile(settings: Settings) -> Profile:
    from adapters.base_model import get_profile

    return get_profile(profile_key(settings))


def with_profile(settings: Settings, key: str | None) -> Settings:
    """``settings`` with profile ``key`` chosen explicitly (unchanged for None).

    Raises:
        ConfigError: no such profile (the message lists them).
    """
    if not key:
        return settings
    from adapters.base_model import get_profile

    get_profile(key)
    return settings.model_copy(update={"models": settings.models.model_copy(update={"profile": key})})


def _smollm2_gguf() -> Path:
    from adapters.base_model import locate_smollm2_gguf

    return locate_smollm2_gguf()


def profile_gguf(settings: Settings) -> Path:
    """Where the profile's GGUF lives (the workspace copy, or the packaged file for SmolLM2)."""
    p = profile(settings)
    if not p.assembled:
        return _smollm2_gguf()
    return settings.ws.models / p.gguf_name


def largest_ready_gguf(settings: Settings, *, translating: bool = False) -> Path | None:
    """The GGUF of the largest profile set up on this machine (assembled and checked), or None;
    ``translating``: among the profiles that translate questions well (``Profile.translates``)."""
    from adapters.base_model import PROFILES

    ready = [
        (p.bytes or 0, settings.ws.models / p.gguf_name)
        for p in PROFILES.values()
        if p.assembled
        and (p.translates or not translating)
        and (settings.ws.models / f"{p.gguf_name}.sha256").is_file()
    ]
    ready = [(size, path) for size, path in ready if path.is_file()]
    return max(ready)[1] if ready else None


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
    path = profile_gguf(settings)
    if not path.is_file():
        key = profile_key(settings)
        raise ModelMissingError(f"base model {path} not found — run `hybrid setup --profile {key}`")
    return path


def base_hf_target(settings: Settings) -> tuple[Path, Path]:
    """(GGUF to dequantize, HF folder to write) for the setup step that materializes the training copy.

    Ignores ``models.base_hf`` (a user's own folder is used as is, never written).
    """
    if settings.models.base_gguf is not None:
        return base_gguf_path(settings), settings.ws.models / f"{Path(settings.models.base_gguf).stem}-hf"
    return profile_gguf(settings), settings.ws.models / profile(settings).hf_name


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
        raise ModelMissingError(
            f"base model folder {path} not found — run `hybrid setup --profile {profile_key(settings)}`"
        )
    return path


def _answers_from_hf(settings: Settings, *, training: bool) -> bool:
    """True when the model in question is the HF folder rather than the GGUF: training from a
    user's own HF folder, or the transformers backend on one."""
    if settings.models.base_hf is None:
        return False
    return training or settings.generation.backend == "transformers"


def _base_path(settings: Settings, *, training: bool) -> Path:
    return (
        base_hf_path(settings) if _answers_from_hf(settings, training=training) else base_gguf_path(settings)
    )


def base_identity(settings: Settings, *, training: bool = False) -> tuple[str, ModelInfo]:
    """(sha256, metadata) of the base that answers — or, with ``training``, that a new adapter is
    trained on. A materialized copy shares its GGUF's identity (it was built from it).

    Raises:
        ModelMissingError: the base is not there, or its metadata is unreadable.
    """
    from adapters.model_info import identify, identity_sha256

    path = _base_path(settings, training=training)
    return identity_sha256(path, settings.ws.models / IDENTITY_CACHE), identify(path)


def base_sha256(settings: Settings, *, training: bool = False) -> str | None:
    """The base's sha256 (see ``base_identity``), or None when it cannot be read."""
    try:
        return base_identity(settings, training=training)[0]
    except (HybridError, OSError):
        return None


def _base_info(settings: Settings) -> ModelInfo | None:
    """The answering base's metadata (no sha256 is computed), or None when it is not set up."""
    from adapters.model_info import identify

    try:
        return identify(_base_path(settings, training=False))
    except (HybridError, OSError):
        return None


def describe_base(settings: Settings) -> str:
    """One line naming the model that answers, from its metadata ("not set up" when absent)."""
    info = _base_info(settings)
    return info.describe() if info is not None else f"{profile(settings).label} (not set up)"


def base_name(settings: Settings) -> str:
    """The answering model's name from its metadata ("<profile label> (not set up)" when absent)."""
    info = _base_info(settings)
    return info.name if info is not None else f"{profile(settings).label} (not set up)"


def tools_dir(settings: Settings) -> Path:
    """The llama.cpp converters' folder (extracted by `hybrid setup`) for the installed version."""
    from adapters.llama_tools import installed_llama_cpp_version

    return settings.ws.tools / f"llama.cpp-{installed_llama_cpp_version()}"


def profiles_status(settings: Settings) -> list[dict[str, object]]:
    """Every profile with its state on this machine: its packages installed, its GGUF set up, its
    training copy set up, and whether the selected collection answers with it."""
    from adapters.base_model import PROFILES, locate_gguf_parts
    from domain.errors import SetupError

    chosen = profile_key(settings)
    out: list[dict[str, object]] = []
    for key, p in PROFILES.items():
        s = with_profile(settings, key)
        try:
            gguf = profile_gguf(s)
            installed = True if not p.assembled else bool(locate_gguf_parts(p))
        except (SetupError, ModelMissingError):
            gguf, installed = settings.ws.models / p.gguf_name, False
        ready = gguf.is_file() and (not p.assembled or gguf.with_name(gguf.name + ".sha256").is_file())
        out.append(
            {
                "profile": key,
                "model": p.label,
                "languages": p.languages,
                "licence": p.licence,
                "packages_installed": installed,
                "gguf_ready": ready,
                "training_copy_ready": (settings.ws.models / p.hf_name / "config.json").is_file(),
                "selected": key == chosen,
            }
        )
    return out


def profile_labels() -> dict[str, str]:
    """Every profile's key and the label pages show for it."""
    from adapters.base_model import PROFILES

    return {key: p.label for key, p in PROFILES.items()}


def identify_model(path: Path) -> ModelInfo:
    """What the GGUF file or Hugging Face folder at ``path`` is, from its metadata (see
    ``adapters.model_info.identify``; ModelMissingError when it is neither or unreadable)."""
    from adapters.model_info import identify

    return identify(path)
