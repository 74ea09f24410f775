"""The evaluation harness with fakes: per-row per-mode scores worked out by hand, one retrieval
per row, the hindsight-best mode, router agreement, out-of-domain retrieval, the report keys, the
Markdown table and fitting the router on the results."""

from __future__ import annotations

import json
from functools import partial

import pytest

from domain import evaluation
from domain.evaluation import build_report, plan_modes, render_markdown, router_rows
from domain.pipeline import Assistant, AssistantOptions
from domain.router import AdapterState, RouterThresholds
from domain.router_fit import fit_router
from domain.types import Mode
from tests.fakes_answer import SAMPLE_CHUNKS, FakeGenerator, FakeRetriever, make_hit
from tests.styles import SAMPLE_STYLE

LEAVE, SICK, TRAVEL, LEAVE_ZH = SAMPLE_CHUNKS
V3 = AdapterState(active=True, label="v3", gate_passed=True)
ROWS = [
    {
        "id": "e1",
        "lang": "en",
        "kind": "fact",
        "question": "How many days of annual leave do I get?",
        "reference": "Conclusion: Annual leave is 15 working days per year.\nBasis: [hr/annual-leave.md]\n"
        "Note: Check the document for exceptions.",
        "key_facts": ["15 working days"],
        "source": "hr/annual-leave.md",
    },
    {
        "id": "e2",
        "lang": "en",
        "kind": "out_of_domain",
        "question": "What is the capital of France?",
        "reference": "Conclusion: Paris.\nBasis: general knowledge, not covered by the documents.\nNote: None.",
        "key_facts": ["Paris"],
        "source": None,
    },
    {
        "id": "e3",
        "lang": "zh",
        "kind": "fact",
        "question": "员工每年有几天年假？",
        "reference": "结论：员工每年享有十五天年假。\n依据：【hr/annual-leave-zh.md】\n提示：请以原文为准。",
        "key_facts": ["十五天"],
        "source": "hr/annual-leave-zh.md",
    },
]
CANNED = {
    "How many days of annual leave do I get?": [make_hit(LEAVE, 1, dense=0.9), make_hit(SICK, 2, dense=0.7)],
    "What is the capital of France?": [make_hit(TRAVEL, 1, dense=0.75), make_hit(SICK, 2, dense=0.7)],
    "员工每年有几天年假？": [make_hit(LEAVE_ZH, 1, dense=0.93)],
}
ALL = ["prompt", "rag", "tuned", "tuned_rag", "auto"]

# The rows and canned answers are in the sample collection's three-line style.
evaluate_rows = partial(evaluation.evaluate_rows, style=SAMPLE_STYLE)
score_answer = partial(evaluation.score_answer, style=SAMPLE_STYLE)


def assistant(adapter: AdapterState = V3, thresholds: RouterThresholds | None = None):
    retriever = FakeRetriever(canned=CANNED)
    gen = FakeGenerator(
        adapter_loaded=adapter.active, knowledge={"capital of France": "Paris is the capital of France."}
    )
    a = Assistant(
        retriever=retriever,
        generator=gen,
        options=AssistantOptions(low_score_warning=0.0, style=SAMPLE_STYLE),
        thresholds=thresholds or RouterThresholds(),
        adapter=adapter,
    )
    return a, retriever, gen


def combined(results, mode):
    return [r["results"][mode]["combined"] for r in results]


