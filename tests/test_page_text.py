"""The pages' text helpers: Markdown escaping that keeps document and model text literal, span
marking in plain text, the matched-sentence finder, and the number formats."""

from __future__ import annotations

from app.views.text import (
    best_sentence,
    duration,
    escaped_stream,
    locate_span,
    mark_span,
    md_escape,
    parity,
    seconds,
    size,
    where,
)


def test_md_escape_neutralises_markup_and_keeps_line_breaks():
    assert md_escape("**b** <i>x</i> ![p](http://h/p.png) $x$ :red[t]") == (
        r"\*\*b\*\* \<i\>x\</i\> \!\[p\]\(http\://h/p\.png\) \$x\$ \:red\[t\]"
    )
    assert md_escape("Conclusion: a\nBasis: [a.md]\r\nNote: -") == (
        "Conclusion\\: a  \nBasis\\: \\[a\\.md\\]  \nNote\\: \\-"
    )
    assert md_escape("年假十五天") == "年假十五天"


def test_escaped_stream_equals_escaping_the_whole_text():
    pieces = ["**Con", "clusion:** ", "", "[a.md]\n", "<b>"]
    assert "".join(escaped_stream(pieces)) == md_escape("".join(pieces))


def test_mark_span_exact_and_across_whitespace_differences():
    text = "Annual leave is 15 days.\nUnused days   expire in March."
    assert mark_span(text, "15 days") == ("Annual leave is ⟦15 days⟧.\nUnused days   expire in March.", True)
    assert locate_span(text, "Unused days expire") == (25, 45)
    assert mark_span(text, "not there") == (text, False)
    assert mark_span(text, None) == (text, False)


def test_best_sentence_keeps_version_numbers_and_splits_chinese():
    text = "LT-200 firmware uses the 2.x line. Stable is 2.7.1. 年假十五天。病假需要证明。"
    assert best_sentence(text, "LT-200 firmware") == "LT-200 firmware uses the 2.x line."
    assert best_sentence(text, "病假") == "病假需要证明。"
    assert best_sentence(text, "zz") == ""


def test_number_formats():
    assert [seconds(None), seconds(0.1234), seconds(12.34)] == ["–", "123 ms", "12.3 s"]
    assert [duration(None), duration(42), duration(185), duration(3725)] == ["–", "42s", "3m05s", "1h02m"]
    assert [size(None), size(64), size(2048), size(675_710_784)] == ["–", "64 B", "2.0 KB", "644.4 MB"]
    assert where("a.pdf", "Intro", 3) == "a.pdf p.3 § Intro"


def test_parity_names_the_mode_the_golden_prompts_were_asked_in():
    assert parity({"n": 5, "identical": 4, "mode": "tuned_rag"}) == "4/5 identical (tuned_rag)"
    assert parity({"n": 5, "identical": 2}) == "2/5 identical (tuned)"  # reports before the mode was kept
