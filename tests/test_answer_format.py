"""The one owner of an answer's lines (domain.answer_format): labels written in the style's order,
the model's line cut at its first line break and its generation stopped there, the source line
written from the citations in the retrieval modes, and a reply without prefills split by label."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from domain.answer_format import LineWriter
from domain.style import NEUTRAL
from tests.fakes_answer import ScriptedLines, make_chunk, make_hit
from tests.styles import SAMPLE_STYLE

LEAVE = make_hit(make_chunk("leave-1", "hr/annual-leave.md", "Annual leave is 15 working days per year."), 1)


def _write(writer: LineWriter, gen: object, prefill: str = "") -> tuple[list[str], str]:
    pieces = list(
        writer.write(
            gen, [{"role": "user", "content": "q"}], adapter=False, max_new_tokens=200, prefill=prefill
        )
    )  # type: ignore[arg-type]
    return pieces, "".join(pieces)


def test_the_model_writes_one_line_per_label_and_is_stopped_at_its_line_break() -> None:
    gen = ScriptedLines(
        {
            "Conclusion:": " 15 days.\n\n[2] hr/other.md | pasted\nmore",
            "Basis:": " [hr/annual-leave.md]\nNote: extra",
            "Note:": "   Ask HR first.\nConclusion: again",
        },
        size=4,
    )
    _, text = _write(LineWriter(SAMPLE_STYLE, "en"), gen)
    assert text == "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Ask HR first."
    assert gen.prefills == [
        "Conclusion:",
        "Conclusion: 15 days.\nBasis:",
        "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote:",
    ]
    assert gen.taken[0] == 3  # " 15 " "days" ".\n\n[" — nothing after the line break was asked for


def test_in_a_retrieval_mode_the_source_line_names_the_cited_files_and_the_model_does_not_write_it() -> None:
    gen = ScriptedLines(
        {"Conclusion:": " 15 days.\n", "Note:": " Ask HR.\n", "Basis:": " [it/printers.md]\n"}
    )
    seen: list[str] = []

    def source(text: str) -> list[str]:
        seen.append(text)
        return ["hr/annual-leave.md"]

    writer = LineWriter(SAMPLE_STYLE, "en", passages=[LEAVE], source=source)
    _, text = _write(writer, gen, prefill="Evidence: Annual leave is 15 working days per year.\n")
    assert text == "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Ask HR."
    assert seen == ["Conclusion: 15 days.\n"]
    assert [p.rsplit("\n", 1)[-1] for p in gen.prefills] == ["Conclusion:", "Note:"]
    assert all(p.startswith("Evidence: Annual leave") for p in gen.prefills)


def test_with_nothing_cited_the_model_names_the_source_and_its_names_are_checked() -> None:
    gen = ScriptedLines(
        {
            "Conclusion:": " Ask the desk.\n",
            "Basis:": " [it/hr/annual-leave.md] and [x.md]\n",
            "Note:": " n.\n",
        }
    )
    writer = LineWriter(SAMPLE_STYLE, "en", passages=[LEAVE], source=lambda _text: [])
    _, text = _write(writer, gen)
    assert text.splitlines()[1] == "Basis: [hr/annual-leave.md] and [x.md]"
    assert writer.warnings == ["the source line names a file that was not among the passages (x.md)"]


def test_without_passages_a_named_source_is_checked_against_the_collections_files() -> None:
    made_up = {
        "Conclusion:": " 14 days.\n",
        "Basis:": " [engineering/annual-leave-policy.pdf]\n",
        "Note:": " n.\n",
    }
    files = ["hr/annual-leave.md", "it/printers.md"]
    writer = LineWriter(SAMPLE_STYLE, "en", files=files)
    _, text = _write(writer, ScriptedLines(made_up))
    assert text.splitlines()[1] == "Basis: [engineering/annual-leave-policy.pdf]"
    assert writer.warnings == [
        "the source line names a file this collection does not hold "
        "(engineering/annual-leave-policy.pdf); this mode read no documents"
    ]
    real = dict(made_up, **{"Basis:": " [annual-leave.md]\n"})
    writer = LineWriter(SAMPLE_STYLE, "en", files=files)
    _, text = _write(writer, ScriptedLines(real))
    assert text.splitlines()[1] == "Basis: [hr/annual-leave.md]" and writer.warnings == []
    writer = LineWriter(SAMPLE_STYLE, "en")  # no file list (no index): nothing to check against
    _write(writer, ScriptedLines(made_up))
    assert writer.warnings == []


def test_a_label_is_held_until_its_first_piece_and_chinese_labels_take_no_space() -> None:
    gen = ScriptedLines({"答案：": "\n  十五天。\n", "来源：": "【hr/annual-leave.md】"}, size=1)
    pieces, text = _write(LineWriter(NEUTRAL, "zh"), gen)
    assert text == "答案：十五天。\n来源：【hr/annual-leave.md】"
    assert pieces[0] == "答案：十"  # the label comes with the model's first character, not alone


def test_an_empty_line_keeps_its_label_and_the_token_budget_spans_the_lines() -> None:
    gen = ScriptedLines({"Answer:": "", "Source:": " [a.md]"})
    _, text = _write(LineWriter(NEUTRAL, "en"), gen)
    assert text == "Answer:\nSource: [a.md]"

    long = ScriptedLines({"Answer:": "x" * 30, "Source:": " [a.md]"}, size=1)
    out = "".join(LineWriter(NEUTRAL, "en").write(long, [], adapter=False, max_new_tokens=30))  # type: ignore[arg-type]
    assert out == "Answer: " + "x" * 30 + "\n"  # the budget was spent on the first line


class _WholeReply:
    """A generator that cannot continue a prefill: one reply, written from its start."""

    continues_prefill = False

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, 0

    def generate(self, _messages: Sequence[dict[str, str]], **_kw: object) -> Iterator[str]:
        self.calls += 1
        yield self.reply


def test_a_whole_reply_is_split_into_the_labels_lines() -> None:
    gen = _WholeReply("Conclusion: 15 days.\n\nBasis: [it/x.md]\nNote: Ask HR.\n[2] hr/pasted.md | more")
    writer = LineWriter(SAMPLE_STYLE, "en", passages=[LEAVE], source=lambda _t: ["hr/annual-leave.md"])
    _, text = _write(writer, gen)
    assert text == "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Ask HR."
    assert gen.calls == 1
    _, bare = _write(LineWriter(NEUTRAL, "en"), _WholeReply("15 days."))
    assert bare == "Answer: 15 days.\nSource:"