def test_per_row_scores_worked_by_hand() -> None:
    a, retriever, _ = assistant()
    results = evaluate_rows(ROWS, a, ALL)
    assert len(retriever.queries) == 3  # one retrieval per row, shared by all modes
    # The pipeline writes the labels, so every answer has the style's lines; the fake base model
    # writes nothing after a label but the first, so prompt's empty source line fails
    # source_named: format 5/6. e1: prompt misses the fact (0 + 5/6)/2; rag has it and its source
    # line names the cited file (1 + 1)/2; tuned is styled without it (0 + 1)/2; tuned_rag (1 + 1)/2.
    assert combined(results, "prompt") == pytest.approx([5 / 12, 11 / 12, 5 / 12])
    assert combined(results, "rag") == pytest.approx([1.0, 0.5, 1.0])
    assert combined(results, "tuned") == pytest.approx([0.5, 1.0, 0.5])
    assert combined(results, "tuned_rag") == pytest.approx([1.0, 0.5, 1.0])
    # rag ties tuned_rag on e1 and e3: the cheaper mode is the best, both are among the best
    assert [r["best_mode"] for r in results] == ["rag", "tuned", "rag"]
    assert [set(r["best_modes"]) >= {r["routed_mode"]} for r in results] == [True] * 3
    assert [r["routed_mode"] for r in results] == ["tuned_rag", "tuned", "tuned_rag"]
    assert [r["retrieval_forced"] for r in results] == [False, False, False]
    e1 = results[0]["results"]["tuned_rag"]
    assert (e1["citation_precision"], e1["cited"], e1["rouge_l"]) == (1.0, ["hr/annual-leave.md"], 1.0)
    assert results[1]["results"]["rag"]["citation_precision"] is None  # no sources to be precise about
    assert results[0]["results"]["prompt"]["citation_precision"] is None  # no retrieval, no citations
    assert (
        results[0]["router_reason"]
        == "Tuned + RAG: top passage 0.90 from hr/annual-leave.md; adapter v3 active"
    )
    json.dumps(results)


def test_report_keys_and_aggregates() -> None:
    a, _, _ = assistant()
    report = build_report(evaluate_rows(ROWS, a, ALL), ALL, V3)
    assert report["n_rows"] == 3
    assert list(report["modes"]) == ALL
    for values in report["modes"].values():
        assert set(values) >= {
            "fact_recall",
            "rouge_l",
            "format",
            "citation_precision",
            "combined",
            "first_token_s_p50",
            "tokens_per_s",
        }
    tr = report["modes"]["tuned_rag"]
    assert (tr["fact_recall"], tr["format"], tr["citation_precision"]) == (pytest.approx(2 / 3), 1.0, 1.0)
    assert tr["combined"] == pytest.approx(5 / 6)
    assert report["modes"]["auto"]["combined"] == 1.0
    assert report["router"] == {
        "agreement": 1.0,
        "agreement_strict": pytest.approx(1 / 3),  # tuned_rag where rag (cheaper) ties it
        "combined": 1.0,
        "best_fixed_mode": "rag",
        "best_fixed_combined": pytest.approx(5 / 6),
        "routed_counts": {"prompt": 0, "rag": 0, "tuned": 1, "tuned_rag": 2},
    }
    assert report["out_of_domain"] == {"n": 1, "retrieval_forced": 0, "share_forced": 0.0, "rows": []}
    assert report["best_mode_counts"] == {"prompt": 0, "rag": 2, "tuned": 1, "tuned_rag": 0}
    assert report["by_kind"]["fact"]["rag"]["combined"] == pytest.approx(1.0)
    assert report["by_kind"]["out_of_domain"]["auto"]["n"] == 1
    json.dumps(report)


def test_router_forcing_retrieval_on_out_of_domain_rows_is_reported() -> None:
    a, _, _ = assistant(thresholds=RouterThresholds(dense_min=0.5))
    report = build_report(evaluate_rows(ROWS, a, ALL), ALL, V3)
    assert report["out_of_domain"] == {"n": 1, "retrieval_forced": 1, "share_forced": 1.0, "rows": ["e2"]}
    assert report["router"]["agreement"] == pytest.approx(2 / 3)


def test_modes_without_retrieval_do_not_search() -> None:
    a, retriever, gen = assistant()
    results = evaluate_rows(ROWS, a, ["prompt", "tuned"])
    assert retriever.queries == []
    assert len(gen.calls) == 18  # 3 rows x 2 modes x 3 lines, each written by the model
    assert "routed_mode" not in results[0]


def test_without_an_adapter_tuned_modes_are_skipped() -> None:
    none = AdapterState()
    assert plan_modes(ALL, none) == (
        [Mode.PROMPT, Mode.RAG],
        True,
        {"tuned": "no adapter loaded", "tuned_rag": "no adapter loaded"},
    )
    a, _, gen = assistant(adapter=none)
    report = build_report(evaluate_rows(ROWS, a, ALL), ALL, none)
    assert list(report["modes"]) == ["prompt", "rag", "auto"]
    assert all(not c["adapter"] for c in gen.calls)
    assert report["skipped_modes"] == {"tuned": "no adapter loaded", "tuned_rag": "no adapter loaded"}


