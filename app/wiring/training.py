"""Wires the fine-tune half: starting, resuming and cancelling training jobs, the job worker (data preparation with the real
retriever and the answering pipeline's prompts, the evaluation gate with the real harness), and
exports. Heavy modules load inside the functions.

The worker runs as ``python -m app.wiring.training JOB_DIR``.
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from app.wiring.active_adapter import current_adapter, default_adapter_dir, registry_root
from domain.errors import ConfigError, DataError, HybridError

if TYPE_CHECKING:
    from adapters.train_params import TrainingParams

logger = logging.getLogger(__name__)

WORKER_MODULE = "app.wiring.training"
GATE_ROWS = 16
GATE_MODES = ("tuned", "tuned_rag")


# ----------------------------------------------------------------------------- where things are
def train_files(settings: Settings, given: list[str] | None = None) -> list[Path]:
    """The training JSONL files: those given, else the selected collection's training set.

    Raises:
        DataError: none exists.
    """
    from app.wiring.collections import get_collection

    if given:
        return [Path(p) for p in given]
    coll = get_collection(settings)
    if not coll.train_set.is_file():
        raise DataError(
            f"collection {coll.name!r} has no training set yet — build one with "
            f"`hybrid dataset build --collection {coll.name}` or pass --data FILE"
        )
    return [coll.train_set]


def eval_files(settings: Settings) -> list[Path]:
    """The selected collection's evaluation set (none yet: an empty list)."""
    from app.wiring.collections import get_collection

    path = get_collection(settings).eval_set
    return [path] if path.is_file() else []


def collection_style(settings: Settings) -> Any:
    """The selected collection's style profile."""
    from app.wiring.collections import get_collection

    return get_collection(settings).style()


def tools_dir(settings: Settings) -> Path:
    from adapters.llama_tools import installed_llama_cpp_version

    return settings.ws.tools / f"llama.cpp-{installed_llama_cpp_version()}"


def base_sha256(settings: Settings) -> str | None:
    """The base GGUF's verified sha256 (from its setup marker), the identity of the training base."""
    from app.wiring.models import base_gguf_path

    try:
        marker = base_gguf_path(settings).with_name(base_gguf_path(settings).name + ".sha256")
        return marker.read_text(encoding="utf-8").split()[0]
    except (HybridError, OSError, IndexError):
        return None


