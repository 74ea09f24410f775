"""The whole fine-tune path on the tiny Llama: train → register → gate (fake evaluator) → GGUF LoRA
→ llama.cpp answers differ with the adapter on and off; then export (merge → f16 → q8_0) with its
checks, Modelfile and command lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import jobs, registry
from adapters.train_job import run_training_job
from adapters.train_params import TrainingParams
from adapters.training_data import TrainRow, build_examples, default_build_messages, write_examples
from domain.atomic import read_json
from tests.llama_converters import converters_for_tests

pytest.importorskip("llama_cpp")

QUESTION = "How many leave days in team 3?"
HELDOUT = (
    "The office opens at eight and closes at seven on weekdays. Visitors sign in at the front desk. " * 8
)
CALIBRATION = "How many leave days in team 3?\nConclusion: twenty days.\n" * 20


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory) -> Path:
    found = converters_for_tests(tmp_path_factory.mktemp("converters"))
    if found is None:
        pytest.skip("no llama.cpp converters: run `hybrid setup --only converters` (or `make install`)")
    return found


class FakeGate:
    """Passes when asked (or breaks); records the staged folder it saw (it must hold lora.gguf)."""

    def __init__(self, passed: bool, *, broken: bool = False) -> None:
        self.passed = passed
        self.broken = broken
        self.seen: list[tuple[str, object]] = []

    def before_training(self, reporter, later_s: float | None) -> float:  # noqa: ARG002
        self.seen.append(("before training", reporter.status["phase"]))
        if self.broken:
            raise RuntimeError("generator exploded")
        return 30.0

    def __call__(self, stage: Path, name: str, reporter) -> dict:  # noqa: ARG002
        self.seen.append((name, (stage / "lora.gguf").is_file()))
        if self.broken:
            raise RuntimeError("generator exploded")
        return {"passed": self.passed, "reason": "fake"}


def _train(tmp_path: Path, tiny_llama_dir: Path, tools_dir: Path, gate: FakeGate) -> dict:
    rows = [
        TrainRow(
            id=f"r{i}",
            lang="en",
            question=f"How many leave days in team {i}?",
            answer="Conclusion: twenty days.\nBasis: [leave.md]\nNote: ask your manager.",
        )
        for i in range(8)
    ]
    examples, _ = build_examples(rows, build_messages=default_build_messages)
    params = TrainingParams(epochs=8, batch_size=4, lr=1e-2, val_share=0.0, precision="fp32", max_length=256)
    job_dir = jobs.new_job(
        tmp_path / "jobs",
        "train",
        {
            "base_hf": str(tiny_llama_dir),
            "registry": str(tmp_path / "adapters"),
            "params": params.to_json(),
            "activate": "gate",
            "convert_gguf": True,
            "tools_dir": str(tools_dir),
            "lora_outtype": "f32",
            "base_sha256": "tiny",
        },
    )
    write_examples(job_dir / "examples.jsonl", examples)
    return run_training_job(job_dir, gate=gate, handle_signals=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama_dir, tools_dir) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("trained")
    gate = FakeGate(True)
    result = _train(tmp, tiny_llama_dir, tools_dir, gate)
    # the adapter in use is scored before the base model loads; the candidate after training
    assert gate.seen == [("before training", "queued"), ("v1", True)]
    return tmp, result


def _greedy_text(gguf: Path, lora: Path | None, tiny_llama_dir: Path) -> str:
    from transformers import AutoTokenizer

    from adapters.gguf_checks import greedy_ids, open_gguf

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    messages = default_build_messages("tuned", QUESTION, [])
    ids = tok(
        tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
        add_special_tokens=False,
    )["input_ids"]
    with open_gguf(gguf, n_ctx=256, n_threads=1, lora_path=lora) as llm:
        out, _ = greedy_ids(llm, ids, 24)
    return tok.decode(out)


def test_train_register_gate_and_llama_cpp_answers_differ_with_the_adapter(
    trained, tiny_llama_dir, tools_dir
):
    from adapters.llama_tools import convert_hf_to_gguf

    tmp, result = trained
    root = tmp / "adapters"
    assert result["version"] == "v1" and result["activated"] is True
    assert result["metrics"]["gate"] == {"passed": True, "reason": "fake"}
    version = registry.active_version_dir(root)
    assert version == root / "v1" and (version / "lora.gguf").stat().st_size > 0
    base = convert_hf_to_gguf(tiny_llama_dir, tmp / "base-f32.gguf", tools_dir=tools_dir, outtype="f32")
    off = _greedy_text(base, None, tiny_llama_dir)
    on = _greedy_text(base, version / "lora.gguf", tiny_llama_dir)
    assert on != off
    assert on.startswith("Conclusion: twenty days.")


def test_a_failing_gate_registers_but_does_not_activate(tmp_path, tiny_llama_dir, tools_dir):
    result = _train(tmp_path, tiny_llama_dir, tools_dir, FakeGate(False))
    assert result["activated"] is False
    assert registry.active_version_dir(tmp_path / "adapters") is None
    assert [v.version for v in registry.list_versions(tmp_path / "adapters")] == ["v1"]
    assert registry.list_versions(tmp_path / "adapters")[0].gate_passed is False


def test_a_gate_that_cannot_run_keeps_the_version_inactive(tmp_path, tiny_llama_dir, tools_dir):
    result = _train(tmp_path, tiny_llama_dir, tools_dir, FakeGate(True, broken=True))
    assert result["activated"] is False
    assert result["metrics"]["gate"] == {
        "passed": False,
        "reason": "the gate could not run: generator exploded",
        "error": "RuntimeError: generator exploded",
    }
    assert [v.version for v in registry.list_versions(tmp_path / "adapters")] == ["v1"]


def test_export_merges_converts_quantizes_and_checks(trained, tiny_llama_dir, tools_dir):
    from safetensors.numpy import load_file

    from adapters.export import export_model
    from adapters.llama_tools import convert_hf_to_gguf

    tmp, _ = trained
    base_gguf = convert_hf_to_gguf(tiny_llama_dir, tmp / "served-base-f16.gguf", tools_dir=tools_dir)
    prompts = [default_build_messages("tuned", f"How many leave days in team {i}?", []) for i in range(5)]
    stages: list[int] = []
    report = export_model(
        base_hf=tiny_llama_dir,
        adapter_dir=tmp / "adapters" / "v1",
        label="v1",
        exports_root=tmp / "exports",
        tools_dir=tools_dir,
        quant="q8_0",
        golden_prompts=prompts,
        heldout_text=HELDOUT,
        calibration_text=CALIBRATION,
        served_base_gguf=base_gguf,
        system_prompt="Answer briefly.",
        n_threads=1,
        max_new_tokens=24,
        on_progress=lambda d, _t, _m="": stages.append(d),
    )
    out = tmp / "exports" / "v1"
    assert stages == [0, 1, 2, 3, 4, 5, 6]
    assert report["path"] == str(out / "model-q8_0.gguf") and report["bytes"] < report["f16_bytes"]
    assert report["golden"]["n"] == 5 and report["golden"]["identical"] >= 4
    assert report["golden"]["reference_answers"][0].startswith("Conclusion: twenty days.")
    # the tiny random model is very sensitive to rounding; the real-model bounds are in the closing note
    assert (
        set(report["perplexity"]) == {"f16", "q8_0", "served"}
        and 0.5 < report["perplexity_ratio_vs_f16"] < 2.0
    )
    # base f16 + the f16 GGUF LoRA at run time is the merged f16 model up to f16 rounding
    assert report["served"]["lora"] == str(tmp / "adapters" / "v1" / "lora.gguf")
    assert 0.98 < report["served"]["perplexity_ratio_vs_f16"] < 1.02
    served_same = report["served"]["golden_per_prompt"]
    assert len(served_same) == 5 and report["served"]["golden_identical"] == sum(served_same) >= 4
    assert report["imatrix"] is False  # q8_0's quantizer has no use for one
    imatrix = load_file(str(out / "imatrix.safetensors"))
    assert set(imatrix) >= {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output.weight"}
    assert imatrix["blk.1.ffn_down.weight"].shape == (512,) and (imatrix["blk.0.attn_q.weight"] > 0).all()
    modelfile = (out / "Modelfile-q8_0").read_text()
    assert modelfile.startswith("FROM ./model-q8_0.gguf\n") and 'SYSTEM """Answer briefly."""' in modelfile
    commands = (out / "run-q8_0.txt").read_text()
    assert "llama-server -m " + str(out / "model-q8_0.gguf") in commands
    assert f"llama-server -m {base_gguf} --lora {tmp / 'adapters' / 'v1' / 'lora.gguf'}" in commands
    assert read_json(out / "export-q8_0.json") == report
    # a second quantization reuses the merged f16 file
    again = export_model(
        base_hf=tiny_llama_dir,
        adapter_dir=tmp / "adapters" / "v1",
        label="v1",
        exports_root=tmp / "exports",
        tools_dir=tools_dir,
        quant="f16",
        golden_prompts=prompts,
        heldout_text=HELDOUT,
        calibration_text=CALIBRATION,
        n_threads=1,
        max_new_tokens=24,
    )
    assert again["golden"]["identical"] == 5 and again["perplexity_ratio_vs_f16"] == 1.0
    assert again["served"] is None  # no base GGUF named
    # q4_k_m takes the importance matrix measured when the f16 file was merged
    stages.clear()
    q4 = export_model(
        base_hf=tiny_llama_dir,
        adapter_dir=tmp / "adapters" / "v1",
        label="v1",
        exports_root=tmp / "exports",
        tools_dir=tools_dir,
        quant="q4_k_m",
        golden_prompts=prompts,
        heldout_text=HELDOUT,
        calibration_text=CALIBRATION,
        n_threads=1,
        max_new_tokens=24,
        on_progress=lambda d, _t, _m="": stages.append(d),
    )
    assert stages[0] == 2 and q4["imatrix"] is True and q4["bytes"] < report["bytes"]
    # the weights the adapter changed (attention q/k/v/o) stay q8_0; the rest follow Q4_K_M
    from collections import Counter

    from gguf import GGUFReader

    assert q4["adapter_tensors"] == {
        "pattern": r"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output)\.weight$",
        "type": "q8_0",
    }
    types = {t.name: t.tensor_type.name for t in GGUFReader(q4["path"]).tensors}
    assert {types[f"blk.{i}.attn_{p}.weight"] for i in range(2) for p in ("q", "k", "v", "output")} == {
        "Q8_0"
    }
    assert Counter(t for n, t in types.items() if "attn_" not in n and t != "F32") == {"Q4_K": 6, "Q6_K": 2}


def test_a_q4_k_m_export_keeps_the_base_blocks_the_adapter_left_alone(trained, tiny_llama_dir, tools_dir):
    """The base is a Q4_K_M GGUF and the HF base its decoded copy (as `hybrid setup` makes them):
    every weight the adapter did not change is the base's own bytes in the export; a base GGUF
    that is not the HF base's source gives none."""
    import numpy as np
    from gguf import GGUFReader

    from adapters.base_model import materialize_base_hf
    from adapters.export import export_model
    from adapters.llama_tools import convert_hf_to_gguf, quantize_gguf

    tmp, _ = trained
    work = tmp / "splice"
    f16 = convert_hf_to_gguf(tiny_llama_dir, work / "base-f16.gguf", tools_dir=tools_dir)
    base_q4 = quantize_gguf(f16, work / "base-q4_k_m.gguf", "q4_k_m", n_threads=1)
    materialize_base_hf(base_q4, work / "base-hf")
    prompts = [default_build_messages("tuned", f"How many leave days in team {i}?", []) for i in range(5)]

    def export(base_hf: Path, label: str) -> dict:
        return export_model(
            base_hf=base_hf,
            adapter_dir=tmp / "adapters" / "v1",
            label=label,
            exports_root=work / "exports",
            tools_dir=tools_dir,
            quant="q4_k_m",
            golden_prompts=prompts,
            heldout_text=HELDOUT,
            calibration_text=CALIBRATION,
            served_base_gguf=base_q4,
            n_threads=1,
            max_new_tokens=24,
        )

    report = export(work / "base-hf", "spliced")
    base = {t.name: t for t in GGUFReader(base_q4).tensors}
    out = {t.name: t for t in GGUFReader(report["path"]).tensors}
    untouched = sorted(n for n, t in base.items() if t.tensor_type.name != "F32" and "attn_" not in n)
    assert len(untouched) == 8 and report["base_blocks"] == {"source": str(base_q4), "tensors": 8}
    for name in untouched:
        assert out[name].tensor_type == base[name].tensor_type
        assert np.array_equal(np.asarray(out[name].data), np.asarray(base[name].data)), name
    # what the adapter changed is merged, at q8_0, and differs from the base
    assert {out[f"blk.{i}.attn_{p}.weight"].tensor_type.name for i in range(2) for p in ("q", "v")} == {
        "Q8_0"
    }
    assert not (work / "exports" / "spliced" / ".model-q4_k_m.gguf.splicing").exists()

    # the original fp32 model was not decoded from base_q4: nothing of it is taken over
    other = export(tiny_llama_dir, "unspliced")
    assert other["base_blocks"] is None
    theirs = {t.name: t for t in GGUFReader(other["path"]).tensors}
    assert not np.array_equal(
        np.asarray(theirs["blk.0.ffn_up.weight"].data), np.asarray(base["blk.0.ffn_up.weight"].data)
    )


def test_perplexity_matches_transformers_on_an_f16_exact_model(tiny_llama_dir, tools_dir, tmp_path):
    """The tiny model's weights are exactly representable in f16, so llama.cpp's perplexity of its f16
    GGUF must equal exp(mean NLL) computed with transformers on the same token windows."""
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters.gguf_checks import perplexity
    from adapters.llama_tools import convert_hf_to_gguf

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    ids = tok(HELDOUT, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 64):
            chunk = torch.tensor([ids[start : start + 64]])
            if chunk.shape[1] < 2:
                break
            logits = model(chunk).logits[0, :-1]
            nll += float(torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
            n += chunk.shape[1] - 1
    f16 = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "tiny-f16.gguf", tools_dir=tools_dir, outtype="f16")
    ours = perplexity(f16, ids, window=64, n_threads=1)
    assert ours == pytest.approx(math.exp(nll / n), rel=1e-3)
