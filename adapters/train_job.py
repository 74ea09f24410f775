"""The training job's worker: from a job folder's spec to a registered (and maybe activated) adapter
version. Runs in its own process (``python -m adapters.train_job JOB_DIR``, or through the app's
wiring, which adds data preparation and the evaluation gate as hooks).

Steps: examples (prepared once, kept in the job folder for resume) → split → LoRA training with
checkpoints → staged version (adapter, params, loss curve, metrics, GGUF LoRA, gate result) →
rename into the registry → activate when the gate passes (or when forced). A cancel or a crash
before the rename leaves no version and ACTIVE untouched.

Spec keys: ``base_hf`` (folder), ``registry`` (folder), ``params`` (TrainingParams JSON), optional
``base_sha256``, ``version``, ``activate`` ("gate" | "force" | "never"), ``convert_gguf`` with
``tools_dir``, ``lora_outtype``, ``num_threads``, ``data`` (what the prepare hook reads).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from adapters import registry
from adapters.jobs import JobReporter
from adapters.model_info import file_sha256
from adapters.train_params import TrainingParams
from adapters.training_data import ChatExample, data_hash, read_examples, split_validation, write_examples
from domain.atomic import read_json, write_json_atomic
from domain.errors import HybridError, TrainingError

logger = logging.getLogger(__name__)

EXAMPLES = "examples.jsonl"
CHECKPOINTS = "checkpoints"
PrepareFn = Callable[[dict[str, Any], JobReporter], tuple[list[ChatExample], dict[str, Any]]]
# Seconds of saving a version and converting its GGUF LoRA, assumed before it is measured (a 0.5B
# adapter takes about 10 s; the estimate only adds to the ETA of the phases before it).
CONVERT_PRIOR_S = 20.0


class Gate(Protocol):
    """The evaluation gate as the job uses it."""

    def before_training(self, reporter: JobReporter, later_s: float | None) -> float | None:
        """Score what does not depend on the new version (the adapter in use), reporting progress
        with ``later_s`` estimated seconds of the job after it; return the expected seconds of
        the gate after training (None = unknown)."""

    def __call__(self, stage: Path, name: str, reporter: JobReporter) -> dict[str, Any]:
        """Score the staged version; the decision JSON with at least {"passed": bool}."""


def base_identity(base_dir: Path, given: str | None) -> str:
    """The base model's sha256: as given by the caller, else of its (first) safetensors file."""
    if given:
        return given
    files = sorted(Path(base_dir).glob("*.safetensors"))
    return file_sha256(files[0]) if files else "unknown"


def _examples(
    job_dir: Path, spec: dict[str, Any], reporter: JobReporter, prepare: PrepareFn | None
) -> tuple[list[ChatExample], dict[str, Any]]:
    path = job_dir / EXAMPLES
    if path.is_file():
        info = read_json(job_dir / "data_report.json") if (job_dir / "data_report.json").is_file() else {}
        return read_examples(path), info
    if prepare is None:
        raise TrainingError(
            f"job {job_dir.name} has no {EXAMPLES} and no data preparation — start it with `hybrid train`"
        )
    reporter.update(phase="preparing data", force=True)
    examples, info = prepare(spec, reporter)
    write_examples(path, examples)
    write_json_atomic(job_dir / "data_report.json", info)
    return examples, info


def _convert(
    stage: Path, base_dir: Path, spec: dict[str, Any], metrics: dict[str, Any], reporter: JobReporter
) -> None:
    """The GGUF LoRA for llama.cpp; a failure is recorded (the trained weights are kept)."""
    from adapters.llama_tools import convert_lora_to_gguf

    reporter.update(phase="converting to GGUF LoRA", force=True)  # the ETA of "saving" holds
    try:
        convert_lora_to_gguf(
            stage,
            stage / "lora.gguf",
            base_hf_dir=base_dir,
            tools_dir=Path(spec["tools_dir"]),
            outtype=spec.get("lora_outtype", "f16"),
        )
    except HybridError as e:
        logger.error("GGUF LoRA conversion failed; the version is kept without lora.gguf: %s", e)
        metrics["lora_gguf_error"] = str(e)


