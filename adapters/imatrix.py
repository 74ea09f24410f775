"""Importance matrices for llama.cpp's quantizer, measured with transformers.

llama.cpp weights each column's rounding error by how large that column's input activations are
(the mean of x² over calibration tokens); ``llama-imatrix`` measures it inside llama.cpp, which the
Python bindings cannot hook. We measure the same statistic on the merged HF model with forward
hooks on its linear layers and hand it to ``llama_model_quantize`` as ``llama_model_imatrix_data``.

The same name map gives the export a pattern for the GGUF weights an adapter changes when merged
(``adapter_tensor_pattern``), which q4_k_m keeps at a finer type.

Layer names are mapped to GGUF tensor names for the Llama family of layouts (Llama, Qwen2,
Mistral, SmolLM): ``model.layers.N.self_attn.q_proj`` -> ``blk.N.attn_q.weight`` and so on. Layers
with no GGUF name are skipped; llama.cpp quantizes a tensor without an entry as it would anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from domain.progress import ProgressFn, no_progress

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj$")
_GGUF_PART = {
    "q": "attn_q",
    "k": "attn_k",
    "v": "attn_v",
    "o": "attn_output",
    "gate": "ffn_gate",
    "up": "ffn_up",
    "down": "ffn_down",
}


def gguf_tensor_name(module_name: str) -> str | None:
    """The GGUF weight name of an HF linear layer, or None when it has none we know."""
    if module_name == "lm_head" or module_name.endswith(".lm_head"):
        return "output.weight"
    m = _LAYER.search(module_name)
    if not m:
        return None
    return f"blk.{m.group(1)}.{_GGUF_PART[m.group(2)]}.weight"


def adapter_tensor_pattern(target_modules: Iterable[str] | str) -> str | None:
    """A regular expression for the GGUF weights a LoRA with these target modules changes when
    merged (``["q_proj", "v_proj"]`` -> ``^blk\\.\\d+\\.(attn_q|attn_v)\\.weight$``), or None when
    none of them has a GGUF name we know (peft's regex form of ``target_modules`` included)."""
    if isinstance(target_modules, str):
        return None
    found = set()
    for name in target_modules:
        m = re.fullmatch(r"(q|k|v|o|gate|up|down)_proj", name.rsplit(".", 1)[-1])
        if m:
            found.add(_GGUF_PART[m.group(1)])
    parts = [p for p in _GGUF_PART.values() if p in found]  # a fixed order: peft stores a set
    return rf"^blk\.\d+\.({'|'.join(parts)})\.weight$" if parts else None


def calibration_windows(token_ids: Sequence[int], *, window: int, max_tokens: int) -> list[list[int]]:
    """Split up to ``max_tokens`` tokens into windows of ``window`` (a last window under 16 is dropped)."""
    ids = list(token_ids)[:max_tokens]
    out = [ids[i : i + window] for i in range(0, len(ids), window)]
    return [w for w in out if len(w) >= 16]


def importance_matrix(
    model: Any, windows: Iterable[Sequence[int]], *, on_progress: ProgressFn = no_progress
) -> dict[str, Any]:
    """Mean squared input activation per column of every mapped linear layer.

    Args:
        model: a causal LM (merged; no adapter wrappers) in eval mode.
        windows: token id lists, each run as one forward pass.

    Returns:
        GGUF tensor name -> float32 numpy array of the layer's input width.
    """
    import numpy as np
    import torch

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []

    def make_hook(name: str):
        def hook(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to(torch.float64)
            sq = (x * x).sum(dim=0)
            sums[name] = sq if name not in sums else sums[name] + sq
            counts[name] = counts.get(name, 0) + x.shape[0]

        return hook

    for module_name, module in model.named_modules():
        gguf = gguf_tensor_name(module_name)
        if gguf is not None and isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(make_hook(gguf)))
    windows = [list(w) for w in windows]
    try:
        with torch.no_grad():
            for i, w in enumerate(windows):
                on_progress(i, len(windows), f"importance matrix: window {i + 1}/{len(windows)}")
                model(input_ids=torch.tensor([w]), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    on_progress(len(windows), len(windows), "importance matrix measured")
    return {k: (v / counts[k]).to(torch.float32).numpy().astype(np.float32) for k, v in sums.items()}
