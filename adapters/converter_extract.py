"""Extracting llama.cpp's GGUF converter scripts (and what they import: ``conversion/``, their own
``gguf-py``, chat templates) from the llama-cpp-python sdist into the workspace, atomically, after
checking the sdist is the installed version. Running them is ``adapters.llama_tools``'s job.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.fsutil import fresh_temp_dir, swap_in_dir
from domain.atomic import read_json, write_json_atomic
from domain.errors import SetupError

logger = logging.getLogger(__name__)

MARKER_NAME = "hybrid_setup.json"
VENDOR_PREFIX = "vendor/llama.cpp/"
# Paths (relative to vendor/llama.cpp) the converters need: the two scripts, the model classes they
# import, their own gguf-py, and the chat templates some model classes read. The 75 MB of
# models/ggml-vocab-*.gguf (only for a few legacy architectures) are left out.
CONVERTER_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
CONVERTER_DIRS = ("conversion/", "gguf-py/gguf/", "models/templates/")
REQUIRED = (
    "convert_hf_to_gguf.py",
    "convert_lora_to_gguf.py",
    "conversion/__init__.py",
    "gguf-py/gguf/__init__.py",
)


def installed_llama_cpp_version() -> str | None:
    """The installed llama-cpp-python version, read from its metadata (llama_cpp is not imported)."""
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return None


def _sdist_root_and_version(tar: tarfile.TarFile, sdist: Path) -> tuple[str, str]:
    """The sdist's top folder name and its version (from PKG-INFO, else from the folder name)."""
    names = tar.getnames()
    roots = {n.split("/", 1)[0] for n in names if n}
    if len(roots) != 1:
        raise SetupError(
            f"{sdist} is not a llama-cpp-python sdist (top folders {sorted(roots)[:3]}) — "
            "download it again with `pip download --no-binary :all: --no-deps llama-cpp-python`"
        )
    root = roots.pop()
    version = root.rsplit("-", 1)[-1]
    try:
        member = tar.extractfile(f"{root}/PKG-INFO")
    except KeyError:
        member = None
    if member is not None:
        for line in member.read().decode("utf-8", "replace").splitlines():
            if line.startswith("Version:"):
                version = line.split(":", 1)[1].strip()
                break
    return root, version


def _wanted(rel: str) -> bool:
    return rel in CONVERTER_FILES or any(rel.startswith(d) for d in CONVERTER_DIRS)


def extract_converters(
    sdist: Path,
    dest: Path,
    *,
    force: bool = False,
    expected_version: str | None = None,
) -> dict[str, Any]:
    """Extract llama.cpp's GGUF converter scripts (and what they import) from the sdist into ``dest``.

    Args:
        sdist: the llama-cpp-python ``.tar.gz`` source distribution.
        dest: the folder to create (``<workspace>/tools/llama.cpp-<version>``); built in a hidden
            temporary folder and renamed at the end.
        force: extract again even when the completion marker names the same version.
        expected_version: the version the sdist must have (default: the installed llama-cpp-python).

    Returns:
        {"name": "converters", "path", "version", "files", "status", "seconds"}.

    Raises:
        SetupError: the sdist is missing, unreadable, of another version, or lacks the converters.
    """
    t0 = time.perf_counter()
    sdist, dest = Path(sdist), Path(dest)
    expected = expected_version or installed_llama_cpp_version()
    if expected is None:
        raise SetupError("llama-cpp-python is not installed — run `make install`, then `hybrid setup`")

    def report(status: str, files: int) -> dict[str, Any]:
        return {
            "name": "converters",
            "path": str(dest),
            "version": expected,
            "files": files,
            "status": status,
            "seconds": round(time.perf_counter() - t0, 2),
        }

    marker = dest / MARKER_NAME
    if marker.is_file() and not force:
        info = read_json(marker)
        if info.get("version") == expected:
            return report("already done", int(info.get("files", 0)))
    if not sdist.is_file():
        raise SetupError(
            f"llama-cpp-python sdist not found at {sdist} — run `make install` (it saves the "
            "sdist) or set HYBRID_MODELS__LLAMA_SDIST"
        )
    try:
        with tarfile.open(sdist, "r:*") as tar:
            version, files = _extract_checked(tar, sdist, dest, expected)
    except (tarfile.TarError, OSError) as e:
        raise SetupError(
            f"cannot extract the converters from {sdist} ({e}) — download the sdist again and re-run `hybrid setup`"
        ) from e
    logger.info("extracted %d converter files from %s into %s", files, sdist.name, dest)
    return report("done", files)


def _extract_checked(tar: tarfile.TarFile, sdist: Path, dest: Path, expected: str) -> tuple[str, int]:
    """Check the sdist's version, extract the converters into a temp folder, swap it into ``dest``."""
    root, version = _sdist_root_and_version(tar, sdist)
    if version != expected:
        raise SetupError(
            f"sdist {sdist.name} is version {version} but llama-cpp-python {expected} is "
            f"installed — fetch the matching sdist (`pip download --no-binary :all: --no-deps "
            f"llama-cpp-python=={expected}`) and re-run `hybrid setup --only converters`"
        )
    tmp = fresh_temp_dir(dest)
    try:
        files = _extract_members(tar, f"{root}/{VENDOR_PREFIX}", tmp)
        missing = [r for r in REQUIRED if not (tmp / r).is_file()]
        if missing:
            raise SetupError(
                f"sdist {sdist.name} lacks {', '.join(missing)} — it is not a complete "
                "llama-cpp-python sdist; download it again"
            )
        write_json_atomic(tmp / MARKER_NAME, {"version": version, "sdist": sdist.name, "files": files})
        swap_in_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return version, files


def _extract_members(tar: tarfile.TarFile, prefix: str, out: Path) -> int:
    """Copy the wanted regular files below ``prefix`` into ``out``; links and odd paths are skipped."""
    count = 0
    for member in tar.getmembers():
        if not member.isfile() or not member.name.startswith(prefix):
            continue
        rel = member.name[len(prefix) :]
        parts = PurePosixPath(rel).parts
        if not parts or ".." in parts or rel.startswith("/") or not _wanted(rel):
            continue
        target = out.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        if src is None:
            continue
        with src, target.open("wb") as fh:
            fh.write(src.read())
        count += 1
    return count