# ----------------------------------------------------------------------------- jobs
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
        ConfigError: another training job is running.
        ModelMissingError: the HF base is not set up.
    """
    from adapters import jobs
    from adapters.training_data import load_train_rows
    from app.wiring.models import base_hf_path

    running = [j for j in jobs.list_jobs(settings.ws.jobs, "train") if j["status"] in ("starting", "running")]
    if running:
        raise ConfigError(
            f"training job {running[0]['id']} is still running — follow it with `hybrid train --follow last` "
            "or stop it with `hybrid train --cancel last`"
        )
    files = train_files(settings, data)
    rows = load_train_rows(files)
    params = resolve_precision(params)
    init_adapter, init_label = current_adapter(settings) if from_corrections else (None, None)
    if init_adapter is not None:
        params = _continue_params(params, init_adapter)
    n_corrections = len(_load_corrections(settings)) if from_corrections else 0
    if from_corrections and n_corrections == 0:
        raise DataError(
            "there are no stored corrections to train on — correct some answers first "
            "(`hybrid correct`), or train on the training set without --from-corrections"
        )
    spec = {
        "collection": settings.collection,
        "base_hf": str(base_hf_path(settings)),
        "registry": str(registry_root(settings)),
        "params": params.to_json(),
        "base_sha256": base_sha256(settings),
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
    job_dir = jobs.new_job(settings.ws.jobs, "train", spec)
    jobs.launch(job_dir, WORKER_MODULE)
    return job_dir


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


def job_dir_for(settings: Settings, job: str) -> Path:
    """The folder of job ``job`` (an id or "last" for the newest training job).

    Raises:
        ConfigError: no such job.
    """
    from adapters import jobs

    if job == "last":
        found = jobs.list_jobs(settings.ws.jobs, "train")
        if not found:
            raise ConfigError("there is no training job yet — start one with `hybrid train`")
        return Path(found[0]["dir"])
    path = settings.ws.job(job)
    if not (path / jobs.JOB_FILE).is_file():
        raise ConfigError(f"job {job!r} not found in {settings.ws.jobs} — see `hybrid train --jobs`")
    return path


def resume_training(settings: Settings, job: str) -> Path:
    """Relaunch a stopped or failed job; it continues from its last checkpoint."""
    from adapters import jobs

    path = job_dir_for(settings, job)
    status = jobs.read_status(path)
    if status["status"] in ("running", "starting"):
        raise ConfigError(f"job {path.name} is still running — wait for it or cancel it first")
    if status["status"] == "succeeded":
        raise ConfigError(
            f"job {path.name} already finished (version {status.get('result', {}).get('version')})"
        )
    jobs.launch(path, WORKER_MODULE)
    return path


# ----------------------------------------------------------------------------- worker hooks
def _load_corrections(settings: Settings) -> list[Any]:
    """Every stored correction (records with question, mode, passages, corrected)."""
    from app.wiring.collections import get_collection
    from domain.corrections import CorrectionStore

    db = get_collection(settings).paths.feedback_db
    if not db.is_file():
        return []
    return list(CorrectionStore(db).all())


def _search_fn(settings: Settings, index: str | None) -> Any:
    """``retriever.search`` as (query, k) -> hits, or None when the index is not built."""
    from app.wiring.index import build_retriever

    try:
        retriever = build_retriever(settings, index)
    except HybridError as e:
        logger.warning("no retriever for RAG-form rows (%s); training on plain rows only", e)
        return None
    return lambda query, k: retriever.search(query, k=k)


def _build_messages_fn(settings: Settings, context_tokens: int | None = None) -> Any:
    """The answering pipeline's prompt builder as (mode, question, hits) -> messages; training rows
    may use a smaller passage budget (``context_tokens``) than answering does."""
    if context_tokens is None:
        from app.wiring.answer import training_messages_builder

        return training_messages_builder(settings)
    from domain.prompts import build_messages

    style = collection_style(settings)
    return lambda mode, question, hits: build_messages(
        mode, question, hits, context_tokens=context_tokens, style=style
    )


def prepare_examples(
    settings: Settings, spec: dict[str, Any], reporter: Any = None
) -> tuple[list[Any], dict[str, Any]]:
    """Rows → chat examples for the job: the training set (or corrections + replay), RAFT-style RAG
    rows through the real retriever, the pipeline's own prompts."""
    from dataclasses import asdict

    from adapters.train_params import TrainingParams
    from adapters.training_data import build_examples, load_train_rows, replay_sample, rows_from_corrections

    params = TrainingParams.from_json(spec["params"])
    data = spec["data"]
    rows = load_train_rows(data["files"])
    if params.max_rows and params.max_rows < len(rows):
        rows = random.Random(params.seed).sample(rows, params.max_rows)
    corrections = rows_from_corrections(_load_corrections(settings))
    if data.get("from_corrections"):
        replay = replay_sample(rows, params.replay_rows * len(corrections), seed=params.seed)
        rows = corrections + replay
    else:  # the training set plus every correction of the collection
        rows = rows + corrections
    if reporter is not None:
        reporter.update(phase=f"preparing {len(rows)} rows", force=True)
    examples, report = build_examples(
        rows,
        build_messages=_build_messages_fn(settings, params.context_tokens),
        search=_search_fn(settings, data.get("index")),
        rag_share=params.rag_share,
        source_prob=params.source_prob,
        distractors=(params.distractors_min, params.distractors_max),
        correction_repeats=params.correction_repeats,
        seed=params.seed,
    )
    return examples, {**asdict(report), "files": data["files"]}


def gate_rows(settings: Settings, n: int = GATE_ROWS) -> list[dict[str, Any]]:
    """The fixed evaluation subset of the gate: every k-th row of the collection's evaluation set
    by id (both languages, all kinds)."""
    import json

    rows = []
    for f in eval_files(settings):
        rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows.sort(key=lambda r: r["id"])
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def evaluate_adapter(
    settings: Settings, adapter_dir: Path, rows: list[dict[str, Any]], index: str | None
) -> dict[str, Any]:
    """The evaluation harness on ``rows`` in the gate's modes, answering with ``adapter_dir``."""
    from app.eval_modes import evaluate_with_adapter

    return evaluate_with_adapter(settings, rows, modes=GATE_MODES, adapter_dir=adapter_dir, index=index)


def answering_fingerprint(settings: Settings, index: str | None = None) -> str:
    """A short hash of everything besides the adapter that moves gate scores: the generation,
    index and answer settings, the prompt and retrieval versions, and the index generation. Part
    of the gate cache key, so a baseline scored under other settings is scored again."""
    import hashlib
    import json

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
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def gate_cache(settings: Settings) -> Path:
    from app.wiring.collections import get_collection

    return get_collection(settings).paths.evals / "gate_cache.json"


def gate_hook(settings: Settings, spec: dict[str, Any]) -> Any:
    from adapters.gate import run_gate, subset_id
    from adapters.train_job import file_sha256

    def gate(stage: Path, name: str, reporter: Any) -> dict[str, Any]:  # noqa: ARG001
        rows = gate_rows(settings)
        if not rows:
            return {"passed": True, "reason": "no evaluation set to gate on"}
        baseline_dir, label = current_adapter(settings)
        if baseline_dir is not None and label == "default":
            label = f"default-{file_sha256(baseline_dir / 'adapter_model.safetensors')[:8]}"
        decision = run_gate(
            stage,
            evaluate=lambda d: evaluate_adapter(settings, d, rows, spec["data"].get("index")),
            baseline_dir=baseline_dir,
            baseline_label=label,
            subset=f"{subset_id([r['id'] for r in rows])}+{answering_fingerprint(settings, spec['data'].get('index'))}",
            modes=GATE_MODES,
            cache=gate_cache(settings),
        )
        return {**decision.to_json(), "n_rows": len(rows)}

    return gate


