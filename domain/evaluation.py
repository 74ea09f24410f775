"""The evaluation harness core: answers every eval row in every asked mode over one retrieval per
row, scores each answer (fact recall of the answer line, and apart from it of the whole text and of
the quoted evidence; ROUGE-L, format, citation precision, combined = mean of the answer line's
fact recall and format), finds the hindsight-best modes per row (every mode tied for the best score;
the cheapest of them names the row in counts), scores the router against them (agreement: the
routed mode is one of them; strict agreement: it is the cheapest), and aggregates a report
(overall, per kind, out-of-domain retrieval) with a Markdown rendering.

Reading eval files, building the assistant and writing reports belong to ``app.evaluation.modes``.

Above ~300 lines because scoring, the hindsight-best modes, the router's agreement and the report
(with its Markdown) all read the same per-row results and change together when a score is added.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from domain.citations import cited_paths
from domain.errors import DataError
from domain.metrics import citation_precision, fact_recall, normalize_source, rouge_l
from domain.pipeline import AUTO, Retrieval, parse_mode
from domain.progress import ProgressFn, no_progress
from domain.router import (
    COST_ORDER,
    AdapterState,
    RouteFeatures,
    RouterRow,
    best_modes,
    hindsight_best,
    route_features,
)
from domain.style import NEUTRAL, StyleProfile, answer_line, format_score
from domain.types import ALL_MODES, Answer, Mode, RouteDecision

OUT_OF_DOMAIN = "out_of_domain"
MODE_KEYS = (
    "fact_recall",
    "rouge_l",
    "format",
    "citation_precision",
    "combined",
    "first_token_s_p50",
    "tokens_per_s",
)


class ModeAnswerer(Protocol):
    """What the harness needs from the answer service (``domain.pipeline.Assistant`` fits)."""

    @property
    def adapter_state(self) -> AdapterState: ...

    def retrieve(self, question: str) -> Retrieval: ...

    def decide(self, question: str, mode: Mode | str, retrieval: Retrieval) -> RouteDecision: ...

    def answer_with(self, question: str, mode: Mode | str, retrieval: Retrieval) -> Answer: ...


def row_sources(row: Mapping[str, Any]) -> list[str]:
    """The row's ``source`` as a list of normalised paths (none for out-of-domain rows)."""
    src = row.get("source")
    items = src if isinstance(src, list) else ([] if src is None else [src])
    return [normalize_source(str(s)) for s in items if s]


def score_answer(answer: Answer, row: Mapping[str, Any], style: StyleProfile = NEUTRAL) -> dict[str, Any]:
    """One answer's metrics against its eval row (plus its text, citations and timing); the answer
    line and the format follow ``style``."""
    lang = str(row.get("lang") or "") or None
    facts = [str(f) for f in row.get("key_facts") or []]
    recall = fact_recall(answer_line(answer.text, lang, style), facts)
    fmt = format_score(answer.text, lang, style)
    sources = row_sources(row)
    cited = cited_paths(answer.citations)
    precision = citation_precision(cited, sources) if sources and answer.mode.uses_retrieval else None
    reference = str(row.get("reference") or "")
    return {
        "answer": answer.text,
        "fact_recall": recall,
        "fact_recall_text": fact_recall(answer.text, facts),
        "evidence_recall": fact_recall(answer.evidence.sentence, facts) if answer.evidence else None,
        "evidence": answer.evidence.sentence if answer.evidence else None,
        "translated_from": answer.translated_from or None,
        "answered_by": answer.answered_by or None,
        "rouge_l": rouge_l(answer.text, reference) if reference else None,
        "format": fmt,
        "citation_precision": precision,
        "combined": (recall + fmt) / 2,
        "cited": cited,
        "passages": [h.chunk.path for h in answer.passages],
        "retrieval_s": answer.timing.retrieval_s,
        "first_token_s": answer.timing.first_token_s,
        "total_s": answer.timing.total_s,
        "tokens_per_s": answer.timing.tokens_per_s,
        "warnings": list(answer.warnings),
    }


def plan_modes(modes: Sequence[str], adapter: AdapterState) -> tuple[list[Mode], bool, dict[str, str]]:
    """(fixed modes to generate, whether "auto" is scored, skipped modes with the reason).

    Scoring "auto" needs every fixed mode (the hindsight-best is taken over all of them); modes
    that need an adapter are skipped when none is loaded.
    """
    wanted = [parse_mode(m) for m in modes]
    with_auto = any(m is None for m in wanted)
    fixed = list(ALL_MODES) if with_auto else [m for m in ALL_MODES if m in wanted]
    skipped: dict[str, str] = {}
    if not adapter.active:
        for m in fixed:
            if m.uses_adapter:
                skipped[m.value] = adapter.note or "no adapter loaded"
        fixed = [m for m in fixed if not m.uses_adapter]
    return fixed, with_auto, skipped


