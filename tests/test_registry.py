"""The adapter registry: staged versions appear whole or not at all, ACTIVE switches and rolls back,
the activation history gives each base its most recent adapter, and the gate decides against the adapter in use."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters import registry
from adapters.gate import combined_score, run_gate, subset_id
from domain.errors import RegistryError


def _fill(folder: Path, combined: float | None = None) -> None:
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (folder / name).write_text("{}", encoding="utf-8")
    (folder / "params.json").write_text(
        json.dumps({"created_at": "2025-01-01T00:00:00", "r": 16}), encoding="utf-8"
    )
    if combined is not None:
        (folder / "metrics.json").write_text(json.dumps({"gate": {"passed": True, "combined": combined}}))


def _make(root: Path, version: str | None = None) -> str:
    with registry.staged_version(root, version) as (stage, name):
        _fill(stage)
    return name


def test_versions_are_numbered_and_listed_in_order(tmp_path):
    assert [_make(tmp_path) for _ in range(3)] == ["v1", "v2", "v3"]
    _make(tmp_path, "nightly-2025")
    (tmp_path / "v10").mkdir()  # incomplete folders are not versions
    assert [v.version for v in registry.list_versions(tmp_path)] == ["v1", "v2", "v3", "nightly-2025"]
    assert registry.next_version_name(tmp_path) == "v11"


def test_a_failing_build_leaves_no_version(tmp_path):
    with pytest.raises(ValueError), registry.staged_version(tmp_path) as (stage, _):
        _fill(stage)
        raise ValueError("conversion failed")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(RegistryError, match="new version v1 lacks adapter_model.safetensors"),
        registry.staged_version(tmp_path) as (stage, _),
    ):
        (stage / "params.json").write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_staging_of_a_killed_job_is_hidden_then_cleaned(tmp_path):
    _make(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / f".staging-v2-{dead.stdout.strip()}"
    stale.mkdir()
    _fill(stale)
    assert [v.version for v in registry.list_versions(tmp_path)] == ["v1"]
    assert registry.clean_staging(tmp_path) == [stale.name]
    assert not stale.exists()


def test_activate_and_rollback_walk_the_history(tmp_path):
    for _ in range(3):
        _make(tmp_path)
    assert registry.active_version_dir(tmp_path) is None
    for v in ("v1", "v2", "v3"):
        registry.activate(tmp_path, v)
    assert (tmp_path / "ACTIVE").read_text() == "v3\n"
    assert registry.rollback(tmp_path).version == "v2"
    assert registry.rollback(tmp_path).version == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back to from v1"):
        registry.rollback(tmp_path)
    assert registry.active_version_dir(tmp_path) == tmp_path / "v1"
    assert [v.active for v in registry.list_versions(tmp_path)] == [True, False, False]


def test_activating_an_unknown_version_names_the_known_ones(tmp_path):
    _make(tmp_path)
    with pytest.raises(RegistryError) as info:
        registry.activate(tmp_path, "v9")
    assert str(info.value) == f"adapter version 'v9' not found in {tmp_path} — known versions: v1"


def test_a_broken_active_pointer_is_ignored(tmp_path):
    (tmp_path / "ACTIVE").write_text("v4\n")
    assert registry.active_version_dir(tmp_path) is None


def test_recently_active_lists_the_active_version_then_back_through_the_history(tmp_path):
    root = tmp_path / "adapters"
    assert registry.recently_active(root) == []
    for _ in range(3):
        registry.activate(root, _make(root))
    registry.activate(root, "v1")
    assert registry.recently_active(root) == ["v1", "v3", "v2"]
    shutil.rmtree(root / "v3")  # a version gone from disk is left out
    assert registry.recently_active(root) == ["v1", "v2"]


class FakeEvaluator:
    """Scores adapters from a table, remembering which folders it was asked about."""

    def __init__(self, scores: dict[str, tuple[float, float]], seconds: float = 0.0) -> None:
        self.scores = scores
        self.seconds = seconds
        self.calls: list[str] = []

    def __call__(self, adapter_dir: Path) -> dict:
        self.calls.append(adapter_dir.name)
        time.sleep(self.seconds)
        tuned, tuned_rag = self.scores[adapter_dir.name]
        return {
            "modes": {
                "tuned": {"n": 2, "combined": tuned, "format": 1.0},
                "tuned_rag": {"n": 2, "combined": tuned_rag, "format": 1.0},
            }
        }


def test_gate_compares_with_the_adapter_in_use_and_caches_its_score(tmp_path):
    """Candidate (0.6 + 0.8) / 2 = 0.70 against baseline (0.5 + 0.7) / 2 = 0.60: passes; a weaker
    candidate (0.55 + 0.6) / 2 = 0.575 fails; the baseline is evaluated only once."""
    ev = FakeEvaluator({"v2": (0.6, 0.8), "v1": (0.5, 0.7), "v3": (0.55, 0.6)})
    cache, subset = tmp_path / "gate_cache.json", subset_id(["e1", "e2"])
    good = run_gate(
        tmp_path / "v2",
        evaluate=ev,
        baseline_dir=tmp_path / "v1",
        baseline_label="v1",
        subset=subset,
        cache=cache,
    )
    assert (
        good.passed
        and good.candidate_score == pytest.approx(0.70)
        and good.baseline_score == pytest.approx(0.60)
    )
    bad = run_gate(
        tmp_path / "v3",
        evaluate=ev,
        baseline_dir=tmp_path / "v1",
        baseline_label="v1",
        subset=subset,
        cache=cache,
    )
    assert not bad.passed and bad.reason.startswith("fails: combined 0.575 vs 0.600 for v1")
    assert ev.calls == ["v2", "v1", "v3"]
    first = run_gate(tmp_path / "v1", evaluate=ev, baseline_dir=None, baseline_label=None, subset=subset)
    assert first.passed and first.baseline_score is None
    assert combined_score({"modes": {"tuned": {"combined": 0.4}}}) == pytest.approx(0.4)


def test_the_baseline_is_scored_once_before_training_and_times_the_gate(tmp_path):
    """``baseline_entry`` scores the adapter in use once (the gate after training finds it cached)
    and keeps the scoring's pace, so the job can estimate the candidate's gate."""
    from adapters.gate import baseline_entry, gate_seconds

    ev = FakeEvaluator({"v1": (0.5, 0.7), "v2": (0.6, 0.8)}, seconds=0.02)
    cache, subset = tmp_path / "gate_cache.json", subset_id(["e1", "e2"])
    assert gate_seconds(cache, subset, ("tuned", "tuned_rag"), 2) is None  # never scored
    entry = baseline_entry(
        evaluate=ev, baseline_dir=tmp_path / "v1", baseline_label="v1", subset=subset, cache=cache
    )
    assert entry["score"] == pytest.approx(0.60)
    # 2 rows × 2 modes answered in at least 0.02 s: 2 rows of both modes take as long again
    seconds = gate_seconds(cache, subset, ("tuned", "tuned_rag"), 2)
    assert seconds is not None and seconds >= 0.02
    decision = run_gate(
        tmp_path / "v2",
        evaluate=ev,
        baseline_dir=tmp_path / "v1",
        baseline_label="v1",
        subset=subset,
        cache=cache,
    )
    assert decision.passed and ev.calls == ["v1", "v2"]


def test_publish_copies_a_whole_version_and_replaces_the_old_default(tmp_path):
    root, target = tmp_path / "adapters", tmp_path / "corpus" / "default_adapter"
    with registry.staged_version(root, "v1") as (stage, _):
        _fill(stage)
    with pytest.raises(RegistryError, match="lacks lora.gguf, metrics.json, loss.json"):
        registry.publish(root, "v1", target)
    assert not target.exists()
    with registry.staged_version(root, "v2") as (stage, _):
        _fill(stage, combined=0.5)
        for name in ("lora.gguf", "loss.json"):
            (stage / name).write_bytes(b"v2")
    registry.activate(root, "v2")
    (target).mkdir(parents=True)
    (target / "stale.txt").write_text("old default")
    with pytest.raises(RegistryError, match="not an adapter"):  # a folder of other files is never replaced
        registry.publish(root, "active", target)
    assert [p.name for p in target.iterdir()] == ["stale.txt"]
    (target / "adapter_config.json").write_text("{}")  # the old default adapter
    registry.publish(root, "active", target)
    assert sorted(p.name for p in target.iterdir()) == sorted([*registry.PUBLISHED_FILES, "SOURCE.json"])
    assert (target / "lora.gguf").read_bytes() == b"v2"
    assert json.loads((target / "SOURCE.json").read_text())["version"] == "v2"
    assert registry.is_complete(target)
    assert [p.name for p in target.parent.iterdir()] == ["default_adapter"]  # no temp folders left
    with pytest.raises(RegistryError, match="'nope' not found"):
        registry.publish(root, "nope", target)


def test_gate_cache_key_changes_with_the_answering_settings(tmp_path) -> None:
    from app.settings import AnswerSettings, GenerationSettings, Settings
    from app.wiring.training import answering_fingerprint

    base = Settings(workspace=tmp_path)
    same = Settings(workspace=tmp_path)
    assert answering_fingerprint(base) == answering_fingerprint(same)
    others = [
        Settings(workspace=tmp_path, answer=AnswerSettings(passages_per_doc=1)),
        Settings(workspace=tmp_path, generation=GenerationSettings(context_tokens=700)),
    ]
    assert len({answering_fingerprint(s) for s in [base, *others]}) == 3
    # a translating profile set up later moves the ranking of other-language passages
    from adapters.base_model import PROFILES

    before = answering_fingerprint(base)
    name = PROFILES["qwen-1.5b"].gguf_name
    base.ws.models.mkdir(parents=True, exist_ok=True)
    (base.ws.models / name).write_bytes(b"GGUF")
    (base.ws.models / f"{name}.sha256").write_text("checked\n", encoding="utf-8")
    assert answering_fingerprint(base) != before
