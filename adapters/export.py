"""Exporting the tuned model for llama.cpp and Ollama: merge the LoRA adapter into the HF base,
convert to an f16 GGUF, quantize (q8_0, q4_k_m), and check the result — greedy answers to golden
prompts against transformers + peft, file size, tokens/s, and perplexity on held-out domain text
against the f16 file. Writes an Ollama Modelfile and the llama.cpp command lines beside the file.

Layout: ``<exports>/<label>/model-<quant>.gguf`` plus ``Modelfile-<quant>``, ``run-<quant>.txt`` and
``export-<quant>.json``. The merged f16 file is kept and reused by later quantizations of the same
adapter (``source.json`` names the adapter's hash).

Above ~300 lines because ``export_model`` is one sequence (merge, convert, quantize, check, write
the reports) whose steps share the merged model, the golden answers and the removal of the merged
folder when a step fails; the converter tools are ``adapters.llama_tools``' and the block splice
``adapters.gguf_splice``'s.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters import gguf_splice
from adapters.chat_pieces import chat_pieces, encode_chat, hf_encoder
from adapters.fsutil import fresh_temp_dir
from adapters.gguf_checks import answers_and_speed, perplexity
from adapters.imatrix import adapter_tensor_pattern, calibration_windows, importance_matrix
from adapters.llama_tools import convert_hf_to_gguf, quantize_gguf
from adapters.model_info import file_sha256
from domain.atomic import read_json, write_json_atomic, write_text_atomic
from domain.errors import ExportError, ModelMissingError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_k_m")
# q8_0 keeps the token embedding (also the output matrix in tied models such as Qwen2.5-0.5B) in
# f16: greedy answers then match transformers + peft on more golden prompts, for a larger file
# (corpus/measured/sample-corpus-notes.md). q4_k_m keeps llama.cpp's own recipe.
EMBEDDING_TYPE = {"q8_0": "f16"}
# q4_k_m is quantized with an importance matrix measured on the merged model over training text
# (never the held-out text), which lowers its perplexity against the f16 file. Q8_0's quantizer
# ignores importance matrices.
IMATRIX_QUANTS = ("q4_k_m",)
# The base GGUF is already 4-bit, so the merged weights are "base on a 4-bit grid + a small LoRA
# delta"; rounding them to 4–5 bits again loses much of the delta. q4_k_m therefore keeps the
# matrices the adapter changed (attention q/k/v/o by default) at q8_0 and the rest at llama.cpp's
# Q4_K_M recipe, for a slightly larger file. Every tensor the adapter leaves alone keeps the base
# GGUF's own blocks (``adapters.gguf_splice``) rather than a second rounding of their decoded values.
ADAPTER_TENSOR_TYPE = {"q4_k_m": "q8_0"}
CALIBRATION_WINDOW = 512
CALIBRATION_TOKENS = 8192
IMATRIX_FILE = "imatrix.safetensors"
Message = dict[str, str]
STAGES = 6


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = set()
    eos = model.generation_config.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for tok in (tokenizer.eos_token, "<|im_end|>", "<|endoftext|>"):
        if tok:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                ids.add(tid)
    return ids


def _cut(ids: Sequence[int], stops: set[int]) -> list[int]:
    out = []
    for t in ids:
        if t in stops:
            break
        out.append(int(t))
    return out


def reference_model(base_hf: Path, adapter_dir: Path | None) -> tuple[Any, Any]:
    """(tokenizer, fp32 model with the adapter applied by peft, in eval mode) — the reference the
    exported file's golden answers are compared with."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_hf), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(base_hf), dtype=torch.float32, local_files_only=True)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.eval()
    return tok, model