def _tokens_per_s_prior(spec: dict[str, Any]) -> float | None:
    """Training tokens/s of the newest version trained here on this base (else of the adapter
    training continues from): the ETA's pace until this run's own steps measure it."""
    sha = spec.get("base_sha256")
    for v in sorted(registry.list_versions(Path(spec["registry"])), key=lambda v: v.created_at, reverse=True):
        tps = v.metrics.get("tokens_per_s")
        if tps and (not sha or v.params.get("base_sha256") == sha):
            return float(tps)
    if spec.get("init_adapter"):
        try:
            return (
                float(read_json(Path(spec["init_adapter"]) / "metrics.json").get("tokens_per_s") or 0) or None
            )
        except (OSError, ValueError, TypeError):
            return None
    return None


def _training_prior_s(
    examples: list[ChatExample], base_dir: Path, params: TrainingParams, spec: dict[str, Any]
) -> float | None:
    """Expected seconds of training ``examples`` (their tokens × epochs at the prior pace)."""
    tps = _tokens_per_s_prior(spec)
    if tps is None:
        return None
    try:
        from transformers import AutoTokenizer

        from adapters.batching import encode_examples

        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        encoded, _ = encode_examples(tokenizer, examples, max_length=params.max_length)
    except (OSError, ValueError) as e:
        logger.warning("no training time estimate: %s", e)
        return None
    return sum(len(e.ids) for e in encoded) * params.epochs / tps


def _before_training(gate: Gate, reporter: JobReporter, later_s: float | None) -> float | None:
    """The gate's work before training; a failure there is left to the gate after training (which
    records it with the kept version), so it never costs the training run."""
    try:
        return gate.before_training(reporter, later_s)
    except Exception:  # noqa: BLE001 — the gate after training reports it
        logger.error(
            "scoring the adapter in use failed; the gate will try again:\n%s", traceback.format_exc()
        )
        return None


def _run_gate(gate: Gate, stage: Path, name: str, reporter: JobReporter) -> dict[str, Any]:
    """The gate's decision; if the gate itself cannot run, the version fails it (and is kept)."""
    try:
        return gate(stage, name, reporter)
    except Exception as e:  # noqa: BLE001 — any failure here must not discard the trained weights
        logger.error("the evaluation gate could not run:\n%s", traceback.format_exc())
        return {
            "passed": False,
            "reason": f"the gate could not run: {e}",
            "error": f"{type(e).__name__}: {e}",
        }