def _prepare_then_free(
    settings: Settings, spec: dict[str, Any], reporter: Any
) -> tuple[list[Any], dict[str, Any]]:
    """``prepare_examples``, then drop the embedder and index from this process before training
    (about 1.5 GB; the gate opens them again)."""
    import gc

    from app.wiring.embedder import clear_embedder_cache
    from app.wiring.index import clear_index_cache

    try:
        return prepare_examples(settings, spec, reporter)
    finally:
        clear_index_cache()
        clear_embedder_cache()
        gc.collect()


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m app.wiring.training JOB_DIR``: prepare, train, convert, gate, register, activate."""
    from adapters.train_job import run_training_job
    from app.logs import setup_logging
    from app.settings import load_settings
    from app.wiring.collections import with_collection
    from domain.atomic import read_json

    args = sys.argv[1:] if argv is None else argv
    job_dir = Path(args[0])
    settings = load_settings()
    setup_logging(settings.log_level)
    spec = read_json(job_dir / "spec.json")
    settings = with_collection(settings, spec.get("collection"))
    activate = spec.get("activate", "gate")
    gate = gate_hook(settings, spec) if activate in ("gate", "force") else None
    try:
        run_training_job(job_dir, prepare=lambda s, r: _prepare_then_free(settings, s, r), gate=gate)
    except HybridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# ----------------------------------------------------------------------------- export
def golden_rows(settings: Settings, n: int = 5) -> list[dict[str, Any]]:
    """The export's golden prompts: ``n`` evaluation rows spread over the set (fixed by id)."""
    return gate_rows(settings, n)


def heldout_text(settings: Settings) -> str:
    """Held-out domain text for perplexity: the evaluation set's reference answers (never trained on)."""
    import json

    refs = []
    for f in eval_files(settings):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                refs.append(json.loads(line).get("reference") or "")
    if not refs:
        raise DataError(
            f"collection {settings.collection!r} has no evaluation set for the export's perplexity "
            f"check — build one with `hybrid dataset build --collection {settings.collection}`"
        )
    return "\n\n".join(r for r in refs if r)


def calibration_text(settings: Settings) -> str:
    """Text for the q4_k_m importance matrix: the training questions and answers, languages
    interleaved so the first few thousand tokens cover both — never the held-out evaluation text."""
    from itertools import chain, zip_longest

    from adapters.training_rows import load_train_rows

    by_lang: dict[str, list[str]] = {}
    for row in load_train_rows(train_files(settings)):
        by_lang.setdefault(row.lang, []).append(f"{row.question}\n{row.answer}")
    mixed = chain.from_iterable(zip_longest(*by_lang.values()))
    return "\n\n".join(t for t in mixed if t)


def export_current(
    settings: Settings,
    *,
    quant: str,
    adapter: str | None = None,
    n_threads: int | None = None,
    on_progress: Any = None,
) -> dict[str, Any]:
    """Export the adapter in use (or ``adapter``: a version, "default", or "none" for the base model).

    Raises:
        RegistryError: the named version does not exist.
        ExportError / ModelMissingError: as ``adapters.export.export_model``.
    """
    from adapters.export import export_model
    from adapters.registry import is_complete
    from app.wiring.models import base_gguf_path, base_hf_path
    from domain.errors import RegistryError
    from domain.progress import no_progress
    from domain.workspace import check_name

    if adapter in (None, ""):
        folder, label = current_adapter(settings)
    elif adapter == "none":
        folder, label = None, "base"
    elif adapter == "default":
        folder, label = default_adapter_dir(settings), "default"
        if folder is None:
            raise RegistryError(
                f"collection {settings.collection!r} ships no default adapter — name a version "
                "(`hybrid adapters list`) or 'none'"
            )
    else:
        folder, label = registry_root(settings) / check_name(adapter, "adapter version"), adapter
    if folder is not None and not is_complete(folder):
        raise RegistryError(f"adapter {adapter or label!r} not found — see `hybrid adapters list`")
    build = _build_messages_fn(settings)
    prompts = [build("tuned", r["question"], []) for r in golden_rows(settings)]
    system = next((m["content"] for m in build("tuned", "", []) if m["role"] == "system"), "")
    return export_model(
        base_hf=base_hf_path(settings),
        adapter_dir=folder,
        label=label or "base",
        exports_root=settings.ws.exports,
        tools_dir=tools_dir(settings),
        quant=quant,
        golden_prompts=prompts,
        heldout_text=heldout_text(settings),
        calibration_text=calibration_text(settings),
        served_base_gguf=base_gguf_path(settings),
        system_prompt=system,
        n_threads=n_threads or settings.generation.n_threads,
        on_progress=on_progress or no_progress,
    )


if __name__ == "__main__":
    sys.exit(worker_main())
