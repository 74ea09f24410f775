"""The real base model answers a simple fact in English and Chinese, both as the assembled GGUF in
llama.cpp (chat template from the GGUF) and as the fp32 Hugging Face copy in transformers.

Needs `hybrid setup` to have run (workspace from ``HYBRID_WORKSPACE`` or ``./workspace``).
"""

from __future__ import annotations

import pytest

from domain.workspace import Workspace
from tests.llama_converters import workspace_root

pytestmark = pytest.mark.slow

QUESTIONS = [("What is the capital of France?", "Paris"), ("法国的首都是哪里？", "巴黎")]
MAX_NEW_TOKENS = 32


@pytest.fixture(scope="module")
def ws() -> Workspace:
    return Workspace.at(workspace_root())


@pytest.fixture(scope="module")
def llama_base(ws):
    llama_cpp = pytest.importorskip("llama_cpp")
    if not ws.base_gguf.is_file():
        pytest.skip(f"{ws.base_gguf} missing: run `hybrid setup --only base_gguf`")
    llm = llama_cpp.Llama(str(ws.base_gguf), n_threads=2, n_ctx=512, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def hf_base(ws):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (ws.base_hf / "config.json").is_file():
        pytest.skip(f"{ws.base_hf} missing: run `hybrid setup --only base_hf`")
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(ws.base_hf)
    model = AutoModelForCausalLM.from_pretrained(ws.base_hf, dtype=torch.float32).eval()
    return tok, model


@pytest.mark.parametrize(("question", "expected"), QUESTIONS)
def test_gguf_answers_in_llama_cpp(llama_base, question, expected) -> None:
    reply = llama_base.create_chat_completion(
        messages=[{"role": "user", "content": question}], temperature=0.0, top_k=1, max_tokens=MAX_NEW_TOKENS
    )
    text = reply["choices"][0]["message"]["content"]
    assert expected in text, text


@pytest.mark.parametrize(("question", "expected"), QUESTIONS)
def test_hf_copy_answers_in_transformers(hf_base, question, expected) -> None:
    import torch

    tok, model = hf_base
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    inputs = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
    text = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert expected in text, text
