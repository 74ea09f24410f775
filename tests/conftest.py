"""Shared test setup: offline mode, one thread, and the tiny locally-built models (session-scoped).

Tiny models are built by ``tests/tiny_llama.py`` and ``tests/tiny_st.py`` in seconds, with no
download, and go through the same loading code as the real models.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory):
    """A tiny sentence-transformers model folder (BERT + mean pooling + normalize)."""
    from tests.tiny_st import build_tiny_st

    return build_tiny_st(tmp_path_factory.mktemp("tiny_st"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A tiny seeded Llama causal LM with a sentencepiece tokenizer and a chat template."""
    from tests.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture()
def cli_env(tmp_path, tiny_st_dir, monkeypatch):
    """A workspace in ``tmp_path / "ws"`` that the `hybrid` CLI indexes with the tiny embedder
    (64-token chunks, one torch thread, no index left open from another test)."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("HYBRID_MODELS__EMBEDDER", str(tiny_st_dir))
    monkeypatch.setenv("HYBRID_INDEX__CHUNK_TOKENS", "64")
    from app.wiring.index import clear_index_cache

    clear_index_cache()
    return tmp_path


@pytest.fixture()
def loopback_option():
    """The bind address `hybrid app` passes to Streamlit (AppTest starts with none set)."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", before)


# A full-size random LoRA moves the tiny model's logits so far that some greedy steps become near
# ties (top-2 margin 0.009) below the llama.cpp-vs-torch logit difference there (0.045, f16 activations),
# and the two backends then pick different tokens. A smaller LoRA still changes every answer.
LORA_B_SCALE = 0.3


@pytest.fixture(scope="session")
def tiny_models(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny base as an f16 GGUF, plus a seeded random LoRA as a peft folder and a GGUF LoRA."""
    import torch

    from adapters.llama_tools import convert_hf_to_gguf, convert_lora_to_gguf
    from tests.llama_converters import converters_for_tests
    from tests.tiny_llama import save_random_lora

    pytest.importorskip("llama_cpp")

    tools = converters_for_tests(tmp_path_factory.mktemp("converters"))
    if tools is None:
        pytest.skip("no llama.cpp converters: run `hybrid setup --only converters` (or `make install`)")
    out = tmp_path_factory.mktemp("tiny_gen")
    torch.set_num_threads(1)
    adapter_dir = save_random_lora(tiny_llama_dir, out / "v1", b_scale=LORA_B_SCALE)
    lora = convert_lora_to_gguf(
        adapter_dir, adapter_dir / "lora.gguf", base_hf_dir=tiny_llama_dir, tools_dir=tools, outtype="f16"
    )
    base = convert_hf_to_gguf(tiny_llama_dir, out / "tiny-f16.gguf", tools_dir=tools, outtype="f16")
    return {"hf": Path(tiny_llama_dir), "gguf": base, "adapter_dir": adapter_dir, "lora": lora}
