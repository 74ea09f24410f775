"""llama.cpp tooling without a llama.cpp checkout: running the GGUF converter scripts (extracted
from the llama-cpp-python sdist by ``adapters.converter_extract``, re-exported here) as subprocesses
with their own gguf-py, and quantizing through ``llama_cpp.llama_model_quantize`` (no binary).

What to convert and when (merging adapters, export jobs) is the export module's business.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.converter_extract import MARKER_NAME, extract_converters, installed_llama_cpp_version
from domain.errors import ExportError

logger = logging.getLogger(__name__)

__all__ = [
    "MARKER_NAME",
    "QUANT_FTYPES",
    "convert_hf_to_gguf",
    "convert_lora_to_gguf",
    "extract_converters",
    "installed_llama_cpp_version",
    "quantize_gguf",
]

HF_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
LORA_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
STDERR_TAIL_LINES = 12


def _tool_env(tools_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)
    gguf_py = str(Path(tools_dir) / "gguf-py")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (gguf_py, env.get("PYTHONPATH", "")) if p)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def _run_script(tools_dir: Path, script: str, args: list[str], out_file: Path, what: str) -> Path:
    """Run a converter script writing to a temp file beside ``out_file``, then rename it."""
    tools_dir, out_file = Path(tools_dir), Path(out_file)
    script_path = tools_dir / script
    if not script_path.is_file():
        raise ExportError(f"converter {script_path} not found — run `hybrid setup --only converters`")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp-{os.getpid()}")
    cmd = [sys.executable, str(script_path), *args, "--outfile", str(tmp)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=_tool_env(tools_dir), capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not tmp.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
            raise ExportError(
                f"{what} failed (exit {proc.returncode}): {tail} — check the input folder, "
                "or re-extract the converters with `hybrid setup --only converters --force`"
            )
        os.replace(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info(
        "%s -> %s (%d bytes) in %.1f s", what, out_file, out_file.stat().st_size, time.perf_counter() - t0
    )
    return out_file


def convert_hf_to_gguf(hf_dir: Path, out_file: Path, *, tools_dir: Path, outtype: str = "f16") -> Path:
    """Convert a Hugging Face model folder to a GGUF file with llama.cpp's converter.

    Raises:
        ExportError: bad ``outtype``, converters missing, or the converter failed (stderr tail kept).
    """
    if outtype not in HF_OUTTYPES:
        raise ExportError(
            f"GGUF outtype {outtype!r} is not one of {', '.join(HF_OUTTYPES)} — "
            "convert to f16 and quantize with quantize_gguf"
        )
    if not (Path(hf_dir) / "config.json").is_file():
        raise ExportError(f"{hf_dir} has no config.json — point the export at a Hugging Face model folder")
    return _run_script(
        tools_dir,
        "convert_hf_to_gguf.py",
        [str(hf_dir), "--outtype", outtype],
        out_file,
        f"convert_hf_to_gguf {Path(hf_dir).name}",
    )


def convert_lora_to_gguf(
    adapter_dir: Path, out_file: Path, *, base_hf_dir: Path, tools_dir: Path, outtype: str = "f16"
) -> Path:
    """Convert a PEFT LoRA adapter folder to a GGUF LoRA, against a local base model folder.

    ``--base`` is always passed so the converter never reaches for the hub.

    Raises:
        ExportError: bad ``outtype``, missing folders, or the converter failed (stderr tail kept).
    """
    if outtype not in LORA_OUTTYPES:
        raise ExportError(f"LoRA outtype {outtype!r} is not one of {', '.join(LORA_OUTTYPES)}")
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ExportError(f"{adapter_dir} has no adapter_config.json — point it at a PEFT adapter version")
    if not (Path(base_hf_dir) / "config.json").is_file():
        raise ExportError(
            f"base model folder {base_hf_dir} has no config.json — run `hybrid setup --only base_hf`"
        )
    args = [str(adapter_dir), "--base", str(base_hf_dir), "--outtype", outtype]
    return _run_script(
        tools_dir, "convert_lora_to_gguf.py", args, out_file, f"convert_lora_to_gguf {Path(adapter_dir).name}"
    )


QUANT_FTYPES = {
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
}


# ggml_type numbers (ggml.h) for tensors a quantization may keep in another type than its recipe's.
EMBEDDING_TYPES = {"f16": 1, "q8_0": 8}
# ggml types a tensor override may ask for (the quantizer makes each from f16 without an
# importance matrix); the values are ggml's own type numbers, as stored in GGUF tensor infos.
TENSOR_TYPES = {
    **EMBEDDING_TYPES,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q2_k": 10,
    "q3_k": 11,
    "q4_k": 12,
    "q5_k": 13,
    "q6_k": 14,
}


@contextmanager
def llama_output_captured() -> Iterator[list[str]]:
    """Collect what llama.cpp prints during the block instead of showing it: its log messages (the
    quantizer logs a line per tensor override, and llama-cpp-python's level table shows this
    llama.cpp's warnings while hiding its errors) and what ggml writes straight to file
    descriptor 2 (a line per tensor type fallback). Yields a list holding the lines once the
    block has ended."""
    import llama_cpp
    import llama_cpp._logger as lib_log

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(_level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace").rstrip("\n"))

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
        try:
            yield lines
        finally:
            llama_cpp.llama_log_set(lib_log.llama_log_callback, ctypes.c_void_p(0))
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            lines += f.read().decode("utf-8", "replace").splitlines()


def _imatrix_array(imatrix: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    """``llama_model_imatrix_data`` entries ending in a NULL name, and the buffers they point into."""
    import llama_cpp
    import numpy as np

    keep: list[Any] = []
    entries = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
    for i, (name, values) in enumerate(sorted(imatrix.items())):
        arr = np.ascontiguousarray(values, dtype=np.float32)
        if arr.ndim != 1 or not np.isfinite(arr).all():
            raise ExportError(f"importance matrix for {name} is not a finite vector — re-run the export")
        keep.append(arr)
        entries[i].name = name.encode()
        entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = arr.size
    entries[len(imatrix)].name = None
    return entries, keep


def quantize_gguf(
    src: Path,
    dst: Path,
    qtype: str,
    *,
    n_threads: int = 0,
    embedding_type: str | None = None,
    imatrix: Mapping[str, Any] | None = None,
    tensor_types: Mapping[str, str] | None = None,
) -> Path:
    """Quantize an f32/f16 GGUF to ``qtype`` with llama.cpp's own quantizer (in process).

    Args:
        src: an f32 or f16 GGUF.
        dst: the file to write (via a temp file beside it and a rename).
        qtype: "q8_0", "q4_k_m", "q4_0" or "f16".
        n_threads: quantizer threads (0 = all cores).
        embedding_type: keep the token embedding and output matrices in this type ("f16" or
            "q8_0") instead of the quantization's own choice.
        imatrix: GGUF tensor name -> mean squared input activation per column (see
            ``adapters.imatrix``); llama.cpp then weights each column's rounding error by it.
        tensor_types: regular expression (searched in GGUF tensor names) -> a ``TENSOR_TYPES`` name
            ("q8_0", "q6_k", …) for the tensors it matches, instead of the recipe's type; the
            first pattern that matches wins.

    Raises:
        ExportError: unknown ``qtype``, missing ``src``, or llama.cpp reported failure.
    """
    if qtype not in QUANT_FTYPES:
        raise ExportError(
            f"quantization {qtype!r} is not one of {', '.join(QUANT_FTYPES)} — pick one of those"
        )
    if embedding_type is not None and embedding_type not in EMBEDDING_TYPES:
        raise ExportError(
            f"embedding type {embedding_type!r} is not one of {', '.join(EMBEDDING_TYPES)} — pick one of those"
        )
    for pattern, kind in (tensor_types or {}).items():
        if kind not in TENSOR_TYPES:
            raise ExportError(
                f"tensor type {kind!r} for {pattern!r} is not one of {', '.join(TENSOR_TYPES)} — pick one of those"
            )
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ExportError(f"GGUF {src} not found — convert the model first")
    try:
        import llama_cpp
    except ImportError as e:
        raise ExportError("llama-cpp-python is not installed — run `make install`") from e
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    t0 = time.perf_counter()
    try:
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, QUANT_FTYPES[qtype])
        params.nthread = n_threads
        if embedding_type is not None:
            params.token_embedding_type = EMBEDDING_TYPES[embedding_type]
            params.output_tensor_type = EMBEDDING_TYPES[embedding_type]
        if imatrix:
            entries, _buffers = _imatrix_array(imatrix)  # both stay alive through the call below
            params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        if tensor_types:
            overrides = (llama_cpp.llama_model_tensor_override * (len(tensor_types) + 1))()
            for i, (pattern, kind) in enumerate(tensor_types.items()):
                overrides[i].pattern = pattern.encode()
                overrides[i].type = TENSOR_TYPES[kind]
            overrides[len(tensor_types)].pattern = None
            params.tt_overrides = ctypes.cast(
                overrides, ctypes.POINTER(llama_cpp.llama_model_tensor_override)
            )
        with llama_output_captured() as noise:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        logger.debug("llama.cpp quantize said:\n%s", "\n".join(noise))
        if rc != 0 or not tmp.is_file():
            said = next((ln for ln in reversed(noise) if "failed to quantize" in ln), "")
            reason = said.split("failed to quantize:", 1)[-1].strip()
            raise ExportError(
                f"llama.cpp could not quantize {src.name} to {qtype}: {reason} — fix that input and re-run the export"
                if reason
                else f"llama.cpp could not quantize {src.name} to {qtype} (code {rc}) — the source "
                "must be an f32/f16 GGUF; re-run the export from the merged model"
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info(
        "quantized %s -> %s %s (%d bytes) in %.1f s",
        src.name,
        dst.name,
        qtype,
        dst.stat().st_size,
        time.perf_counter() - t0,
    )
    return dst
