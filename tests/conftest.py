"""Shared test setup: offline mode, one thread, and the tiny locally-built models (session-scoped).

Tiny models are built by ``tests/tiny_llama.py`` and ``tests/tiny_st.py`` in seconds, with no
download, and go through the same loading code as the real models.
"""

from __future__ import annotations

import os

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
