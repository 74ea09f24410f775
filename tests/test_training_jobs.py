"""Training jobs as real processes on the tiny Llama: a job registers and activates a version; a job
killed with SIGKILL mid-run leaves ACTIVE unchanged and no half-written version; a cancelled job
leaves no version and resumes from its checkpoint to the same number of steps."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from adapters import jobs, registry
from adapters.train_params import TrainingParams
from adapters.training_data import TrainRow, build_examples, default_build_messages, write_examples
from domain.atomic import read_json
from tests.test_registry import _fill


def _job(tmp_path: Path, tiny_llama_dir: Path, *, epochs: int) -> tuple[Path, Path]:
    rows = [
        TrainRow(
            id=f"r{i}",
            lang="en",
            question=f"How many leave days in team {i}?",
            answer=f"Conclusion: {20 + i % 3} days.\nBasis: [leave.md]\nNote: ask.",
        )
        for i in range(8)
    ]
    examples, _ = build_examples(rows, build_messages=default_build_messages)
    params = TrainingParams(
        epochs=epochs,
        batch_size=2,
        lr=5e-3,
        val_share=0.0,
        precision="fp32",
        max_length=256,
        checkpoint_every=1,
    )
    root = tmp_path / "adapters"
    job_dir = jobs.new_job(
        tmp_path / "jobs",
        "train",
        {
            "base_hf": str(tiny_llama_dir),
            "registry": str(root),
            "params": params.to_json(),
            "activate": "gate",
            "convert_gguf": False,
            "num_threads": 1,
            "base_sha256": "tiny",
        },
    )
    write_examples(job_dir / "examples.jsonl", examples)
    return job_dir, root


def _wait_for_step(job_dir: Path, step: int, timeout_s: float = 120) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = jobs.read_status(job_dir)
        if int(status.get("step") or 0) >= step or status["status"] in jobs.FINAL:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job did not reach step {step}")


def _wait_exit(pid: int) -> None:
    for _ in range(400):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done == pid:
            return
        time.sleep(0.05)


def test_a_job_registers_and_activates_a_complete_version(tmp_path, tiny_llama_dir):
    job_dir, root = _job(tmp_path, tiny_llama_dir, epochs=2)
    jobs.launch(job_dir, "adapters.train_job")
    seen: list[tuple[int, int]] = []
    status = jobs.wait(job_dir, on_progress=lambda d, t, _m="": seen.append((d, t)), poll_s=0.1)
    assert status["status"] == "succeeded", (job_dir / "log.txt").read_text()[-2000:]
    assert status["result"]["version"] == "v1" and status["result"]["activated"] is True
    assert status["total"] == 8 and [h["step"] for h in status["loss_history"]] == list(range(1, 9))
    assert registry.active_version_dir(root) == root / "v1"
    assert sorted(p.name for p in (root / "v1").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "loss.json",
        "metrics.json",
        "params.json",
    ]
    params = read_json(root / "v1" / "params.json")
    assert params["base_sha256"] == "tiny" and len(params["data_hash"]) == 64 and params["r"] == 16
    assert seen[-1] == (8, 8)


def test_a_job_killed_mid_run_leaves_active_unchanged_and_no_half_version(tmp_path, tiny_llama_dir):
    job_dir, root = _job(tmp_path, tiny_llama_dir, epochs=400)
    with registry.staged_version(root, "v1") as (stage, _):
        _fill(stage)
    registry.activate(root, "v1")
    pid = jobs.launch(job_dir, "adapters.train_job")
    status = _wait_for_step(job_dir, 3)
    assert status["status"] == "running"
    os.kill(pid, signal.SIGKILL)
    _wait_exit(pid)
    status = jobs.read_status(job_dir)
    assert status["status"] == "failed" and "ended without a final status" in status["error"]
    assert (root / "ACTIVE").read_text() == "v1\n"
    assert [v.version for v in registry.list_versions(root)] == ["v1"]
    assert sorted(p.name for p in root.iterdir()) == ["ACTIVE", "history.json", "v1"]


@pytest.mark.timeout(300)
def test_a_cancelled_job_leaves_no_version_and_resumes_from_its_checkpoint(tmp_path, tiny_llama_dir):
    # enough steps that the cancel lands mid-run (the status file is written about once a second)
    job_dir, root = _job(tmp_path, tiny_llama_dir, epochs=40)
    jobs.launch(job_dir, "adapters.train_job")
    _wait_for_step(job_dir, 5)
    assert jobs.cancel(job_dir) is True
    status = jobs.wait(job_dir, poll_s=0.1)
    assert status["status"] == "cancelled" and "stopped at step" in status["error"]
    assert registry.list_versions(root) == [] and (job_dir / "checkpoints" / "checkpoint.pt").is_file()
    stopped_at = status["step"]

    jobs.launch(job_dir, "adapters.train_job")
    status = jobs.wait(job_dir, poll_s=0.1)
    assert status["status"] == "succeeded", (job_dir / "log.txt").read_text()[-2000:]
    assert [h["step"] for h in status["loss_history"]] == list(range(1, 161))
    assert stopped_at < 160 and "resumed from" in (job_dir / "log.txt").read_text()
    assert registry.active_version(root) == "v1"