def test_progress_is_reported_per_row() -> None:
    a, _, _ = assistant()
    seen = []
    evaluate_rows(ROWS, a, ["rag"], on_progress=lambda d, t, m="": seen.append((d, t, m)))
    assert seen == [(1, 3, "e1 done"), (2, 3, "e2 done"), (3, 3, "e3 done")]


def test_fitting_on_results_recovers_full_agreement() -> None:
    bad = RouterThresholds(dense_min=0.95, dense_min_zh=0.99, margin_min=1.0)
    a, _, _ = assistant(thresholds=bad)
    results = evaluate_rows(ROWS, a, ALL)
    assert build_report(results, ALL, V3)["router"]["agreement"] == pytest.approx(1 / 3)
    fit = fit_router(router_rows(results, V3), start=bad)
    assert (fit.agreement, fit.combined, fit.n_rows) == (1.0, 1.0, 3)


def test_markdown_table() -> None:
    a, _, _ = assistant()
    md = render_markdown(build_report(evaluate_rows(ROWS, a, ALL), ALL, V3))
    lines = md.splitlines()
    assert lines[0] == "# Answer evaluation (3 rows)"
    assert lines[2] == (
        "| mode | fact recall | ROUGE-L | format | citation precision | combined | "
        "first token p50 (s) | tokens/s |"
    )
    assert lines[7].startswith("| tuned_rag | 0.667 | 0.722 | 1.000 | 1.000 | 0.833 | ")
    assert (
        "Router: agreement 1.000 with the hindsight-best modes (0.333 with the cheapest of them); "
        "routed combined 1.000 vs best fixed mode rag 0.833." in md
    )
    assert "Out-of-domain rows: retrieval forced on 0 of 1." in md
    assert "| out_of_domain | auto | 1 | 1.000 | 1.000 | 1.000 |" in md


def test_fact_recall_is_the_answer_lines_and_pasted_evidence_does_not_count() -> None:
    """A wrong Conclusion with the right fact pasted into the Note scores 0 on the answer line;
    the whole text's recall (1.0) and the quoted evidence's are reported apart."""
    from domain.types import Answer, Citation

    row = {"lang": "en", "key_facts": ["not thread-safe"], "source": "itertools.md"}
    text = "Conclusion: Yes, it is safe.\nBasis: [itertools.md]\nNote: tee iterators are not thread-safe."
    quote = Citation("tee iterators are not thread-safe.", "c", "itertools.md", "", "", 1.0)
    scored = score_answer(Answer("Is tee thread-safe?", Mode.RAG, text, evidence=quote), row)
    assert (scored["fact_recall"], scored["fact_recall_text"], scored["evidence_recall"]) == (0.0, 1.0, 1.0)
    assert scored["combined"] == (0.0 + scored["format"]) / 2
    assert score_answer(Answer("q", Mode.RAG, text), row)["evidence_recall"] is None


def test_eval_rows_are_selected_by_kind_split_and_limit() -> None:
    from app.evaluation.retrieval import select_rows
    from domain.errors import ConfigError

    rows = [
        {"id": "a", "kind": "fact", "split": "tune"},
        {"id": "b", "kind": "fact", "split": "heldout"},
        {"id": "c", "kind": "format", "split": "heldout"},
        {"id": "d", "kind": "fact"},  # no split: counts as tune
    ]

    def pick(**kw: object) -> list[str]:
        return [r["id"] for r in select_rows(rows, **{"kinds": None, "split": None, "limit": None, **kw})]

    assert pick(split="heldout") == ["b", "c"]
    assert pick(split="tune", kinds="fact") == ["a", "d"]
    assert pick(kinds="fact", limit=2) == ["a", "b"]
    with pytest.raises(ConfigError, match="--split"):
        select_rows(rows, kinds="multi_hop", split=None, limit=None)


def test_the_bundled_eval_set_is_split_in_halves_per_kind() -> None:
    from collections import Counter
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "corpus" / "eval.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    counts = Counter((r["kind"], r["split"]) for r in rows)
    for kind in {r["kind"] for r in rows}:
        assert abs(counts[(kind, "tune")] - counts[(kind, "heldout")]) <= 2
