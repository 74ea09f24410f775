"""The tiny Llama through HF → GGUF f16 → Q8_0 / Q4_K_M: llama.cpp's greedy output equals
transformers' (also with a converted LoRA applied), quantized files are really smaller and really
K-quants, the converter / quantizer error paths, and the GGUF → fp32 HF materialization round trip.
The converter extraction itself is tested in ``test_converters_extract``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from adapters.base_model import materialize_base_hf
from adapters.llama_tools import convert_hf_to_gguf, convert_lora_to_gguf, quantize_gguf
from domain.errors import ExportError, SetupError
from tests.llama_converters import converters_for_tests

pytest.importorskip("llama_cpp")

N_NEW_TOKENS = 16
PLAIN_PROMPTS = ["The leave policy", "请把报告发给经理"]
CHAT_QUESTION = "When does the office open?"


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory) -> Path:
    found = converters_for_tests(tmp_path_factory.mktemp("converters"))
    if found is None:
        pytest.skip("no llama.cpp converters: run `hybrid setup --only converters` (or `make install`)")
    return found


@pytest.fixture(scope="module")
def tiny_ggufs(tiny_llama_dir, tools_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tiny_gguf")
    f16 = convert_hf_to_gguf(tiny_llama_dir, out / "tiny-f16.gguf", tools_dir=tools_dir, outtype="f16")
    return {
        "f16": f16,
        "q8_0": quantize_gguf(f16, out / "tiny-q8_0.gguf", "q8_0", n_threads=1),
        "q4_k_m": quantize_gguf(f16, out / "tiny-q4_k_m.gguf", "q4_k_m", n_threads=1),
    }


def _hf_greedy(model, ids: list[int]) -> list[int]:
    import torch

    x = torch.tensor([ids])
    out: list[int] = []
    with torch.no_grad():
        for _ in range(N_NEW_TOKENS):
            nxt = int(model(x).logits[0, -1].argmax())
            out.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    return out


def _llama_greedy(llm, ids: list[int]) -> list[int]:
    out: list[int] = []
    for tok in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
        out.append(tok)
        if len(out) == N_NEW_TOKENS:
            break
    return out


def _open_llama(path: Path):
    import llama_cpp

    return llama_cpp.Llama(str(path), n_threads=1, n_ctx=256, verbose=False)


def test_f16_gguf_greedy_output_matches_transformers(tiny_llama_dir, tiny_ggufs) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    chat = tok.apply_chat_template(
        [{"role": "user", "content": CHAT_QUESTION}], tokenize=False, add_generation_prompt=True
    )
    llm = _open_llama(tiny_ggufs["f16"])
    try:
        for prompt in PLAIN_PROMPTS:  # plain text tokenizes identically on both sides
            assert llm.tokenize(prompt.encode(), add_bos=True, special=True) == tok(prompt).input_ids
        for prompt in [*PLAIN_PROMPTS, chat]:
            ids = tok(prompt).input_ids
            expected = _hf_greedy(model, ids)
            assert len(set(expected)) > 8  # the seeded weights give varied, non-degenerate output
            assert _llama_greedy(llm, ids) == expected, prompt
    finally:
        llm.close()


def test_quantized_files_are_smaller_and_of_the_asked_types(tiny_ggufs) -> None:
    from gguf import GGUFReader

    sizes = {k: p.stat().st_size for k, p in tiny_ggufs.items()}
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"]
    types = {k: Counter(t.tensor_type.name for t in GGUFReader(p).tensors) for k, p in tiny_ggufs.items()}
    # 16 matrices (2 layers × 7, embeddings, output) and 5 norm vectors that stay F32.
    assert types["f16"] == {"F16": 16, "F32": 5}
    assert types["q8_0"] == {"Q8_0": 16, "F32": 5}
    assert types["q4_k_m"] == {"Q4_K": 13, "Q6_K": 3, "F32": 5}


def test_embeddings_can_keep_their_own_type(tiny_ggufs, tmp_path) -> None:
    from gguf import GGUFReader

    path = quantize_gguf(
        tiny_ggufs["f16"], tmp_path / "q8-f16emb.gguf", "q8_0", n_threads=1, embedding_type="f16"
    )
    types = {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}
    assert types["token_embd.weight"] == "F16"
    assert types["output.weight"] == "F16"
    assert Counter(types.values()) == {"Q8_0": 14, "F16": 2, "F32": 5}
    with pytest.raises(ExportError, match="embedding type"):
        quantize_gguf(tiny_ggufs["f16"], tmp_path / "x.gguf", "q8_0", embedding_type="q2_k")


def test_tensor_type_overrides_pick_tensors_by_pattern(tiny_ggufs, tmp_path, capfd) -> None:
    from gguf import GGUFReader

    path = quantize_gguf(
        tiny_ggufs["f16"],
        tmp_path / "q4-mixed.gguf",
        "q4_k_m",
        n_threads=1,
        tensor_types={
            r"^blk\.1\.ffn_(up|gate)\.weight$": "q8_0",
            r"attn_k\.weight$": "f16",
            r"^blk\.0\.ffn_down\.weight$": "q5_k",
        },
    )
    types = {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}
    assert types["blk.1.ffn_up.weight"] == types["blk.1.ffn_gate.weight"] == "Q8_0"
    assert types["blk.0.ffn_up.weight"] == "Q4_K"
    assert types["blk.0.attn_k.weight"] == types["blk.1.attn_k.weight"] == "F16"
    assert types["blk.0.ffn_down.weight"] == "Q5_K"  # any k-quant, as the export asks for a base's types
    # llama.cpp writes a line per override straight to stderr; the quantizer keeps it off the terminal
    assert "manual override" not in capfd.readouterr().err
    with pytest.raises(ExportError, match="tensor type 'iq2_xxs'"):
        quantize_gguf(tiny_ggufs["f16"], tmp_path / "x.gguf", "q4_k_m", tensor_types={"attn": "iq2_xxs"})


@pytest.mark.parametrize("qtype", ["q8_0", "q4_k_m"])
def test_quantized_ggufs_load_and_generate(tiny_ggufs, qtype) -> None:
    llm = _open_llama(tiny_ggufs[qtype])
    try:
        ids = llm.tokenize(PLAIN_PROMPTS[0].encode(), add_bos=True)
        out = _llama_greedy(llm, ids)
        assert len(out) == N_NEW_TOKENS
        assert all(0 <= t < llm.n_vocab() for t in out)
    finally:
        llm.close()


def test_quantize_rejects_unknown_type_and_missing_source(tmp_path) -> None:
    with pytest.raises(ExportError, match="'q3_k'"):
        quantize_gguf(tmp_path / "a.gguf", tmp_path / "b.gguf", "q3_k")
    with pytest.raises(ExportError, match="not found"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "b.gguf", "q8_0")


def test_converter_failure_reports_its_stderr(tools_dir, tmp_path) -> None:
    hf = tmp_path / "odd"
    hf.mkdir()
    (hf / "config.json").write_text('{"architectures": ["NoSuchModelForCausalLM"]}', encoding="utf-8")
    with pytest.raises(ExportError, match="NoSuchModelForCausalLM") as err:
        convert_hf_to_gguf(hf, tmp_path / "out.gguf", tools_dir=tools_dir)
    assert "convert_hf_to_gguf odd failed" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd"]  # no output, no temp file left


def test_converter_rejects_a_folder_without_config(tmp_path) -> None:
    with pytest.raises(ExportError, match="no config.json"):
        convert_hf_to_gguf(tmp_path, tmp_path / "out.gguf", tools_dir=tmp_path)


def test_materialize_round_trips_the_tiny_llama_exactly(tiny_llama_dir, tiny_ggufs, tmp_path) -> None:
    """Tiny weights are exactly representable in f16, so HF → f16 GGUF → fp32 HF is lossless."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tiny_ggufs["f16"]
    dest = tmp_path / "tiny-hf"
    report = materialize_base_hf(gguf, dest)
    assert (report["name"], report["status"], report["path"]) == ("base_hf", "done", str(dest))
    assert report["bytes"] == sum(p.stat().st_size for p in dest.iterdir())
    assert (dest / "model.safetensors").is_file() and (dest / "hybrid_setup.json").is_file()
    assert materialize_base_hf(gguf, dest)["status"] == "already done"

    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).state_dict()
    copy = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32).state_dict()
    assert sorted(copy) == sorted(original)
    assert [k for k in original if not torch.equal(original[k], copy[k])] == []

    tok_a, tok_b = AutoTokenizer.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(dest)
    text = "The leave policy 请把报告 <|im_start|>user\nhi<|im_end|>"
    assert tok_b(text).input_ids == tok_a(text).input_ids
    assert tok_b.chat_template == tok_a.chat_template


