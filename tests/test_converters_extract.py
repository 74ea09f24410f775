"""extract_converters on tiny fake sdists: idempotent, skips what the converters do not need and
unsafe paths, rejects a version mismatch, an incomplete sdist or a missing one."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from adapters.llama_tools import extract_converters
from domain.errors import SetupError

FAKE_FILES = {
    "convert_hf_to_gguf.py": "print('hf')\n",
    "convert_lora_to_gguf.py": "print('lora')\n",
    "LICENSE": "MIT\n",
    "conversion/__init__.py": "",
    "gguf-py/gguf/__init__.py": "",
    "models/templates/chatml.jinja": "{{ messages }}\n",
    # left out on purpose:
    "models/ggml-vocab-llama-spm.gguf": "big\n",
    "src/llama.cpp": "int main() {}\n",
    "gguf-py/tests/test_x.py": "",
    "conversion/../../../escape.py": "bad\n",
}
EXTRACTED = sorted(
    [
        "convert_hf_to_gguf.py",
        "convert_lora_to_gguf.py",
        "LICENSE",
        "conversion/__init__.py",
        "gguf-py/gguf/__init__.py",
        "models/templates/chatml.jinja",
        "hybrid_setup.json",
    ]
)


def _fake_sdist(path: Path, version: str, files: dict[str, str] = FAKE_FILES) -> Path:
    root = f"llama_cpp_python-{version}"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in {
            "PKG-INFO": f"Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: {version}\n",
            **{f"vendor/llama.cpp/{k}": v for k, v in files.items()},
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_extract_converters_is_idempotent(tmp_path) -> None:
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", "9.9.9")
    dest = tmp_path / "tools" / "llama.cpp-9.9.9"
    first = extract_converters(sdist, dest, expected_version="9.9.9")
    assert (first["status"], first["version"], first["files"], first["path"]) == (
        "done",
        "9.9.9",
        6,
        str(dest),
    )
    assert _tree(dest) == EXTRACTED
    assert (dest / "convert_hf_to_gguf.py").read_text() == "print('hf')\n"
    again = extract_converters(sdist, dest, expected_version="9.9.9")
    assert (again["status"], again["files"]) == ("already done", 6)
    forced = extract_converters(sdist, dest, expected_version="9.9.9", force=True)
    assert forced["status"] == "done"
    assert _tree(dest) == EXTRACTED
    assert sorted(p.name for p in (tmp_path / "tools").iterdir()) == ["llama.cpp-9.9.9"]  # no temp left
    assert not (tmp_path / "escape.py").exists()


def test_extract_converters_rejects_a_version_mismatch(tmp_path) -> None:
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", "0.0.1")
    dest = tmp_path / "tools" / "llama.cpp-0.3.36"
    with pytest.raises(SetupError, match=r"version 0\.0\.1 but llama-cpp-python 0\.3\.36 is installed"):
        extract_converters(sdist, dest, expected_version="0.3.36")
    assert not dest.exists()


def test_extract_converters_rejects_an_incomplete_or_missing_sdist(tmp_path) -> None:
    partial = {k: v for k, v in FAKE_FILES.items() if not k.startswith("conversion/")}
    sdist = _fake_sdist(tmp_path / "partial.tar.gz", "9.9.9", partial)
    with pytest.raises(SetupError, match="lacks conversion/__init__.py"):
        extract_converters(sdist, tmp_path / "tools" / "x", expected_version="9.9.9")
    assert not (tmp_path / "tools" / "x").exists()
    with pytest.raises(SetupError, match="sdist not found"):
        extract_converters(tmp_path / "nope.tar.gz", tmp_path / "tools" / "y", expected_version="9.9.9")