def run_training_job(
    job_dir: Path,
    *,
    prepare: PrepareFn | None = None,
    gate: Gate | None = None,
    reporter: JobReporter | None = None,
    handle_signals: bool = True,
) -> dict[str, Any]:
    """Run the job in ``job_dir`` to the end; returns the result also written to job.json.

    ``reporter`` is the worker's own (a new one by default). ``handle_signals`` turns SIGTERM/SIGINT
    into a clean cancel (only in the worker process's main thread; in-process callers such as tests
    pass False).

    Raises:
        TrainingError: cancelled or failed (the job file says so too).
    """
    import torch

    from adapters.trainer import load_base, save_adapter, train_lora

    job_dir = Path(job_dir)
    spec = read_json(job_dir / "spec.json")
    reporter = reporter or JobReporter(job_dir)
    if handle_signals:
        reporter.install_signal_handlers()
    try:
        params = TrainingParams.from_json(spec["params"])
        if spec.get("num_threads"):
            torch.set_num_threads(int(spec["num_threads"]))
        examples, data_info = _examples(job_dir, spec, reporter, prepare)
        train, val = split_validation(examples, share=params.val_share, seed=params.seed)
        reporter.update(n_train=len(train), n_val=len(val), loss_history=[], force=True)
        base_dir = Path(spec["base_hf"])
        train_s = _training_prior_s(train, base_dir, params, spec)
        gate_s: float | None = 0.0
        if gate is not None:
            gate_s = _before_training(gate, reporter, None if train_s is None else train_s + CONVERT_PRIOR_S)
        # a gate not timed yet on this collection (its first run times it): the ETA stops before it
        reporter.update(eta_before_gate=gate_s is None)
        after_s = (gate_s or 0.0) + CONVERT_PRIOR_S
        reporter.enter("loading base model", phase_s=train_s, later_s=after_s)
        init = Path(spec["init_adapter"]) if spec.get("init_adapter") else None
        model, tokenizer = load_base(base_dir, params, init_adapter=init)
        reporter.enter("training", phase_s=train_s, later_s=after_s)
        result = train_lora(
            model,
            tokenizer,
            train,
            val,
            params,
            checkpoint_dir=job_dir / CHECKPOINTS,
            on_progress=reporter.progress,
            on_loss=reporter.loss,
            should_stop=reporter.should_stop,
            on_plan=lambda work: reporter.enter("training", phase_s=train_s, later_s=after_s, step_work=work),
        )
        if reporter.should_stop():
            raise TrainingError("training was cancelled")
        root = Path(spec["registry"])
        convert_t0 = time.perf_counter()
        reporter.enter("saving version", phase_s=CONVERT_PRIOR_S, later_s=gate_s)
        with registry.staged_version(root, spec.get("version")) as (stage, name):
            save_adapter(model, stage)
            del model
            gc.collect()
            write_json_atomic(
                stage / "params.json",
                {
                    **params.to_json(),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "base_model": str(base_dir),
                    "base_sha256": base_identity(base_dir, spec.get("base_sha256")),
                    "base": spec.get("base") or {},
                    "data_hash": data_hash(examples),
                    "init_adapter": spec.get("init_adapter"),
                    "data": data_info,
                    "job": job_dir.name,
                },
            )
            write_json_atomic(stage / "loss.json", {"history": result.history})
            metrics: dict[str, Any] = {
                "steps": result.steps,
                "total_steps": result.total_steps,
                "stopped_early": result.stopped_early,
                "best_val_loss": result.best_val_loss,
                "final_train_loss": result.final_train_loss,
                "n_train": result.n_train,
                "n_val": result.n_val,
                "dropped_too_long": len(result.dropped_too_long),
                "train_seconds": round(result.seconds, 1),
                "tokens_per_s": round(result.tokens_per_s, 1),
                "trainable_params": result.trainable_params,
                "precision": params.precision,
            }
            write_json_atomic(stage / "metrics.json", metrics)
            if spec.get("convert_gguf"):
                _convert(stage, base_dir, spec, metrics, reporter)
            metrics["save_seconds"] = round(time.perf_counter() - convert_t0, 1)
            if gate is not None:
                gate_t0 = time.perf_counter()
                reporter.update(eta_before_gate=False)
                reporter.enter("evaluation gate", phase_s=gate_s)
                metrics["gate"] = _run_gate(gate, stage, name, reporter)
                metrics["gate_seconds"] = round(time.perf_counter() - gate_t0, 1)
            write_json_atomic(stage / "metrics.json", metrics)
            if reporter.should_stop():
                raise TrainingError("training was cancelled before the version was registered")
        activate = spec.get("activate", "gate")
        gate_ok = metrics.get("gate", {}).get("passed", True)
        activated = activate == "force" or (activate == "gate" and gate_ok)
        if activated:
            registry.activate(
                root, name, reason="forced" if activate == "force" and not gate_ok else "gate passed"
            )
        out = {"version": name, "path": str(root / name), "activated": activated, "metrics": metrics}
        reporter.finish("succeeded", result=out)
        return out
    except HybridError as e:
        status = "cancelled" if reporter.should_stop() else "failed"
        reporter.finish(status, error=str(e))
        raise
    except Exception as e:
        logger.error("training job failed:\n%s", traceback.format_exc())
        reporter.finish("failed", error=f"{type(e).__name__}: {e}")
        raise TrainingError(f"training job failed: {e} — see {job_dir / 'log.txt'}") from e


def main(argv: list[str] | None = None) -> int:
    """``python -m adapters.train_job JOB_DIR``: train from the job's prepared examples, no gate."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_training_job(Path(args[0]))
    except HybridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
