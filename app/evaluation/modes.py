"""`hybrid eval` (answer modes) and `hybrid eval --fit-router`: reads the eval rows, builds the real
assistant (correction memory off), runs the harness in ``domain.evaluation``, adds the retrieval
scores, and writes the report as JSON and Markdown (plus the per-row results as JSONL) into the
selected collection's evals folder. Fitted router thresholds go to the collection's router.json.
The training gate scores an adapter with the same harness (``app.evaluation.gate``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.errors import ConfigError
from domain.router import MODE_CHOICES

if TYPE_CHECKING:
    from domain.pipeline import Assistant
    from domain.progress import ProgressFn

logger = logging.getLogger(__name__)


def parse_modes(spec: str) -> list[str]:
    """Comma-separated mode names, validated and deduplicated in order.

    Raises:
        ConfigError: an unknown or empty mode list.
    """
    modes = list(dict.fromkeys(m.strip().lower() for m in spec.split(",") if m.strip()))
    bad = [m for m in modes if m not in MODE_CHOICES]
    if bad or not modes:
        raise ConfigError(
            f"unknown modes {bad or spec!r} — use a comma-separated list of {', '.join(MODE_CHOICES)}"
        )
    return modes


def _retrieval_section(assistant: Assistant, rows: Sequence[dict[str, Any]], k: int) -> dict[str, Any] | None:
    """recall@k and MRR per retrieval method, when the retriever can search each method alone
    (with "translated" beside them when the answers' search translates questions)."""
    from domain.crosslingual import TranslatingRetriever

    retriever = assistant.retriever
    translated = retriever if isinstance(retriever, TranslatingRetriever) else None
    if translated is not None:
        retriever = translated.inner
    if retriever is None or not hasattr(retriever, "search_many"):
        return None
    from app.evaluation.retrieval import evaluate

    scored = evaluate(retriever, rows, k=k, translated=translated)  # type: ignore[arg-type]
    keep = (f"recall@{k}", "mrr", "n", f"source_share@{k}")
    return {m: {key: v[key] for key in keep if key in v} for m, v in scored["retrieval"].items()}


def evaluate_assistant(
    assistant: Assistant,
    rows: Sequence[dict[str, Any]],
    modes: Sequence[str],
    *,
    quiet: bool = False,
    on_progress: ProgressFn | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-row results and the aggregated report, with a progress bar on stderr (or progress sent
    to ``on_progress`` instead)."""
    from app.commands.progress import progress_bar
    from domain.evaluation import build_report, evaluate_rows

    with progress_bar("evaluating", quiet=quiet or on_progress is not None) as bar:
        results = evaluate_rows(
            rows, assistant, modes, style=assistant.options.style, on_progress=on_progress or bar
        )
    return results, build_report(results, modes, assistant.adapter_state)


def correction_rows(coll: Any) -> list[dict[str, Any]]:
    """Collection ``coll``'s corrections as evaluation rows of their own kind and split
    ("correction"): whether the modes now say what the user corrected them to say."""
    from domain.corrections import CorrectionStore, correction_eval_row

    db = coll.paths.feedback_db
    if not db.is_file():
        return []
    style = coll.style()
    return [correction_eval_row(c, style) for c in CorrectionStore(db).all()]


def run_mode_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of `hybrid eval` without --retrieval (arguments defined in app.commands.eval_cmd)."""
    from app.evaluation.retrieval import eval_files, load_eval_rows, select_rows
    from app.wiring.answer import build_assistant
    from app.wiring.collections import get_collection

    modes = parse_modes(args.modes)
    if args.fit_router and "auto" not in modes:
        modes.append("auto")
    coll = get_collection(settings)
    own = correction_rows(coll) if not args.eval_set else []  # a named file is evaluated alone
    files = [] if own and not coll.eval_set.is_file() else eval_files(args.eval_set, coll.eval_set)
    rows = select_rows(
        (load_eval_rows(files) if files else []) + own, kinds=args.kinds, split=args.split, limit=args.limit
    )
    if args.k is not None:  # the answers read as many passages as the retrieval section scores
        settings = settings.model_copy(update={"index": settings.index.model_copy(update={"top_k": args.k})})
    assistant = build_assistant(settings, use_corrections=False)
    quiet = args.json_path == "-"
    results, report = evaluate_assistant(assistant, rows, modes, quiet=quiet)
    report["collection"] = settings.collection
    report["style"] = assistant.options.style.name
    report["split"] = args.split or "all"
    report["k"] = settings.index.top_k
    report["generation"] = settings.generation.model_dump()
    from app.wiring.models import describe_base, profile_key

    report["model"] = {"profile": profile_key(settings), "base": describe_base(settings)}
    report["eval_files"] = [str(f) for f in files]
    report["thresholds"] = assistant.thresholds.to_json()
    retrieval = _retrieval_section(assistant, rows, settings.index.top_k)
    if retrieval is not None:
        report["retrieval"] = retrieval
    if args.fit_router:
        _fit_and_save(settings, report, results, assistant.adapter_state, assistant.thresholds)
    return _write_report(settings, args, report, results)


def _fit_and_save(
    settings: Settings,
    report: dict[str, Any],
    results: list[dict[str, Any]],
    adapter: Any,
    start: Any,
) -> None:
    """Fit the router on ``results``, store the thresholds and note the fit in ``report``."""
    from app.wiring.answer import router_path
    from domain.evaluation import router_rows
    from domain.router_fit import fit_router

    fit = fit_router(router_rows(results, adapter), start=start)
    if fit.n_rows == 0:
        why = (
            "no row was scored in every mode the router picks between (prompt and rag, and the tuned "
            "modes while an adapter is active) — evaluate those modes to fit it"
        )
        logger.warning("router not fitted: %s; %s kept", why, router_path(settings))
        report.setdefault("router", {})["fitted"] = {"n_rows": 0, "not_fitted": why}
        return
    fit.thresholds.save(router_path(settings))
    report.setdefault("router", {})["fitted"] = {
        "thresholds": fit.thresholds.to_json(),
        "agreement": fit.agreement,
        "combined": fit.combined,
        "n_rows": fit.n_rows,
        "path": str(router_path(settings)),
        "note": "in-sample: fitted on these rows",
    }
    logger.info(
        "router thresholds fitted on %d rows (agreement %.3f, combined %.3f) and saved to %s",
        fit.n_rows,
        fit.agreement,
        fit.combined,
        router_path(settings),
    )


def run_refit(args: argparse.Namespace, settings: Settings) -> int:
    """`hybrid eval --refit RUN.rows.jsonl`: fit the router again from a saved run (its report
    JSON beside it gives the adapter state); writes a new report, runs no model.

    Raises:
        ConfigError: the rows file or its report is missing or unreadable.
    """
    from domain.router import AdapterState, RouterThresholds

    rows_path = Path(args.refit)
    report_path = rows_path.with_name(rows_path.name.removesuffix(".rows.jsonl") + ".json")
    try:
        results = [
            json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"cannot read the saved run {rows_path} and its report {report_path.name}: {e} — "
            "pass a modes-*.rows.jsonl file written by `hybrid eval`"
        ) from e
    try:
        adapter = AdapterState(**report.get("adapter", {}))
    except (TypeError, AttributeError) as e:
        raise ConfigError(
            f"the report {report_path.name} names no usable adapter state ({e}) — run `hybrid eval` again"
        ) from e
    _fit_and_save(settings, report, results, adapter, RouterThresholds())
    report["router"]["fitted"]["refit_from"] = str(rows_path)
    return _write_report(settings, args, report, results)


def _write_report(
    settings: Settings, args: argparse.Namespace, report: dict[str, Any], results: list[dict[str, Any]]
) -> int:
    from app.commands.progress import emit_or_show
    from app.wiring.collections import get_collection
    from domain.atomic import write_text_atomic
    from domain.evaluation import render_markdown

    evals = get_collection(settings).paths.evals
    evals.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = evals / f"modes-{stamp}"
    n = 1
    while base.with_suffix(".json").exists():
        n += 1
        base = evals / f"modes-{stamp}-{n}"
    markdown = render_markdown(report)
    if "fitted" in report.get("router", {}):
        f = report["router"]["fitted"]
        if "not_fitted" in f:
            markdown += f"\nRouter not fitted: {f['not_fitted']}.\n"
        else:
            markdown += (
                f"\nRouter refitted (in-sample) on {f['n_rows']} rows: agreement {f['agreement']:.3f}, "
                f"combined {f['combined']:.3f}; saved to {f['path']}.\n"
            )
    write_text_atomic(base.with_suffix(".json"), json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_text_atomic(base.with_suffix(".md"), markdown)
    write_text_atomic(
        base.parent / f"{base.name}.rows.jsonl",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results),
    )

    def show(_: Any) -> None:
        print(markdown)
        print(f"report: {base.with_suffix('.json')} and .md (per-row results in {base.name}.rows.jsonl)")

    return emit_or_show(report, args.json_path, show)