def reference_answers(
    tok: Any, model: Any, prompts: Sequence[Sequence[Message]], max_new_tokens: int
) -> tuple[list[list[int]], list[list[int]], set[int]]:
    """(prompt ids, greedy answer ids up to the first stop token, the stop ids) from transformers."""
    import torch

    stops = _stop_ids(tok, model)
    encode = hf_encoder(tok)  # document and question text stays text (adapters.chat_pieces)
    prompt_ids, answers = [], []
    with torch.no_grad():
        for messages in prompts:
            pieces = chat_pieces(
                lambda ms: tok.apply_chat_template(ms, add_generation_prompt=True, tokenize=False), messages
            )
            ids = encode_chat(pieces, encode, lambda text: encode(text, True))
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=sorted(stops),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else sorted(stops)[0],
            )
            prompt_ids.append(list(ids))
            answers.append(_cut(out[0, len(ids) :].tolist(), stops))
    return prompt_ids, answers, stops


def _reference_and_merge(
    base_hf: Path,
    adapter_dir: Path | None,
    prompts: Sequence[Sequence[Message]],
    merged_dir: Path,
    max_new_tokens: int,
    calibration_text: str = "",
    imatrix_file: Path | None = None,
) -> tuple[list[list[int]], list[list[int]], set[int]]:
    """Prompt ids and transformers greedy answers (adapter applied by peft), then the merged model
    saved, and (given calibration text) its importance matrix saved to ``imatrix_file``."""
    tok, model = reference_model(base_hf, adapter_dir)
    prompt_ids, answers, stops = reference_answers(tok, model, prompts, max_new_tokens)
    encode = hf_encoder(tok)
    if adapter_dir is not None:
        model = model.merge_and_unload()
    if calibration_text and imatrix_file is not None:
        from safetensors.numpy import save_file

        ids = encode(calibration_text, False)
        windows = calibration_windows(ids, window=CALIBRATION_WINDOW, max_tokens=CALIBRATION_TOKENS)
        imatrix = importance_matrix(model, windows)
        tmp = imatrix_file.with_name(f".{imatrix_file.name}.tmp")
        save_file(imatrix, str(tmp))
        os.replace(tmp, imatrix_file)
    model.save_pretrained(str(merged_dir), safe_serialization=True)
    tok.save_pretrained(str(merged_dir))
    del model
    gc.collect()
    return prompt_ids, answers, stops


def _adapter_tensor_types(
    adapter_dir: Path | None, quant: str, kind: str | None = None
) -> dict[str, str] | None:
    """{pattern of the GGUF weights the adapter changes: finer type} for ``quant`` (``kind``, else
    ``ADAPTER_TENSOR_TYPE[quant]``), or None."""
    kind = kind or ADAPTER_TENSOR_TYPE.get(quant)
    if adapter_dir is None or kind is None:
        return None
    config = read_json(Path(adapter_dir) / "adapter_config.json")
    pattern = adapter_tensor_pattern(config.get("target_modules") or [])
    return {pattern: kind} if pattern else None


def _changed_pattern(adapter_dir: Path | None) -> re.Pattern[str] | None | bool:
    """The GGUF weights the adapter changes as a pattern (None: no adapter, nothing changed), or
    False when that is not known (a regex ``target_modules``, or whole modules saved): then no base
    blocks are taken over."""
    if adapter_dir is None:
        return None
    config = read_json(Path(adapter_dir) / "adapter_config.json")
    pattern = adapter_tensor_pattern(config.get("target_modules") or [])
    if pattern is None or config.get("modules_to_save"):
        return False
    return re.compile(pattern)


def quantize_merged(
    f16: Path,
    target: Path,
    quant: str,
    *,
    adapter_dir: Path | None,
    base_gguf: Path | None,
    n_threads: int,
    imatrix: Any = None,
    adapter_type: str | None = None,
) -> tuple[dict[str, str] | None, int]:
    """Quantize the merged ``f16`` file to ``target``: the adapter's weights at ``adapter_type``
    (default ``ADAPTER_TENSOR_TYPE[quant]``), every weight it left alone as the base GGUF's own
    blocks where ``adapters.gguf_splice`` finds them to match, the rest by llama.cpp's recipe.
    Returns (the adapter-weight override used, how many tensors are the base's blocks)."""
    adapter_types = _adapter_tensor_types(adapter_dir, quant, adapter_type)
    taken: dict[str, str] = {}
    changed = _changed_pattern(adapter_dir)
    if base_gguf is not None and quant in gguf_splice.SPLICE_TYPES and changed is not False:
        base = gguf_splice.tensors(Path(base_gguf))
        taken = gguf_splice.matching(base, f16, gguf_splice.base_types(base, quant, changed))
    staged = target.with_name(f".{target.name}.splicing") if taken else target
    quantize_gguf(
        f16,
        staged,
        quant,
        n_threads=n_threads,
        embedding_type=EMBEDDING_TYPE.get(quant),
        imatrix=imatrix,
        tensor_types={**(adapter_types or {}), **gguf_splice.overrides(taken)} or None,
    )
    if taken:
        try:
            gguf_splice.splice(staged, base, taken)
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
    return adapter_types, len(taken)


