"""``stop_at_echo``: an answer that goes on to paste the prompt's scaffolding (passage headers,
labels, the instruction) ends before it, wherever the generator's pieces happen to split."""

from __future__ import annotations

import pytest

from domain.answer_stream import stop_at_echo
from domain.prompts import build_prompt
from domain.types import Mode
from tests.fakes_answer import make_chunk, make_hit

# Shapes taken from RAG answers of the sample-corpus evaluation (shortened).
PASTED = [
    (
        "Conclusion: The LT-200 weighs 118 g.\nBasis: [support/faq-en.md]\nNote: See the manual.\n"
        "Question: How many days does the LT-200 wait?",
        "Conclusion: The LT-200 weighs 118 g.\nBasis: [support/faq-en.md]\nNote: See the manual.",
    ),
    (
        "Conclusion: Fit the new cell within 5 minutes.\nBasis: [a.pdf]\nNote: Keep the seal dry.\n\n"
        "[3] finance/corporate-card.md | 公司商务卡使用规定 > 3. 使用规定\n## 3.",
        "Conclusion: Fit the new cell within 5 minutes.\nBasis: [a.pdf]\nNote: Keep the seal dry.",
    ),
    (
        "结论：电话是 +65 6817 2290。\n依据：【support/lighthouse-desk-guide.txt】\n提示：新加坡：+65 6817 2290；\n\n"
        "[4] products/tidecloud-overview.md | TideCloud Platform Overview\n# TideCloud",
        "结论：电话是 +65 6817 2290。\n依据：【support/lighthouse-desk-guide.txt】\n提示：新加坡：+65 6817 2290；",
    ),
    (
        "结论：3 天。\n依据：【a.md】\n提示：无。\n问题：下一个问题？",
        "结论：3 天。\n依据：【a.md】\n提示：无。",
    ),
    (
        "Conclusion: 3 days.\nBasis: [a.md]\nNote: Ask.\nPassages:\n[1] a.md\ntext",
        "Conclusion: 3 days.\nBasis: [a.md]\nNote: Ask.",
    ),
    (
        "Conclusion: 3 days.\nBasis: [a.md]\nNote: Ask.\nAnswer from the passages below. Name the file",
        "Conclusion: 3 days.\nBasis: [a.md]\nNote: Ask.",
    ),
    # an answer that starts with the echo keeps its first line, so it is never cut to nothing
    (
        "Answer from the passages below.\nPassages:\n[1] it/return-cases.md | Return",
        "Answer from the passages below.",
    ),
]
KEPT = [
    "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Unused days expire in March.",
    "Conclusion: 15 days.\nBasis: [a.md] and [b.md]\nNote: Question time is over.\nMore text [1] here.",
    "Conclusion: see [1] above.\n\nBasis: [a.md]\nNote: [x",  # ends inside a short line
    "结论：15 天。\n依据：【hr/annual-leave.md】\n提示：问题请问人事服务台。",
    "",
]


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 10_000])
@pytest.mark.parametrize(("text", "kept"), PASTED)
def test_pasted_scaffolding_is_cut_whatever_the_piece_size(text: str, kept: str, size: int) -> None:
    assert "".join(stop_at_echo(pieces_of(text, size))).strip() == kept


@pytest.mark.parametrize("size", [1, 2, 5, 10_000])
@pytest.mark.parametrize("text", KEPT)
def test_answers_without_pasted_scaffolding_pass_unchanged(text: str, size: int) -> None:
    assert "".join(stop_at_echo(pieces_of(text, size))) == text


def test_the_source_is_closed_at_the_cut_and_nothing_after_it_is_asked_for() -> None:
    produced: list[str] = []
    closed: list[bool] = []

    def source():  # type: ignore[no-untyped-def]
        try:
            for piece in ["Conclusion: 3 days.\n", "Basis: [a.md]\n", "[2] b.md | B\n", "more\n", "more\n"]:
                produced.append(piece)
                yield piece
        finally:
            closed.append(True)

    assert "".join(stop_at_echo(source())) == "Conclusion: 3 days.\nBasis: [a.md]\n"
    assert closed == [True] and len(produced) == 3


def test_a_held_line_start_is_released_before_the_line_ends() -> None:
    """A long later line streams once 24 characters show it is not scaffolding."""
    seen = []
    for piece in stop_at_echo(pieces_of("Conclusion: 3.\nNote: " + "x" * 60, 1)):
        seen.append(piece)
        if len("".join(seen)) >= len("Conclusion: 3.\nNote: ") + 20:
            break
    assert "".join(seen).startswith("Conclusion: 3.\nNote: xxx")


@pytest.mark.parametrize(
    "question", ["How many days of annual leave do I get?", "年假有多少天？"], ids=["en", "zh"]
)
def test_every_scaffolding_line_of_a_real_rag_prompt_is_recognised(question: str) -> None:
    """``ECHO_LINE_RE`` types the prompt's wording again; this ties it to ``domain.prompts`` so a
    reworded instruction or label cannot leave the cut behind. Each scaffolding line of the
    built user message (instruction, labels, passage headers, question), pasted after a first
    answer line, ends the answer there."""
    hits = [
        make_hit(make_chunk("a", "hr/annual-leave.md", "Annual leave is 15 days.", heading="Leave"), 1),
        make_hit(make_chunk("b", "hr/sick-leave.md", "Sick leave needs a note."), 2),
    ]
    user = build_prompt(Mode.RAG, question, hits).messages[-1]["content"]
    passage_text = {h.chunk.text for h in hits}
    scaffolding = [ln for ln in user.split("\n") if ln.strip() and ln not in passage_text]
    assert len(scaffolding) == 5  # instruction, passages label, two headers, question
    for line in scaffolding:
        assert (
            "".join(stop_at_echo(["Conclusion: 15 days.\n", line + "\n", "more"])) == "Conclusion: 15 days.\n"
        )