def test_materialize_on_a_full_disk_stops_before_writing_and_keeps_the_old_copy(
    tiny_ggufs, tmp_path, monkeypatch
) -> None:
    import shutil
    from collections import namedtuple

    gguf, dest = tiny_ggufs["f16"], tmp_path / "tiny-hf"
    materialize_base_hf(gguf, dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SetupError, match=r"the fp32 training copy needs .* GB free .* nothing was changed"):
        materialize_base_hf(gguf, dest, force=True)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-hf"]  # no temporary folder left behind


def test_converted_lora_in_llama_cpp_matches_peft(tiny_llama_dir, tiny_ggufs, tools_dir, tmp_path) -> None:
    """A random (non-zero) LoRA on q/v, converted with `--base`, changes llama.cpp's greedy output
    exactly as PEFT changes transformers'."""
    import llama_cpp
    import torch
    from gguf import GGUFReader
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    lora_cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), lora_cfg)
    with torch.no_grad():  # f16-exact, like the tiny base weights
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(param.half().float())
    peft_model.save_pretrained(tmp_path / "adapter")

    out = convert_lora_to_gguf(
        tmp_path / "adapter", tmp_path / "lora.gguf", base_hf_dir=tiny_llama_dir, tools_dir=tools_dir
    )
    reader = GGUFReader(out)
    assert reader.get_field("general.type").contents() == "adapter"
    assert sorted(t.name for t in reader.tensors) == sorted(
        f"blk.{i}.attn_{m}.weight.lora_{ab}" for i in (0, 1) for m in ("q", "v") for ab in ("a", "b")
    )

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32), tmp_path / "adapter"
    ).eval()
    llm = llama_cpp.Llama(str(tiny_ggufs["f16"]), lora_path=str(out), n_threads=1, n_ctx=256, verbose=False)
    try:
        for prompt in PLAIN_PROMPTS:
            ids = tok(prompt).input_ids
            expected = _hf_greedy(tuned, ids)
            assert expected != _hf_greedy(base, ids)  # the adapter really changes the output
            assert _llama_greedy(llm, ids) == expected, prompt
    finally:
        llm.close()


def test_lora_conversion_needs_an_adapter_and_a_base_folder(tmp_path) -> None:
    with pytest.raises(ExportError, match="no adapter_config.json"):
        convert_lora_to_gguf(tmp_path, tmp_path / "x.gguf", base_hf_dir=tmp_path, tools_dir=tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ExportError, match=r"has no config.json — run `hybrid setup --only base_hf`"):
        convert_lora_to_gguf(tmp_path, tmp_path / "x.gguf", base_hf_dir=tmp_path, tools_dir=tmp_path)