def modelfile_text(gguf_name: str, *, system_prompt: str, chatml: bool) -> str:
    """An Ollama Modelfile for the exported file (ChatML turns when the model uses them)."""
    lines = [f"FROM ./{gguf_name}", ""]
    if chatml:
        lines += [
            'TEMPLATE """{{ if .System }}<|im_start|>system',
            "{{ .System }}<|im_end|>",
            "{{ end }}{{ if .Prompt }}<|im_start|>user",
            "{{ .Prompt }}<|im_end|>",
            "{{ end }}<|im_start|>assistant",
            "{{ .Response }}<|im_end|>",
            '"""',
            'PARAMETER stop "<|im_end|>"',
            'PARAMETER stop "<|endoftext|>"',
        ]
    lines += ["PARAMETER temperature 0", "PARAMETER num_ctx 4096"]
    if system_prompt:
        lines.append('SYSTEM """' + system_prompt.replace('"""', "'''") + '"""')
    return "\n".join(lines) + "\n"


def run_commands(
    gguf: Path,
    *,
    system_prompt: str,
    chatml: bool,
    n_threads: int,
    served: tuple[Path, Path, float] | None = None,
) -> str:
    """llama.cpp, llama-cpp-python and Ollama command lines for ``gguf``; with ``served`` (base GGUF,
    GGUF LoRA, their perplexity ratio to f16) also the unmerged pair the app itself answers with."""
    sys_arg = system_prompt.replace('"', '\\"')
    tmpl = " --chat-template chatml" if chatml else ""
    unmerged = (
        f"# Unmerged, as this app serves it: the base GGUF plus the adapter's GGUF LoRA "
        f"(perplexity {served[2]:.4f}x the merged f16 file)\n"
        f"llama-server -m {served[0]} --lora {served[1]}{tmpl} --host 127.0.0.1 --port 8080 "
        f"-t {n_threads} -c 4096\n\n"
        if served
        else ""
    )
    return (
        "# llama.cpp (interactive chat)\n"
        f'llama-cli -m {gguf} -cnv{tmpl} -sys "{sys_arg}" --temp 0 -t {n_threads} -c 4096\n\n'
        "# llama.cpp (OpenAI-compatible server on 127.0.0.1:8080)\n"
        f"llama-server -m {gguf}{tmpl} --host 127.0.0.1 --port 8080 -t {n_threads} -c 4096\n\n"
        "# llama-cpp-python (the same server, from this project's environment)\n"
        f"python -m llama_cpp.server --model {gguf} --host 127.0.0.1 --port 8080 --n_threads {n_threads}\n\n"
        "# Ollama (from this folder)\n"
        f"ollama create hybrid-assistant -f Modelfile-{gguf.stem.removeprefix('model-')}\n"
        "ollama run hybrid-assistant\n" + ("\n" + unmerged if unmerged else "")
    )


