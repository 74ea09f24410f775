"""Golden values of the answer metrics (the docstrings work the same examples by hand)."""

from __future__ import annotations

import pytest

from domain.metrics import (
    citation_precision,
    fact_recall,
    lcs_length,
    normalize_fact_text,
    rouge_l,
    rouge_tokens,
)


def test_normalize_fact_text_width_case_punctuation() -> None:
    assert normalize_fact_text("ＬＴ－３５０ costs ¥340, Ltd.") == "lt350costs¥340ltd"
    assert normalize_fact_text("￥180，（夜班）") == "¥180夜班"
    assert normalize_fact_text("±0.3 °C") == "±03°c"


@pytest.mark.parametrize(
    ("answer", "facts", "expected"),
    [
        ("全年超过15天须面谈。", ["15 天", "人事服务台"], 0.5),
        ("全年超过 15 天须与人事服务台面谈", ["15 天", "人事服务台"], 1.0),
        ("Call 400-826-5170.", ["400 826 5170"], 1.0),
        ("The cap is ￥６８０.", ["¥680"], 1.0),
        ("THE ISO NUMBER IS LTQ-2023-0458", ["LTQ-2023-0458", "ISO 9001"], 0.5),
        ("anything", [], 1.0),
        ("anything", ["", "  "], 1.0),
        ("", ["北京"], 0.0),
    ],
)
def test_fact_recall(answer, facts, expected) -> None:
    assert fact_recall(answer, facts) == expected


def test_rouge_tokens_characters_for_chinese_words_for_english() -> None:
    assert rouge_tokens("年假 15 天, Annual leave!") == ["年", "假", "15", "天", "annual", "leave"]
    assert rouge_tokens("ＡＢＣ，ｄｅｆ") == ["abc", "def"]


def test_lcs_length() -> None:
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_english_worked_example() -> None:
    # LCS 4 of 6 candidate and 5 reference words: P=2/3, R=4/5, F=16/22
    assert rouge_l("the cap is 680 per night", "the nightly cap is 680") == pytest.approx(16 / 22)


def test_rouge_l_chinese_worked_example() -> None:
    # LCS 年假十天 = 4 of 4 and 6 characters: P=1, R=2/3, F=0.8
    assert rouge_l("年假十天", "年假为十五天") == pytest.approx(0.8)


def test_rouge_l_edges() -> None:
    assert rouge_l("same words here", "Same words, here.") == 1.0
    assert rouge_l("", "reference") == 0.0
    assert rouge_l("nothing shared", "完全不同") == 0.0


def test_citation_precision() -> None:
    assert citation_precision(["a.md", "a.md", "b.md"], ["a.md"]) == pytest.approx(2 / 3)
    assert citation_precision(["./hr\\x.md"], ["hr/x.md"]) == 1.0
    assert citation_precision(["a.md"], []) == 0.0
    assert citation_precision([], ["a.md"]) is None
