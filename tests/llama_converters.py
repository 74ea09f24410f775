"""Finds llama.cpp's converter scripts for tests: the workspace copy made by `hybrid setup`, else a
fresh extraction from the saved sdist; None when neither exists (tests then skip with a reason)."""

from __future__ import annotations

import os
from pathlib import Path

from adapters.llama_tools import MARKER_NAME, extract_converters, installed_llama_cpp_version

REPO_ROOT = Path(__file__).resolve().parents[1]


def workspace_root() -> Path:
    """The workspace the real models live in (``HYBRID_WORKSPACE`` or ``./workspace``)."""
    return Path(os.environ.get("HYBRID_WORKSPACE") or REPO_ROOT / "workspace").expanduser().resolve()


def converters_for_tests(scratch: Path) -> Path | None:
    """A folder holding convert_hf_to_gguf.py and its gguf-py, or None."""
    version = installed_llama_cpp_version()
    if version is None:
        return None
    in_workspace = workspace_root() / "tools" / f"llama.cpp-{version}"
    if (in_workspace / MARKER_NAME).is_file():
        return in_workspace
    sdist = REPO_ROOT / ".cache" / "sdist" / f"llama_cpp_python-{version}.tar.gz"
    if sdist.is_file():
        return Path(extract_converters(sdist, Path(scratch) / f"llama.cpp-{version}")["path"])
    return None