def export_model(
    *,
    base_hf: Path,
    adapter_dir: Path | None,
    label: str,
    exports_root: Path,
    tools_dir: Path,
    quant: str,
    golden_prompts: Sequence[Sequence[Message]],
    heldout_text: str,
    golden_mode: str = "",
    calibration_text: str = "",
    served_base_gguf: Path | None = None,
    system_prompt: str = "",
    n_threads: int = 2,
    max_new_tokens: int = 48,
    ppl_window: int = 512,
    ppl_max_tokens: int = 4096,
    on_progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Merge, convert, quantize and check; returns the report also saved as ``export-<quant>.json``.

    Args:
        base_hf: the HF base folder the adapter was trained on.
        adapter_dir: a version folder (peft files), or None to export the base model.
        label: the export's folder name (the adapter version, "default" or "base").
        quant: "f16", "q8_0" or "q4_k_m".
        golden_prompts: chat messages (up to the user turn) answered greedily by both paths.
        golden_mode: the answering mode those prompts were built for, shown in the report.
        heldout_text: domain text not used for training, for perplexity.
        calibration_text: text the importance matrix for q4_k_m is measured on (training text;
            empty: quantize without one).
        served_base_gguf: the base GGUF the app answers with; with an adapter that has its GGUF
            LoRA (``lora.gguf``), the report adds the perplexity of that pair (what the app serves)
            next to the merged file's. A q4_k_m export takes over its blocks for every weight the
            adapter left alone (``adapters.gguf_splice``; the report's ``base_blocks``).

    Raises:
        ExportError: unknown quant, converters missing, conversion or quantization failed.
        ModelMissingError: the base folder is missing.
    """
    t0 = time.perf_counter()
    if quant not in QUANTS:
        raise ExportError(
            f"quantization {quant!r} is not one of {', '.join(QUANTS)} — pass --quant f16|q8_0|q4_k_m"
        )
    if not (Path(base_hf) / "config.json").is_file():
        raise ModelMissingError(f"base model folder {base_hf} not found — run `hybrid setup`")
    out = Path(exports_root) / label
    out.mkdir(parents=True, exist_ok=True)
    f16 = out / "model-f16.gguf"
    source = {
        "base": str(base_hf),
        "adapter": str(adapter_dir) if adapter_dir else None,
        "adapter_sha256": file_sha256(Path(adapter_dir) / "adapter_model.safetensors")
        if adapter_dir
        else None,
        "golden": [list(map(dict, p)) for p in golden_prompts],
        "max_new_tokens": max_new_tokens,
        "calibration_sha256": hashlib.sha256(calibration_text.encode()).hexdigest()
        if calibration_text
        else None,
    }
    cached = read_json(out / "source.json") if (out / "source.json").is_file() else None
    imatrix_file = out / IMATRIX_FILE
    reusable = (
        f16.is_file()
        and cached is not None
        and all(cached.get(k) == v for k, v in source.items())
        and (not calibration_text or imatrix_file.is_file())
    )

    if reusable:
        on_progress(2, STAGES, "reusing the merged f16 GGUF")
        prompt_ids, reference, stops = cached["prompt_ids"], cached["reference"], set(cached["stops"])
    else:
        on_progress(0, STAGES, "merging the adapter (and transformers reference answers)")
        merged = fresh_temp_dir(out / "merged-hf")
        try:
            prompt_ids, reference, stops = _reference_and_merge(
                Path(base_hf),
                adapter_dir,
                golden_prompts,
                merged,
                max_new_tokens,
                calibration_text=calibration_text,
                imatrix_file=imatrix_file,
            )
            on_progress(1, STAGES, "converting to an f16 GGUF")
            convert_hf_to_gguf(merged, f16, tools_dir=Path(tools_dir), outtype="f16")
        finally:
            shutil.rmtree(merged, ignore_errors=True)
        write_json_atomic(
            out / "source.json",
            {**source, "prompt_ids": prompt_ids, "reference": reference, "stops": sorted(stops)},
        )
    target = out / f"model-{quant}.gguf"
    imatrix = None
    adapter_types, n_base_blocks = _adapter_tensor_types(adapter_dir, quant), 0
    if quant != "f16":
        on_progress(2, STAGES, f"quantizing to {quant}")
        if quant in IMATRIX_QUANTS and calibration_text:
            from safetensors.numpy import load_file

            imatrix = load_file(str(imatrix_file))
        adapter_types, n_base_blocks = quantize_merged(
            f16,
            target,
            quant,
            adapter_dir=adapter_dir,
            base_gguf=served_base_gguf,
            n_threads=n_threads,
            imatrix=imatrix,
        )

    on_progress(3, STAGES, "golden answers and speed in llama.cpp")
    answers, tps = answers_and_speed(target, prompt_ids, max_new_tokens=max_new_tokens, n_threads=n_threads)
    answers = [_cut(a, stops) for a in answers]
    same = [a == r for a, r in zip(answers, reference, strict=True)]

    on_progress(4, STAGES, "perplexity on held-out text")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_hf), local_files_only=True)
    text_ids = hf_encoder(tok)(heldout_text, False)[:ppl_max_tokens]
    ppl = {"f16": perplexity(f16, text_ids, window=ppl_window, n_threads=n_threads)}
    if quant != "f16":
        ppl[quant] = perplexity(target, text_ids, window=ppl_window, n_threads=n_threads)
    lora_gguf = Path(adapter_dir) / "lora.gguf" if adapter_dir is not None else None
    served_same: list[bool] = []
    if served_base_gguf is not None and lora_gguf is not None and lora_gguf.is_file():
        ppl["served"] = perplexity(
            Path(served_base_gguf), text_ids, window=ppl_window, n_threads=n_threads, lora_path=lora_gguf
        )
        served_answers, _ = answers_and_speed(
            Path(served_base_gguf),
            prompt_ids,
            max_new_tokens=max_new_tokens,
            n_threads=n_threads,
            lora_path=lora_gguf,
        )
        served_same = [_cut(a, stops) == r for a, r in zip(served_answers, reference, strict=True)]

    on_progress(5, STAGES, "writing the Modelfile and command lines")
    chatml = "<|im_start|>" in (tok.chat_template or "")
    write_text_atomic(
        out / f"Modelfile-{quant}", modelfile_text(target.name, system_prompt=system_prompt, chatml=chatml)
    )
    write_text_atomic(
        out / f"run-{quant}.txt",
        run_commands(
            target,
            system_prompt=system_prompt,
            chatml=chatml,
            n_threads=n_threads,
            served=(Path(served_base_gguf), lora_gguf, ppl["served"] / ppl["f16"])
            if "served" in ppl
            else None,
        ),
    )
    report = {
        "label": label,
        "quant": quant,
        "embedding_type": EMBEDDING_TYPE.get(quant, quant),
        "path": str(target),
        "bytes": target.stat().st_size,
        "f16_bytes": f16.stat().st_size,
        "golden": {
            "mode": golden_mode,
            "n": len(same),
            "identical": sum(same),
            "per_prompt": same,
            "export_answers": [tok.decode(a) for a in answers],
            "reference_answers": [tok.decode(r) for r in reference],
        },
        "tokens_per_s": round(tps, 2),
        "perplexity": {k: round(v, 4) for k, v in ppl.items()},
        "perplexity_ratio_vs_f16": round(ppl[quant] / ppl["f16"], 4),
        "imatrix": imatrix is not None,
        "base_blocks": {"source": str(served_base_gguf), "tensors": n_base_blocks} if n_base_blocks else None,
        "adapter_tensors": (
            {"pattern": next(iter(adapter_types)), "type": next(iter(adapter_types.values()))}
            if adapter_types
            else None
        ),
        "served": {
            "base": str(served_base_gguf),
            "lora": str(lora_gguf),
            "perplexity_ratio_vs_f16": round(ppl["served"] / ppl["f16"], 4),
            "golden_identical": sum(served_same),
            "golden_per_prompt": served_same,
        }
        if "served" in ppl
        else None,
        "heldout_tokens": len(text_ids),
        "modelfile": str(out / f"Modelfile-{quant}"),
        "commands": str(out / f"run-{quant}.txt"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(out / f"export-{quant}.json", report)
    on_progress(STAGES, STAGES, "done")
    logger.info(
        "exported %s %s: %d bytes, %d/%d golden identical, ppl %s",
        label,
        quant,
        report["bytes"],
        sum(same),
        len(same),
        report["perplexity"],
    )
    return report
