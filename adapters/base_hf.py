"""The fp32 Hugging Face copy of a GGUF model, for training: transformers loads the GGUF
(dequantized), the model is rebuilt as a plain one (transformers refuses to save a GGUF-loaded
model), and saved as safetensors with its tokenizer and chat template, atomically, with a marker.

Finding and assembling the GGUF is ``adapters.base_model``'s job.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.fsutil import folder_bytes, fresh_temp_dir, require_free_space, swap_in_dir
from domain.atomic import read_json, write_json_atomic
from domain.errors import ModelMissingError, SetupError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

HF_MARKER = "hybrid_setup.json"
TOKENIZER_BYTES = 64 * 1024 * 1024  # headroom for tokenizer files and config beside the weights
# Used only when a GGUF carries no chat template (the Qwen GGUF does carry one).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@contextmanager
def _quiet_hf_progress_bars() -> Iterator[None]:
    """transformers' own tqdm bars off while the caller's on_progress reports the stages."""
    from transformers.utils import logging as hf_logging

    were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_on:
            hf_logging.enable_progress_bar()


def _load_gguf_fp32(gguf: Path) -> tuple[Any, Any]:
    """transformers' GGUF loader, dequantized to fp32: (model, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except (ImportError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise SetupError(
            f"transformers could not load {gguf} ({e}) — check that the `gguf` package is "
            "installed and run `hybrid setup --only base_gguf,base_hf --force`"
        ) from e
    return model, tokenizer


def _rebuild_plain(model: Any) -> Any:
    """A plain (not "GGUF-quantized") copy of ``model`` sharing its tensors, so it can be saved."""
    import torch
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    state = model.state_dict()
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise SetupError(
            f"rebuilding the HF model lost weights (missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}) — report this; the GGUF may be of another architecture"
        )
    if tied:
        plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


def _write_hf_copy(gguf: Path, out: Path, on_progress: ProgressFn) -> int:
    """Load ``gguf`` as fp32, rebuild it as a plain model, save it with its tokenizer into ``out``;
    returns the parameter count."""
    on_progress(0, 4, f"loading and dequantizing {gguf.name}")
    model, tokenizer = _load_gguf_fp32(gguf)
    on_progress(1, 4, "rebuilding a plain fp32 model")
    plain = _rebuild_plain(model)
    del model
    gc.collect()
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    weight_bytes = sum(p.numel() * p.element_size() for p in plain.parameters())
    require_free_space(out, weight_bytes + TOKENIZER_BYTES, "the fp32 training copy")
    on_progress(2, 4, "saving safetensors")
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in plain.parameters())
    write_json_atomic(
        out / HF_MARKER,
        {
            "source_gguf": gguf.name,
            "source_bytes": gguf.stat().st_size,
            "dtype": "float32",
            "parameters": n_params,
            "architecture": plain.config.model_type,
        },
    )
    return n_params


def materialize_base_hf(
    gguf: Path,
    dest: Path,
    *,
    force: bool = False,
    on_progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Write an fp32 Hugging Face copy (safetensors, tokenizer, ChatML template) of a GGUF model.

    Args:
        gguf: the GGUF to dequantize (normally the assembled base model).
        dest: the folder to create; built in a hidden temporary folder and renamed at the end.
        force: rebuild even when the folder's completion marker is present.
        on_progress: called per stage (4 stages).

    Returns:
        {"name": "base_hf", "path", "bytes", "status", "seconds"}.

    Raises:
        ModelMissingError: ``gguf`` does not exist.
        SetupError: transformers cannot load it, or the rebuilt model lost weights.
    """
    t0 = time.perf_counter()
    gguf, dest = Path(gguf), Path(dest)

    def report(status: str) -> dict[str, Any]:
        return {
            "name": "base_hf",
            "path": str(dest),
            "bytes": folder_bytes(dest),
            "status": status,
            "seconds": round(time.perf_counter() - t0, 2),
        }

    if (dest / HF_MARKER).is_file() and not force:
        return report("already done")
    if not gguf.is_file():
        raise ModelMissingError(f"base GGUF {gguf} not found — run `hybrid setup --only base_gguf` first")

    tmp = fresh_temp_dir(dest)
    try:
        with _quiet_hf_progress_bars():
            n_params = _write_hf_copy(gguf, tmp, on_progress)
        on_progress(3, 4, "moving into place")
        swap_in_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    gc.collect()
    on_progress(4, 4, "done")
    logger.info("materialized %s (%d parameters) in %.1f s", dest, n_params, time.perf_counter() - t0)
    return report("done")


def read_hf_marker(dest: Path) -> dict[str, Any] | None:
    """The completion record of a materialized HF folder, or None when it is incomplete."""
    marker = Path(dest) / HF_MARKER
    return read_json(marker) if marker.is_file() else None