def evaluate_rows(
    rows: Sequence[Mapping[str, Any]],
    assistant: ModeAnswerer,
    modes: Sequence[str],
    *,
    style: StyleProfile = NEUTRAL,
    on_progress: ProgressFn = no_progress,
) -> list[dict[str, Any]]:
    """Per-row results: each fixed mode's scores over one shared retrieval, the hindsight-best
    mode, and (when "auto" is asked) the router's pick, reason and whether it forced retrieval."""
    fixed, with_auto, _ = plan_modes(modes, assistant.adapter_state)
    needs_retrieval = with_auto or any(m.uses_retrieval for m in fixed)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        question = str(row["question"])
        retrieval = assistant.retrieve(question) if needs_retrieval else Retrieval(question, [], 0.0)
        features = route_features(question, retrieval.hits, retrieval.searched_as)
        results = {
            m.value: score_answer(assistant.answer_with(question, m, retrieval), row, style) for m in fixed
        }
        combined = {m: r["combined"] for m, r in results.items()}
        item: dict[str, Any] = {
            "id": str(row.get("id", i)),
            "kind": str(row.get("kind", "")),
            "lang": str(row.get("lang", "")),
            "question": question,
            "sources": row_sources(row),
            "retrieved": [h.chunk.path for h in retrieval.hits],
            "features": features.to_json(),
            "results": results,
            "best_mode": hindsight_best(combined).value if results else None,
            "best_modes": sorted(m.value for m in best_modes(combined)) if results else [],
        }
        if with_auto:
            decision = assistant.decide(question, AUTO, retrieval)
            item["routed_mode"] = decision.mode.value
            item["router_reason"] = decision.reason
            item["retrieval_forced"] = item["kind"] == OUT_OF_DOMAIN and decision.mode.uses_retrieval
        out.append(item)
        on_progress(i + 1, len(rows), f"{item['id']} done")
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means of the per-answer metrics, median first-token latency and tokens/s."""
    return {
        "n": len(results),
        "fact_recall": _mean([r["fact_recall"] for r in results]),
        "fact_recall_text": _mean([r.get("fact_recall_text") for r in results]),
        "evidence_recall": _mean([r.get("evidence_recall") for r in results]),
        "rouge_l": _mean([r["rouge_l"] for r in results]),
        "format": _mean([r["format"] for r in results]),
        "citation_precision": _mean([r["citation_precision"] for r in results]),
        "combined": _mean([r["combined"] for r in results]),
        "first_token_s_p50": _median([r["first_token_s"] for r in results]),
        "tokens_per_s": _median([r["tokens_per_s"] for r in results if r["tokens_per_s"] > 0]),
        "translated": sum(1 for r in results if r.get("translated_from")),
    }


def _mode_results(rows: Sequence[Mapping[str, Any]], mode: str) -> list[Mapping[str, Any]]:
    if mode == AUTO:
        return [r["results"][r["routed_mode"]] for r in rows if r.get("routed_mode") in r["results"]]
    return [r["results"][mode] for r in rows if mode in r["results"]]


def build_report(
    rows: Sequence[Mapping[str, Any]], modes: Sequence[str], adapter: AdapterState
) -> dict[str, Any]:
    """The aggregated report: ``n_rows``, ``modes`` (per mode, plus "auto" when routed),
    ``router`` (agreement, combined, best fixed mode), ``by_kind``, ``out_of_domain`` and
    ``best_mode_counts``."""
    fixed, with_auto, skipped = plan_modes(modes, adapter)
    names = [m.value for m in fixed] + ([AUTO] if with_auto else [])
    report: dict[str, Any] = {
        "n_rows": len(rows),
        "modes": {name: summarize_results(_mode_results(rows, name)) for name in names},
        "skipped_modes": skipped,
        "adapter": {"active": adapter.active, "label": adapter.label, "gate_passed": adapter.gate_passed},
    }
    kinds = sorted({str(r["kind"]) for r in rows})
    report["by_kind"] = {
        kind: {
            name: summarize_results(_mode_results([r for r in rows if r["kind"] == kind], name))
            for name in names
        }
        for kind in kinds
    }
    counts = {m.value: 0 for m in COST_ORDER if m in fixed}
    for r in rows:
        if r.get("best_mode"):
            counts[r["best_mode"]] += 1
    report["best_mode_counts"] = counts
    if with_auto:
        agree = [r["routed_mode"] in r["best_modes"] for r in rows]
        strict = [r["routed_mode"] == r["best_mode"] for r in rows]
        fixed_combined = {m: report["modes"][m]["combined"] or 0.0 for m in counts}
        best_fixed = max(fixed_combined, key=lambda m: fixed_combined[m]) if fixed_combined else None
        report["router"] = {
            "agreement": sum(agree) / len(agree) if agree else None,
            "agreement_strict": sum(strict) / len(strict) if strict else None,
            "combined": report["modes"][AUTO]["combined"],
            "best_fixed_mode": best_fixed,
            "best_fixed_combined": fixed_combined.get(best_fixed) if best_fixed else None,
            "routed_counts": {m: sum(1 for r in rows if r["routed_mode"] == m) for m in counts},
        }
        ood = [r for r in rows if r["kind"] == OUT_OF_DOMAIN]
        forced = [r["id"] for r in ood if r["retrieval_forced"]]
        report["out_of_domain"] = {
            "n": len(ood),
            "retrieval_forced": len(forced),
            "share_forced": len(forced) / len(ood) if ood else None,
            "rows": forced,
        }
    return report


def router_rows(rows: Sequence[Mapping[str, Any]], adapter: AdapterState) -> list[RouterRow]:
    """The per-row results as ``fit_router`` input (features, adapter, combined score per mode).

    Raises:
        DataError: a row lacks its router features or a mode's combined score (a saved run
            edited by hand, or not written by `hybrid eval`).
    """
    out = []
    for i, r in enumerate(rows, start=1):
        try:
            out.append(
                RouterRow(
                    features=RouteFeatures.from_json(r["features"]),
                    adapter=adapter,
                    scores={m: float(res["combined"]) for m, res in r["results"].items()},
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(
                f"row {i} of the run has no usable router features or scores ({type(e).__name__}: {e}) "
                "— pass a modes-*.rows.jsonl written by `hybrid eval`"
            ) from e
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown tables: modes, router, per kind, out-of-domain retrieval."""
    lines = [f"# Answer evaluation ({report['n_rows']} rows)", ""]
    lines += [
        "| mode | fact recall | ROUGE-L | format | citation precision | combined | first token p50 (s) | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in report["modes"].items():
        lines.append(
            f"| {name} | {_fmt(m['fact_recall'])} | {_fmt(m['rouge_l'])} | {_fmt(m['format'])} | "
            f"{_fmt(m['citation_precision'])} | {_fmt(m['combined'])} | {_fmt(m['first_token_s_p50'], 2)} | "
            f"{_fmt(m['tokens_per_s'], 1)} |"
        )
    for mode, why in report.get("skipped_modes", {}).items():
        lines.append(f"\n{mode} not evaluated: {why}.")
    translated = [
        f"{name} {m['translated']} of {m['n']}" for name, m in report["modes"].items() if m.get("translated")
    ]
    if translated:
        lines.append(
            "\nAnswer lines shown translated into the question's language (the model wrote them in "
            f"another): {', '.join(translated)}."
        )
    router = report.get("router")
    if router and "agreement" in router:  # a run without "auto" has only a refit's note, if that
        lines += [
            "",
            f"Router: agreement {_fmt(router['agreement'])} with the hindsight-best modes "
            f"({_fmt(router.get('agreement_strict'))} with the cheapest of them); routed combined "
            f"{_fmt(router['combined'])} vs best fixed mode {router['best_fixed_mode']} "
            f"{_fmt(router['best_fixed_combined'])}.",
        ]
    ood = report.get("out_of_domain")
    if ood and ood["n"]:
        lines.append(f"Out-of-domain rows: retrieval forced on {ood['retrieval_forced']} of {ood['n']}.")
    lines += [
        "",
        "## By kind",
        "",
        "| kind | mode | n | fact recall | format | combined |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, per_mode in report["by_kind"].items():
        for name, m in per_mode.items():
            lines.append(
                f"| {kind} | {name} | {m['n']} | {_fmt(m['fact_recall'])} | {_fmt(m['format'])} | "
                f"{_fmt(m['combined'])} |"
            )
    return "\n".join(lines) + "\n"
