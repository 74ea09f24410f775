"""What a model file is, read from its own metadata rather than its name: a GGUF file's header
(architecture, name, parameter count from its tensor shapes, quantization, chat template, context
length) or a Hugging Face folder's ``config.json``, safetensors headers and tokenizer config.

Nothing is loaded: the GGUF header is walked with ``struct`` (the tokenizer's arrays are skipped,
not decoded) and safetensors files are read up to the end of their JSON header, so identifying a
1 GB model takes well under a second. ``identity`` adds the file's sha256, cached beside the
workspace's copy (or in a cache folder for the user's own files) by path, size and modification
time, so an adapter can be matched to the exact base it was trained on.

Above ~300 lines because it holds two small readers of model metadata (GGUF headers, Hugging Face
folders, each under 150 lines) and the sha256 identity cache that names a file by them; they are
used together wherever a model is identified.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from domain.atomic import read_json, write_json_atomic
from domain.errors import ModelMissingError
from domain.progress import ProgressFn, no_progress

GGUF_MAGIC = b"GGUF"
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelInfo:
    """A model as its metadata describes it."""

    path: str
    format: str  # "gguf" | "hf"
    architecture: str
    name: str
    parameters: int
    quantization: str
    context_length: int | None
    layers: int | None
    hidden: int | None
    chat_template: str | None

    @property
    def template_family(self) -> str:
        """ "ChatML", "Llama 3", "Gemma" …, "other" or "none" — enough to say how turns are marked."""
        t = self.chat_template or ""
        if not t:
            return "none"
        for marker, family in (
            ("<|im_start|>", "ChatML"),
            ("<|start_header_id|>", "Llama 3"),
            ("<start_of_turn>", "Gemma"),
            ("[INST]", "Mistral/Llama 2"),
            ("<|user|>", "Zephyr/Phi"),
        ):
            if marker in t:
                return family
        return "other"

    def describe(self) -> str:
        """One line for pages and logs."""
        size = (
            f"{self.parameters / 1e9:.2f} B" if self.parameters >= 1e8 else f"{self.parameters / 1e6:.1f} M"
        )
        ctx = f", context {self.context_length:,}" if self.context_length else ""
        return (
            f"{self.name} — {self.architecture}, {size} parameters, {self.quantization}{ctx}, "
            f"chat template {self.template_family}"
        )

    def shape(self) -> dict[str, Any]:
        """The fields that must agree for a LoRA trained on one base to fit another."""
        return {
            "architecture": self.architecture,
            "parameters": self.parameters,
            "layers": self.layers,
            "hidden": self.hidden,
        }

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["template_family"] = self.template_family
        out.pop("chat_template")
        return out


# --------------------------------------------------------------------------- GGUF
def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("file ends inside its GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    if n > 1 << 26:
        raise ValueError(f"implausible string length {n}")
    return fh.read(n).decode("utf-8", errors="replace")


def _value(fh: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        return _read(fh, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(fh)
    if vtype == _ARRAY:
        etype, count = _read(fh, "<I"), _read(fh, "<Q")
        if etype in _SCALARS:  # skipped: only its length is kept
            fh.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
        elif etype == _STRING:
            for _ in range(count):
                fh.seek(_read(fh, "<Q"), 1)
        else:
            raise ValueError(f"unsupported GGUF array element type {etype}")
        return _ArrayLen(count)
    raise ValueError(f"unknown GGUF value type {vtype}")


class _ArrayLen(int):
    """A skipped array, standing for its length."""


def read_gguf_header(path: Path) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...], int]]]:
    """(key/values, [(tensor name, shape, ggml type)]) of a GGUF file; arrays are skipped.

    Raises:
        ValueError: not a GGUF file, or its header is cut short or malformed.
    """
    with Path(path).open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ValueError("not a GGUF file (no GGUF magic)")
        version = _read(fh, "<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is too old")
        n_tensors, n_kv = _read(fh, "<Q"), _read(fh, "<Q")
        kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(fh)
            kv[key] = _value(fh, _read(fh, "<I"))
        tensors = []
        for _ in range(n_tensors):
            name = _string(fh)
            dims = tuple(_read(fh, "<Q") for _ in range(_read(fh, "<I")))
            ttype = _read(fh, "<I")
            _read(fh, "<Q")  # offset
            tensors.append((name, dims, ttype))
    return kv, tensors


def _file_type_name(file_type: int | None) -> str:
    if file_type is None:
        return "unknown"
    try:
        from gguf import LlamaFileType

        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError):
        return f"file type {file_type}"


def _gguf_info(path: Path) -> ModelInfo:
    kv, tensors = read_gguf_header(path)
    arch = str(kv.get("general.architecture", "unknown"))
    params = 0
    for _, dims, _ in tensors:
        n = 1
        for d in dims:
            n *= d
        params += n

    def num(key: str) -> int | None:
        v = kv.get(f"{arch}.{key}")
        return int(v) if isinstance(v, int) and not isinstance(v, _ArrayLen) else None

    template = kv.get("tokenizer.chat_template")
    return ModelInfo(
        path=str(path),
        format="gguf",
        architecture=arch,
        name=str(kv.get("general.name") or Path(path).stem),
        parameters=params,
        quantization=_file_type_name(kv.get("general.file_type")),
        context_length=num("context_length"),
        layers=num("block_count"),
        hidden=num("embedding_length"),
        chat_template=template if isinstance(template, str) else None,
    )


# --------------------------------------------------------------------------- Hugging Face
def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        n = _read(fh, "<Q")
        if n > 1 << 28:
            raise ValueError(f"{path.name}: implausible safetensors header length {n}")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: safetensors header is not an object")
    return header


def _hf_info(folder: Path) -> ModelInfo:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    params, dtypes = 0, set()
    for f in sorted(folder.glob("*.safetensors")):
        for name, entry in _safetensors_header(f).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            n = 1
            for d in entry.get("shape", []):
                n *= int(d)
            params += n
            dtypes.add(str(entry.get("dtype", "?")))
    quant = config.get("quantization_config") or {}
    quantization = (
        str(quant.get("quant_method", "quantized")) if quant else "/".join(sorted(dtypes)) or "no weights"
    )
    template = None
    tok_config = folder / "tokenizer_config.json"
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif tok_config.is_file():
        value = json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template")
        template = value if isinstance(value, str) else None
    archs = config.get("architectures") or []
    return ModelInfo(
        path=str(folder),
        format="hf",
        architecture=str(config.get("model_type") or (archs[0] if archs else "unknown")),
        name=folder.name,
        parameters=params,
        quantization=quantization,
        context_length=config.get("max_position_embeddings"),
        layers=config.get("num_hidden_layers"),
        hidden=config.get("hidden_size"),
        chat_template=template,
    )


def identify(path: Path) -> ModelInfo:
    """The model at ``path`` (a GGUF file or a Hugging Face folder), from its metadata (read once
    per file version in a process).

    Raises:
        ModelMissingError: nothing is there, or it is neither a GGUF file nor a folder with
            config.json, or its header is unreadable (the message names the file and why).
    """
    path = Path(path).expanduser()
    try:
        stat = path.stat() if path.is_file() else (path / "config.json").stat()
    except OSError:
        stat = None
    if stat is None:
        return _identify(path)
    return _identify_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _identify_cached(path: Path, size: int, mtime_ns: int) -> ModelInfo:  # noqa: ARG001 (cache key)
    return _identify(path)


def _identify(path: Path) -> ModelInfo:
    try:
        if path.is_file():
            return _gguf_info(path)
        if (path / "config.json").is_file():
            return _hf_info(path)
    except (OSError, ValueError) as e:
        raise ModelMissingError(f"cannot read the model metadata of {path}: {e}") from e
    raise ModelMissingError(
        f"{path} is neither a GGUF file nor a Hugging Face folder with config.json — name one of those"
    )


def file_sha256(path: Path, on_progress: ProgressFn = no_progress, message: str = "") -> str:
    """The sha256 of a file, read in 8 MB chunks (``on_progress(bytes done, file size, message)``)."""
    digest, done, total = hashlib.sha256(), 0, Path(path).stat().st_size
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            on_progress(done, total, message)
    return digest.hexdigest()


def identity_sha256(path: Path, cache_dir: Path) -> str:
    """The sha256 identifying a model: of the GGUF file, or of a folder's safetensors files in
    name order; cached in ``cache_dir`` by path, size and modification time (a setup marker
    ``<file>.sha256`` is trusted as is)."""
    path = Path(path).expanduser().resolve()
    marker = path.with_name(path.name + ".sha256")
    if path.is_file() and marker.is_file():
        words = marker.read_text(encoding="utf-8").split()
        if words:
            return words[0]
    files = [path] if path.is_file() else sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelMissingError(f"{path} has no GGUF or safetensors file to identify")
    stamp = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:24]
    cached = Path(cache_dir) / f"{key}.json"
    try:
        record = read_json(cached)
        if record.get("stamp") == stamp:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    if len(files) == 1:
        sha = file_sha256(files[0])
    else:
        digest = hashlib.sha256()
        for f in files:
            digest.update(file_sha256(f).encode())
        sha = digest.hexdigest()
    write_json_atomic(cached, {"stamp": stamp, "sha256": sha})
    return sha
