"""Worked examples for domain.retrieval_metrics."""

from __future__ import annotations

import pytest

from domain.retrieval_metrics import (
    RetrievalOutcome,
    first_relevant_rank,
    recall_at_k,
    reciprocal_rank,
    source_coverage,
    summarize,
    summarize_by,
)

RANKED = ("a.md", "b.md", "a.md", "c.md", "d.md", "e.md")


def test_first_relevant_rank_is_one_based_and_cut_at_k() -> None:
    assert first_relevant_rank(RANKED, {"c.md"}, 5) == 4
    assert first_relevant_rank(RANKED, {"e.md"}, 5) is None  # rank 6 is outside the top 5
    assert first_relevant_rank(RANKED, {"e.md"}, 6) == 6
    assert first_relevant_rank((), {"a.md"}, 5) is None


def test_recall_counts_any_relevant_source() -> None:
    assert recall_at_k(RANKED, {"z.md", "b.md"}, 5) == 1.0
    assert recall_at_k(RANKED, {"z.md"}, 5) == 0.0


def test_reciprocal_rank_worked_example() -> None:
    # First relevant passage at rank 4 -> 1/4; none in the top 3 -> 0.
    assert reciprocal_rank(RANKED, {"c.md"}, 5) == 0.25
    assert reciprocal_rank(RANKED, {"c.md"}, 3) == 0.0
    assert reciprocal_rank(RANKED, {"d.md", "b.md"}, 5) == 0.5


def test_source_coverage_counts_distinct_sources() -> None:
    # a.md appears twice but counts once; 2 of the 3 listed sources are in the top 5.
    assert source_coverage(RANKED, ["a.md", "c.md", "z.md"], 5) == pytest.approx(2 / 3)
    assert source_coverage(RANKED, [], 5) == 0.0


def _o(
    row_id: str, kind: str, lang: str, ranked: tuple[str, ...], relevant: tuple[str, ...]
) -> RetrievalOutcome:
    return RetrievalOutcome(row_id, kind, lang, ranked, relevant)


OUTCOMES = [
    _o("1", "fact", "en", ("x", "a"), ("a",)),  # hit at rank 2: recall 1, RR 0.5
    _o("2", "fact", "zh", ("b", "x"), ("b",)),  # rank 1: recall 1, RR 1
    _o("3", "multi_hop", "en", ("x", "y", "c"), ("c", "d")),  # rank 3: RR 1/3; share 1/2
    _o("4", "cross_lingual", "zh", ("x", "y"), ("e",)),  # miss
]


def test_summarize_worked_example() -> None:
    # recall = 3/4; MRR = (0.5 + 1 + 1/3 + 0) / 4 = 11/24; one multi-hop row with share 1/2.
    s = summarize(OUTCOMES, 5)
    assert s == {"n": 4, "recall@5": 0.75, "mrr": pytest.approx(11 / 24), "source_share@5": 0.5}


def test_summarize_by_groups_in_sorted_order() -> None:
    by_lang = summarize_by(OUTCOMES, lambda o: o.lang, 5)
    assert list(by_lang) == ["en", "zh"]
    assert by_lang["en"] == {
        "n": 2,
        "recall@5": 1.0,
        "mrr": pytest.approx((0.5 + 1 / 3) / 2),
        "source_share@5": 0.5,
    }
    assert by_lang["zh"] == {"n": 2, "recall@5": 0.5, "mrr": 0.5}


def test_summarize_empty() -> None:
    assert summarize([], 5) == {"n": 0, "recall@5": 0.0, "mrr": 0.0}
