"""Fake Train and Deploy page backends (``TrainingBackend``, ``ExportBackend`` in
``app.views.services``): jobs that advance on each status poll, versions and exports in memory or in
a temporary folder. Nothing here imports a heavy library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import ConfigError, TrainingError

DEFAULT_PARAMS = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "lr": 2e-4,
    "epochs": 3,
    "batch_size": 4,
    "grad_accum": 1,
    "max_length": 1024,
    "max_rows": 0,
    "seed": 1234,
}


@dataclass
class FakeTrainer:
    """Jobs advance one step per ``status`` call; versions and activation live in memory."""

    jobs_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    active: str = "v1"
    history: list[str] = field(default_factory=lambda: ["v1"])
    version_names: list[str] = field(default_factory=lambda: ["v1", "v2"])

    def dataset(self) -> dict[str, Any]:
        return {
            "base_rows": 120,
            "corrections": 3,
            "by_lang": {"en": {"base": 60, "corrections": 2}, "zh": {"base": 60, "corrections": 1}},
            "sources": ["corpus/train.jsonl", "corpus/train_zh.jsonl", "feedback.sqlite"],
        }

    def default_params(self) -> dict[str, Any]:
        return dict(DEFAULT_PARAMS)

    def estimate(self, rows: int, epochs: int) -> str:
        return f"Fake 1B: about {rows * epochs // 10} min, peak memory about 6 GB (fake)"

    def start(self, params: dict[str, Any], *, from_corrections: bool) -> str:
        if any(j["status"] in ("starting", "running") for j in self.jobs_by_id.values()):
            raise TrainingError("a training job is already running — cancel it or wait")
        job_id = f"train-{len(self.jobs_by_id) + 1}"
        self.started.append({"params": params, "from_corrections": from_corrections, "id": job_id})
        self.jobs_by_id[job_id] = {
            "id": job_id,
            "kind": "train",
            "status": "running",
            "phase": "training",
            "step": 0,
            "total": 10,
            "eta_s": 90.0,
            "loss_history": [],
            "error": None,
        }
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        job = self.jobs_by_id[job_id]
        if job["status"] == "running" and job["step"] < job["total"]:
            job["step"] += 1
            job["loss_history"].append({"step": job["step"], "loss": round(2.0 / job["step"], 4)})
            job["eta_s"] = 9.0 * (job["total"] - job["step"])
            if job["step"] % 2 == 0:
                job["loss_history"][-1]["val_loss"] = round(2.2 / job["step"], 4)
            if job["step"] == job["total"]:
                name = f"v{len(self.version_names) + 1}"
                self.version_names.append(name)
                self.active = name
                self.history.append(name)
                gate = {"passed": True, "reason": "combined 0.81 ≥ 0.80 (v1)"}
                job.update(
                    status="succeeded",
                    phase="succeeded",
                    eta_s=None,
                    result={"version": name, "activated": True, "metrics": {"gate": gate}},
                )
        return dict(job)

    def cancel(self, job_id: str) -> bool:
        job = self.jobs_by_id[job_id]
        if job["status"] != "running":
            return False
        job.update(status="cancelled", phase="cancelled", eta_s=None)
        self.cancelled.append(job_id)
        return True

    def resume(self, job_id: str) -> str:
        job = self.jobs_by_id[job_id]
        if job["status"] not in ("cancelled", "failed"):
            raise ConfigError(f"job {job_id} is not stopped — nothing to resume")
        job.update(status="running", phase="training")
        self.resumed.append(job_id)
        return job_id

    def in_use(self) -> str | None:
        return self.active

    def jobs(self) -> list[dict[str, Any]]:
        return [dict(j) for j in reversed(list(self.jobs_by_id.values()))]

    def versions(self) -> list[dict[str, Any]]:
        out = []
        for i, v in enumerate(self.version_names):
            gate = {
                "passed": True,
                "reason": "combined 0.80 ≥ 0.75",
                "candidate_modes": {
                    "tuned": {"combined": 0.7 + 0.1 * i, "format": 0.9},
                    "tuned_rag": {"combined": 0.8, "format": 0.95},
                },
                "baseline_modes": {
                    "tuned": {"combined": 0.6, "format": 0.8},
                    "tuned_rag": {"combined": 0.75, "format": 0.9},
                },
            }
            out.append(
                {
                    "version": v,
                    "active": v == self.active,
                    "created_at": f"2026-01-0{i + 1}",
                    "gate_passed": True,
                    "has_gguf": True,
                    "metrics": {"gate": gate, "best_val_loss": 0.9 - 0.1 * i, "tokens_per_s": 250.0},
                    "params": dict(DEFAULT_PARAMS),
                    "path": f"/ws/adapters/{v}",
                }
            )
        return out

    def activate(self, version: str) -> dict[str, Any]:
        if version not in self.version_names:
            raise ConfigError(f"no version {version}")
        self.active = version
        self.history.append(version)
        return {"version": version}

    def rollback(self) -> dict[str, Any]:
        if len(self.history) < 2:
            raise ConfigError("nothing to roll back to — activate a version")
        self.history.pop()
        self.active = self.history[-1]
        return {"version": self.active}


@dataclass
class FakeExporter:
    """Exports finish on the first status poll and leave small files in ``root``."""

    root: Path
    jobs_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    done: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def quants(self) -> Sequence[str]:
        return ("q8_0", "q4_k_m", "f16")

    def source_label(self) -> str:
        return "v2"

    def estimate(self) -> str:
        return "Fake 1B: peak memory about 6 GB, about 1.6 GB of disk"

    def start(self, quant: str) -> str:
        job_id = f"export-{len(self.jobs_by_id) + 1}"
        self.jobs_by_id[job_id] = {
            "id": job_id,
            "kind": "export",
            "status": "running",
            "phase": "merging",
            "step": 0,
            "total": 6,
            "eta_s": None,
            "loss_history": [],
            "quant": quant,
        }
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        job = self.jobs_by_id[job_id]
        if job["status"] == "running":
            quant = job["quant"]
            out = self.root / "exports" / "v2"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"model-{quant}.gguf").write_bytes(b"GGUF" + b"\0" * 60)
            (out / f"Modelfile-{quant}").write_text(f"FROM ./model-{quant}.gguf\n")
            (out / f"run-{quant}.txt").write_text(
                f"llama-cli -m {out / f'model-{quant}.gguf'} -cnv --temp 0\n"
                f"ollama create hybrid-assistant -f Modelfile-{quant}\n"
            )
            report = {
                "label": "v2",
                "quant": quant,
                "path": str(out / f"model-{quant}.gguf"),
                "bytes": 64,
                "golden": {"mode": "tuned_rag", "n": 5, "identical": 5},
                "tokens_per_s": 42.5,
                "perplexity": {"f16": 7.0, quant: 7.05},
                "perplexity_ratio_vs_f16": 1.0071,
                "base_blocks": {"source": "base.gguf", "tensors": 86},
                "served": {"perplexity_ratio_vs_f16": 1.0071, "golden_identical": 3},
                "modelfile": str(out / f"Modelfile-{quant}"),
                "commands": str(out / f"run-{quant}.txt"),
                "seconds": 1.0,
            }
            self.done.insert(0, report)
            job.update(status="succeeded", phase="succeeded", step=6, result=report)
        return dict(job)

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return False

    def jobs(self) -> list[dict[str, Any]]:
        return [dict(j) for j in reversed(list(self.jobs_by_id.values()))]

    def reports(self) -> list[dict[str, Any]]:
        return list(self.done)


@dataclass
class FakeDatasets:
    """A collection's sets in memory and a build job that finishes after two polls."""

    sets: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {
            "eval": [
                {
                    "id": f"e-{i}",
                    "lang": "en",
                    "kind": "fact",
                    "question": f"Question {i}?",
                    "reference": f"Answer: fact {i}.\nSource: [guide.md]",
                    "key_facts": [f"fact {i}"],
                    "source": "guide.md",
                    "split": "tune" if i % 2 else "heldout",
                }
                for i in range(1, 4)
            ],
            "train": [],
        }
    )
    started: list[dict[str, Any]] = field(default_factory=list)
    saved: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    polls: int = 0
    cancelled: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ev = self.sets["eval"]
        return {
            "eval": {
                "rows": len(ev),
                "own": True,
                "path": "/ws/eval.jsonl",
                "by_lang": {"en": len(ev)},
                "by_split": {"tune": 2, "heldout": 1},
            },
            "train": {"rows": len(self.sets["train"]), "own": False, "path": None, "by_lang": {}},
            "build": None,
            "writer_hint": "A larger model writes questions that their facts answer more often",
        }

    def start(self, n_eval: int, n_train: int, *, replace: bool, check_train: bool = False) -> str:
        self.started.append(
            {"n_eval": n_eval, "n_train": n_train, "replace": replace, "check_train": check_train}
        )
        return "dataset-1"

    def status(self, job_id: str) -> dict[str, Any]:  # noqa: ARG002
        self.polls += 1
        if self.cancelled:
            return {"status": "cancelled", "step": 1, "total": 4}
        done = self.polls >= 8
        return {
            "status": "succeeded" if done else "running",
            "phase": "evaluation rows",
            "step": 4 if done else 1,
            "total": 4,
            "eta_s": 30.0,
            "result": {"eval": {"kept": 3, "rejected": 2}, "train": {"kept": 1, "rejected": 4}},
        }

    def passage(self, row: dict[str, Any]) -> dict[str, Any] | None:
        facts = row.get("key_facts") or []
        if not facts:
            return None
        text = f"Intro. The guide says {facts[0]} for this case. <b>Other</b> text."
        marked = text.replace(facts[0], f"⟦{facts[0]}⟧", 1)
        return {
            "path": row["source"],
            "heading": "Guide > Setup",
            "page": None,
            "text": text,
            "facts": facts,
            "marked": marked,
        }

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return True

    def resume(self, job_id: str) -> str:
        self.cancelled.clear()
        return job_id

    def last_job(self) -> str | None:
        return "dataset-1" if self.started else None

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.sets[kind]]

    def save(self, kind: str, rows: Sequence[dict[str, Any]]) -> str:
        self.saved.append((kind, [dict(r) for r in rows]))
        self.sets[kind] = [dict(r) for r in rows]
        return f"/ws/{kind}.jsonl"

    def import_file(self, kind: str, path: Path, *, replace: bool) -> dict[str, Any]:  # noqa: ARG002
        raise ConfigError("import is not faked — see tests/test_collections.py for the real one")
