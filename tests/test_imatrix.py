"""Importance matrices for the quantizer: HF layer names map to GGUF tensor names, the measured
statistic is the mean of x² per input column (checked against the layer inputs captured directly),
and llama.cpp takes it: the quantized tensors change, and a bad matrix is a clear error."""

from __future__ import annotations

import pytest

from adapters.imatrix import adapter_tensor_pattern, calibration_windows, gguf_tensor_name, importance_matrix


@pytest.mark.parametrize(
    ("hf", "gguf"),
    [
        ("model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight"),
        ("model.layers.11.self_attn.o_proj", "blk.11.attn_output.weight"),
        ("model.layers.3.mlp.down_proj", "blk.3.ffn_down.weight"),
        ("base_model.model.model.layers.2.mlp.gate_proj", "blk.2.ffn_gate.weight"),
        ("lm_head", "output.weight"),
        ("model.layers.0.self_attn.rotary_emb", None),
        ("model.embed_tokens", None),
    ],
)
def test_gguf_names(hf, gguf) -> None:
    assert gguf_tensor_name(hf) == gguf


def test_adapter_tensor_pattern() -> None:
    import re

    pattern = adapter_tensor_pattern(["q_proj", "v_proj", "model.layers.0.mlp.down_proj", "q_proj"])
    assert pattern == r"^blk\.\d+\.(attn_q|attn_v|ffn_down)\.weight$"
    assert re.search(pattern, "blk.12.attn_v.weight") and not re.search(pattern, "blk.12.attn_k.weight")
    assert adapter_tensor_pattern(".*_proj") is None  # peft's regex form: no guessing
    assert adapter_tensor_pattern(["lm_head", "embed_tokens"]) is None


def test_calibration_windows_cap_and_drop_a_tiny_tail() -> None:
    assert calibration_windows(list(range(100)), window=40, max_tokens=90) == [
        list(range(40)),
        list(range(40, 80)),
    ]  # the 10-token tail is dropped
    assert calibration_windows(list(range(20)), window=40, max_tokens=90) == [list(range(20))]


def test_importance_matrix_is_the_mean_square_of_each_layer_input(tiny_llama_dir) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    windows = [list(range(5, 37)), list(range(40, 60))]
    seen: list[torch.Tensor] = []
    layer = model.model.layers[1].mlp.down_proj
    handle = layer.register_forward_hook(
        lambda _m, inp, _o: seen.append(inp[0].reshape(-1, inp[0].shape[-1]))
    )
    imatrix = importance_matrix(model, windows)
    assert len(layer._forward_hooks) == 1  # importance_matrix removed its own hooks
    handle.remove()
    assert len(imatrix) == 2 * 7 + 1  # seven projections per layer and the output matrix
    x = torch.cat(seen).to(torch.float64)
    expected = (x * x).mean(dim=0).to(torch.float32).numpy()
    got = imatrix["blk.1.ffn_down.weight"]
    assert got.shape == (layer.in_features,) and got.dtype.name == "float32"
    assert abs(got - expected).max() <= 1e-6 * max(1.0, float(abs(expected).max()))


def test_quantizer_uses_the_matrix_and_refuses_a_bad_one(tiny_llama_dir, tmp_path) -> None:
    import numpy as np

    pytest.importorskip("llama_cpp")
    from gguf import GGUFReader

    from adapters.llama_tools import convert_hf_to_gguf, quantize_gguf
    from domain.errors import ExportError
    from tests.llama_converters import converters_for_tests

    tools = converters_for_tests(tmp_path / "converters")
    if tools is None:
        pytest.skip("no llama.cpp converters: run `hybrid setup --only converters` (or `make install`)")
    f16 = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "f16.gguf", tools_dir=tools)
    plain = quantize_gguf(f16, tmp_path / "plain.gguf", "q4_k_m", n_threads=1)
    # one column of every attention input a thousand times more important than the rest
    weights = np.ones(256, dtype=np.float32)
    weights[7] = 1000.0
    skewed = {f"blk.{i}.attn_{p}.weight": weights for i in range(2) for p in "qkv"}
    weighted = quantize_gguf(f16, tmp_path / "weighted.gguf", "q4_k_m", n_threads=1, imatrix=skewed)

    def tensors(path):
        return {t.name: bytes(t.data.tobytes()) for t in GGUFReader(path).tensors}

    a, b = tensors(plain), tensors(weighted)
    assert a.keys() == b.keys()
    changed = {n for n in a if a[n] != b[n]}
    assert changed and changed <= set(skewed)  # only the tensors given a matrix are quantized differently

    with pytest.raises(ExportError, match="not a finite vector"):
        quantize_gguf(f16, tmp_path / "nan.gguf", "q4_k_m", imatrix={"blk.0.attn_q.weight": weights * np.nan})
    with pytest.raises(ExportError, match="could not quantize .*imatrix size 100 is different"):
        quantize_gguf(f16, tmp_path / "short.gguf", "q4_k_m", imatrix={"blk.0.attn_q.weight": weights[:100]})
    assert not (tmp_path / "short.gguf").exists()
