"""llama.cpp tooling without a llama.cpp checkout: extracting the GGUF converter scripts from the
llama-cpp-python sdist, running them as subprocesses with their own gguf-py, and quantizing through
``llama_cpp.llama_model_quantize`` (no binary).

What to convert and when (merging adapters, export jobs) is the export module's business.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from adapters.fsutil import fresh_temp_dir, swap_in_dir
from domain.atomic import read_json, write_json_atomic
from domain.errors import ExportError, SetupError

logger = logging.getLogger(__name__)

MARKER_NAME = "hybrid_setup.json"
VENDOR_PREFIX = "vendor/llama.cpp/"
# Paths (relative to vendor/llama.cpp) the converters need: the two scripts, the model classes they
# import, their own gguf-py, and the chat templates some model classes read. The 75 MB of
# models/ggml-vocab-*.gguf (only for a few legacy architectures) are left out.
CONVERTER_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "LICENSE")
CONVERTER_DIRS = ("conversion/", "gguf-py/gguf/", "models/templates/")
REQUIRED = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/__init__.py",
            "gguf-py/gguf/__init__.py")
HF_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
LORA_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
STDERR_TAIL_LINES = 12


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
        raise SetupError(f"{sdist} is not a llama-cpp-python sdist (top folders {sorted(roots)[:3]}) — "
                         "download it again with `pip download --no-binary :all: --no-deps llama-cpp-python`")
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
        return {"name": "converters", "path": str(dest), "version": expected, "files": files,
                "status": status, "seconds": round(time.perf_counter() - t0, 2)}

    marker = dest / MARKER_NAME
    if marker.is_file() and not force:
        info = read_json(marker)
        if info.get("version") == expected:
            return report("already done", int(info.get("files", 0)))
    if not sdist.is_file():
        raise SetupError(f"llama-cpp-python sdist not found at {sdist} — run `make install` (it saves the "
                         "sdist) or set HYBRID_MODELS__LLAMA_SDIST")
    try:
        tar = tarfile.open(sdist, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise SetupError(f"cannot read {sdist} ({e}) — download the sdist again and re-run `hybrid setup`") from e
    with tar:
        root, version = _sdist_root_and_version(tar, sdist)
        if version != expected:
            raise SetupError(f"sdist {sdist.name} is version {version} but llama-cpp-python {expected} is "
                             f"installed — fetch the matching sdist (`pip download --no-binary :all: --no-deps "
                             f"llama-cpp-python=={expected}`) and re-run `hybrid setup --only converters`")
        tmp = fresh_temp_dir(dest)
        try:
            files = _extract_members(tar, f"{root}/{VENDOR_PREFIX}", tmp)
            missing = [r for r in REQUIRED if not (tmp / r).is_file()]
            if missing:
                raise SetupError(f"sdist {sdist.name} lacks {', '.join(missing)} — it is not a complete "
                                 "llama-cpp-python sdist; download it again")
            write_json_atomic(tmp / MARKER_NAME, {"version": version, "sdist": sdist.name, "files": files})
            swap_in_dir(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("extracted %d converter files from %s into %s", files, sdist.name, dest)
    return report("done", files)


def _extract_members(tar: tarfile.TarFile, prefix: str, out: Path) -> int:
    """Copy the wanted regular files below ``prefix`` into ``out``; links and odd paths are skipped."""
    count = 0
    for member in tar.getmembers():
        if not member.isfile() or not member.name.startswith(prefix):
            continue
        rel = member.name[len(prefix):]
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
            raise ExportError(f"{what} failed (exit {proc.returncode}): {tail} — check the input folder, "
                              "or re-extract the converters with `hybrid setup --only converters --force`")
        os.replace(tmp, out_file)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("%s -> %s (%d bytes) in %.1f s", what, out_file, out_file.stat().st_size,
                time.perf_counter() - t0)
    return out_file


def convert_hf_to_gguf(hf_dir: Path, out_file: Path, *, tools_dir: Path, outtype: str = "f16") -> Path:
    """Convert a Hugging Face model folder to a GGUF file with llama.cpp's converter.

    Raises:
        ExportError: bad ``outtype``, converters missing, or the converter failed (stderr tail kept).
    """
    if outtype not in HF_OUTTYPES:
        raise ExportError(f"GGUF outtype {outtype!r} is not one of {', '.join(HF_OUTTYPES)} — "
                          "convert to f16 and quantize with quantize_gguf")
    if not (Path(hf_dir) / "config.json").is_file():
        raise ExportError(f"{hf_dir} has no config.json — point the export at a Hugging Face model folder")
    return _run_script(tools_dir, "convert_hf_to_gguf.py", [str(hf_dir), "--outtype", outtype],
                       out_file, f"convert_hf_to_gguf {Path(hf_dir).name}")


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
        raise ExportError(f"base model folder {base_hf_dir} has no config.json — run `hybrid setup --only base_hf`")
    args = [str(adapter_dir), "--base", str(base_hf_dir), "--outtype", outtype]
    return _run_script(tools_dir, "convert_lora_to_gguf.py", args, out_file,
                       f"convert_lora_to_gguf {Path(adapter_dir).name}")


QUANT_FTYPES = {"f16": "LLAMA_FTYPE_MOSTLY_F16", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
                "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


def quantize_gguf(src: Path, dst: Path, qtype: str, *, n_threads: int = 0) -> Path:
    """Quantize an f32/f16 GGUF to ``qtype`` with llama.cpp's own quantizer (in process).

    Args:
        src: an f32 or f16 GGUF.
        dst: the file to write (via a temp file beside it and a rename).
        qtype: "q8_0", "q4_k_m", "q4_0" or "f16".
        n_threads: quantizer threads (0 = all cores).

    Raises:
        ExportError: unknown ``qtype``, missing ``src``, or llama.cpp reported failure.
    """
    if qtype not in QUANT_FTYPES:
        raise ExportError(f"quantization {qtype!r} is not one of {', '.join(QUANT_FTYPES)} — pick one of those")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ExportError(f"GGUF {src} not found — convert the model first")
    try:
        import llama_cpp
    except ImportError as e:
        raise ExportError("llama-cpp-python is not installed — run `make install`") from e
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    lib_logger = logging.getLogger("llama-cpp-python")
    old_level = lib_logger.level
    t0 = time.perf_counter()
    try:
        lib_logger.setLevel(logging.ERROR)  # llama.cpp logs every tensor at INFO on stderr
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, QUANT_FTYPES[qtype])
        params.nthread = n_threads
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            raise ExportError(f"llama.cpp could not quantize {src.name} to {qtype} (code {rc}) — the source "
                              "must be an f32/f16 GGUF; re-run the export from the merged model")
        os.replace(tmp, dst)
    finally:
        lib_logger.setLevel(old_level)
        tmp.unlink(missing_ok=True)
    logger.info("quantized %s -> %s %s (%d bytes) in %.1f s", src.name, dst.name, qtype, dst.stat().st_size,
                time.perf_counter() - t0)
    return dst
