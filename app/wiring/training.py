"""Wires the training job: checks the data, writes the job's spec and starts it through the job
runner (``app.wiring.jobs``). Its worker (``python -m app.wiring.training JOB_DIR``) prepares the
examples (``app.wiring.training_data``), trains, converts and registers through
``adapters.train_job``, and runs the evaluation gate a new version must pass to be activated: the
evaluator of ``app.evaluation.gate`` (a fixed subset of the evaluation set, the real harness in the
tuned modes), the adapter in use as the baseline, scores cached under what else moves them (the
decision is ``adapters.gate``'s).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from app.wiring.active_adapter import current_adapter, registry_root
from app.wiring.jobs import JobKind
from domain.errors import DataError, HybridError, TrainingError

if TYPE_CHECKING:
    from adapters.train_params import TrainingParams

TRAIN = JobKind(
    name="train",
    module="app.wiring.training",
    label="training job",
    error=TrainingError,
    start_hint="`hybrid train`",
    running_hint="follow it with `hybrid train --follow last` or stop it with `hybrid train --cancel last`",
    done_hint="see its version with `hybrid adapters list`",
    list_hint="see `hybrid train --jobs`",
    one_at_a_time=True,
    last_per_collection=False,
)


def default_training_params() -> dict[str, Any]:
    """The default training parameters as JSON (the Train page's starting values)."""
    from adapters.train_params import TrainingParams

    return TrainingParams().to_json()


def training_params(*, for_corrections: bool = False, **values: Any) -> TrainingParams:
    """Training parameters: the defaults with ``values`` over them (a None value keeps the default),
    checked; ``for_corrections`` then drops the validation share (``TrainingParams.for_corrections``).

    Raises:
        ConfigError: an unknown parameter or a value out of range (the message names it).
    """
    from adapters.train_params import TrainingParams

    params = TrainingParams().replace(**values)
    return params.for_corrections() if for_corrections else params


def start_training(
    settings: Settings,
    params: TrainingParams,
    *,
    data: list[str] | None = None,
    from_corrections: bool = False,
    activate: str = "gate",
    version: str | None = None,
    index: str | None = None,
    num_threads: int | None = None,
) -> Path:
    """Check the data (malformed rows fail here, before any process starts), write the job spec
    and launch the worker. Returns the job folder.

    Raises:
        DataError: malformed training rows (named by file:line) or no corrections to train on.
        TrainingError: another training job is running.
        ModelMissingError: the HF base is not set up.
    """
    from adapters.training_rows import load_train_rows
    from app.wiring import jobs
    from app.wiring.models import base_hf_path, base_identity, tools_dir
    from app.wiring.training_data import load_corrections, train_files

    files = train_files(settings, data)
    rows = load_train_rows(files)
    params = resolve_precision(params)
    init_adapter, init_label = current_adapter(settings) if from_corrections else (None, None)
    if init_adapter is not None:
        params = _continue_params(params, init_adapter)
    n_corrections = len(load_corrections(settings)) if from_corrections else 0
    if from_corrections and n_corrections == 0:
        raise DataError(
            "there are no stored corrections to train on — correct some answers first "
            "(`hybrid correct`), or train on the training set without --from-corrections"
        )
    base_sha, base_info = base_identity(settings, training=True)
    spec = {
        "collection": settings.collection,
        "base_hf": str(base_hf_path(settings)),
        "registry": str(registry_root(settings)),
        "params": params.to_json(),
        "base_sha256": base_sha,
        "base": {"name": base_info.name, "shape": base_info.shape(), "path": base_info.path},
        "version": version,
        "activate": activate,
        "init_adapter": str(init_adapter) if init_adapter else None,
        "init_label": init_label,
        "convert_gguf": True,
        "tools_dir": str(tools_dir(settings)),
        "lora_outtype": "f16",
        "num_threads": num_threads or settings.generation.n_threads,
        "data": {
            "files": [str(f) for f in files],
            "rows": len(rows),
            "from_corrections": from_corrections,
            "corrections": n_corrections,
            "index": index or settings.collection,
        },
    }
    return jobs.start(settings, TRAIN, spec)


def resolve_precision(params: TrainingParams) -> TrainingParams:
    """``params`` with precision "auto" made concrete for this CPU: bf16 only where its matmuls are
    native (AVX-512 BF16 or AMX); elsewhere they are emulated and a step takes many times longer."""
    if params.precision != "auto":
        return params
    from index.embedder import fast_bf16_cpu

    return params.replace(precision="bf16" if fast_bf16_cpu() else "fp32")


def _continue_params(params: TrainingParams, init_adapter: Path) -> TrainingParams:
    """``params`` with the LoRA shape (rank, alpha, target modules) of the adapter training
    continues from, so its weights fit."""
    from domain.atomic import read_json

    try:
        saved = read_json(init_adapter / "params.json")
    except (OSError, ValueError):
        return params
    shape = {k: saved[k] for k in ("r", "alpha", "target_modules") if k in saved}
    if "target_modules" in shape:
        shape["target_modules"] = tuple(shape["target_modules"])
    return params.replace(**shape)


# ----------------------------------------------------------------------------- the gate
def answering_fingerprint(settings: Settings, index: str | None = None) -> str:
    """A short hash of everything besides the adapter that moves gate scores: the generation,
    index and answer settings, the prompt and retrieval versions, the index generation and the
    models that translate questions for search and answer lines. Part of the gate cache key, so a
    baseline scored under other settings is scored again. (The larger model that answers across
    languages is not part of it: the gate scores adapters of the answering model only.)"""
    import hashlib
    import json

    from app.wiring.generation import translator_label
    from app.wiring.index import index_dir
    from domain.prompts import PROMPT_VERSION
    from index.hybrid import RETRIEVAL_VERSION
    from index.store import current_generation

    try:
        gen = current_generation(index_dir(settings, index))
    except HybridError:
        gen = None
    parts = {
        "generation": settings.generation.model_dump(mode="json"),
        "index": settings.index.model_dump(mode="json"),
        "answer": settings.answer.model_dump(mode="json"),
        "prompt": PROMPT_VERSION,
        "retrieval": RETRIEVAL_VERSION,
        "index_generation": gen.name if gen else None,
        "translator": translator_label(settings),
        "answer_translator": translator_label(settings, settings.answer.translate_answers),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def _free_answering() -> None:
    """Drop the answering models and index from this process (about 2 GB with the 0.5B), so
    training does not hold them beside the base model; the gate opens them again."""
    import gc

    from app.wiring.embedder import clear_embedder_cache
    from app.wiring.generation import clear_generator_cache
    from app.wiring.index import clear_index_cache

    clear_generator_cache()
    clear_index_cache()
    clear_embedder_cache()
    gc.collect()


class TrainingGate:
    """The training job's gate (``adapters.train_job.Gate``) for the job's ``spec``: the adapter in
    use is scored before training (unless its score on the gate's subset is cached), the candidate
    after, each reporting its answers as the job's progress."""

    def __init__(self, settings: Settings, spec: dict[str, Any]) -> None:
        self.settings, self.index = settings, spec["data"].get("index")
        self._ctx: dict[str, Any] | None = None

    def _context(self) -> dict[str, Any]:
        if self._ctx is None:
            from adapters.gate import subset_id
            from adapters.model_info import file_sha256
            from app.evaluation.gate import gate_rows
            from app.wiring.collections import get_collection

            rows = gate_rows(self.settings)
            baseline_dir, label = current_adapter(self.settings)
            if baseline_dir is not None and label == "default":
                label = f"default-{file_sha256(baseline_dir / 'adapter_model.safetensors')[:8]}"
            self._ctx = {
                "rows": rows,
                "baseline_dir": baseline_dir,
                "label": label,
                "subset": f"{subset_id([r['id'] for r in rows])}+{answering_fingerprint(self.settings, self.index)}",
                "cache": get_collection(self.settings).paths.evals / "gate_cache.json",
            }
        return self._ctx

    def _gate_args(self, reporter: Any) -> dict[str, Any]:
        """What ``adapters.gate`` needs to score and cache: the evaluator (progress to ``reporter``),
        the adapter in use, the subset and the cache file."""
        from adapters.gate import GATE_MODES
        from app.evaluation.gate import evaluate_with_adapter

        ctx = self._context()
        return {
            "evaluate": lambda d: evaluate_with_adapter(
                self.settings,
                ctx["rows"],
                modes=GATE_MODES,
                adapter_dir=d,
                index=self.index,
                on_progress=reporter.progress,
            ),
            "baseline_dir": ctx["baseline_dir"],
            "baseline_label": ctx["label"],
            "subset": ctx["subset"],
            "modes": GATE_MODES,
            "cache": ctx["cache"],
        }

    def before_training(self, reporter: Any, later_s: float | None) -> float | None:
        """Score the adapter in use now unless cached (``later_s``: the job's estimated seconds after
        this scoring besides the gate's); returns the gate's expected seconds after training."""
        from adapters.gate import GATE_MODES, baseline_entry, gate_seconds

        ctx = self._context()
        if not ctx["rows"]:
            return 0.0
        if ctx["baseline_dir"] is not None:
            known = gate_seconds(ctx["cache"], ctx["subset"], GATE_MODES, len(ctx["rows"]))
            reporter.enter(
                f"scoring the adapter in use ({ctx['label']}) for the gate",
                later_s=None if later_s is None else later_s + (known or 0.0),
                repeats=0 if known else 1,
            )
            try:
                baseline_entry(**self._gate_args(reporter))
            finally:
                _free_answering()
        return gate_seconds(ctx["cache"], ctx["subset"], GATE_MODES, len(ctx["rows"]))

    def __call__(self, stage: Path, name: str, reporter: Any) -> dict[str, Any]:  # noqa: ARG002
        from adapters.gate import run_gate

        ctx = self._context()
        if not ctx["rows"]:
            return {"passed": True, "reason": "no evaluation set to gate on"}
        decision = run_gate(stage, **self._gate_args(reporter))
        return {**decision.to_json(), "n_rows": len(ctx["rows"])}


# ----------------------------------------------------------------------------- the worker
def _prepare_then_free(
    settings: Settings, spec: dict[str, Any], reporter: Any
) -> tuple[list[Any], dict[str, Any]]:
    """``prepare_examples``, then drop the embedder and index from this process before training
    (about 1.5 GB; the gate opens them again)."""
    from app.wiring.training_data import prepare_examples

    try:
        return prepare_examples(settings, spec, reporter)
    finally:
        _free_answering()


def _train(settings: Settings, spec: dict[str, Any], reporter: Any) -> dict[str, Any]:
    """Prepare, train, convert, gate, register, activate (the job finishes itself)."""
    from adapters.train_job import run_training_job

    gate = TrainingGate(settings, spec) if spec.get("activate", "gate") in ("gate", "force") else None
    return run_training_job(
        reporter.job_dir,
        prepare=lambda s, r: _prepare_then_free(settings, s, r),
        gate=gate,
        reporter=reporter,
        handle_signals=False,  # the runner's reporter has them
    )


if __name__ == "__main__":
    from app.wiring.jobs import run_worker

    sys.exit(run_worker(TRAIN, _train))
