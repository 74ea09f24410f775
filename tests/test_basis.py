"""The Basis line checked against the shown passages while the answer streams (domain.basis), and
in the answer pipeline."""

from __future__ import annotations

from functools import partial

from domain import basis
from domain.types import Mode
from tests.fakes_answer import FakeGenerator, make_chunk, make_hit
from tests.styles import SAMPLE_STYLE
from tests.test_pipeline import Q, make

# These answers are written in the sample collection's three-line style.
BasisCheck = partial(basis.BasisCheck, style=SAMPLE_STYLE)
check_basis = partial(basis.check_basis, style=SAMPLE_STYLE)

LEAVE = make_hit(
    make_chunk(
        "leave-1", "hr/annual-leave.md", "Annual leave is 15 working days per year. Unused days expire."
    ),
    1,
)
SICK = make_hit(make_chunk("sick-1", "hr/sick-leave.md", "Sick leave needs a doctor's note after 3 days."), 2)
PASSAGES = [LEAVE, SICK]
CONCLUSION = "Conclusion: Annual leave is 15 working days per year.\n"


def run(answer: str, pieces: list[str] | None = None, passages=PASSAGES) -> tuple[str, list[str]]:
    check = BasisCheck(passages)
    out = "".join(check.filter(pieces if pieces is not None else [answer]))
    return out, check.warnings


def test_a_leaked_folder_prefix_and_a_bare_basename_are_repaired_in_place() -> None:
    assert check_basis("Basis: [it/hr/annual-leave.md], section Carry-over", "", PASSAGES) == (
        "Basis: [hr/annual-leave.md], section Carry-over",
        None,
    )
    assert check_basis("依据：【sick-leave.md】", "", PASSAGES) == ("依据：【hr/sick-leave.md】", None)


def test_a_file_that_was_not_shown_becomes_the_files_the_conclusion_is_cited_to() -> None:
    line, warning = check_basis("Basis: [it/printers.md]", CONCLUSION, PASSAGES)
    assert (line, warning) == ("Basis: [hr/annual-leave.md]", None)
    zh_line, _ = check_basis("依据：【it/printers.md】和【hr/sick-leave.md】", CONCLUSION, PASSAGES)
    assert zh_line == "依据：【hr/annual-leave.md】"


def test_without_a_cited_conclusion_the_line_stays_and_a_warning_says_why() -> None:
    line, warning = check_basis("Basis: [it/printers.md]", "Conclusion: Ask the desk.\n", PASSAGES)
    assert line == "Basis: [it/printers.md]"
    assert warning == "the Basis line names a file that was not among the passages (it/printers.md)"


def test_a_shown_file_the_conclusion_is_not_cited_to_becomes_the_cited_file() -> None:
    assert check_basis("Basis: [hr/sick-leave.md]", CONCLUSION, PASSAGES) == (
        "Basis: [hr/annual-leave.md]",
        None,
    )
    both = "Basis: [hr/sick-leave.md] and [hr/annual-leave.md]"
    assert check_basis(both, CONCLUSION, PASSAGES) == (both, None)  # one of them is cited: it stands


def test_lines_without_files_and_shown_files_of_an_uncited_conclusion_are_left_alone() -> None:
    uncited = "Conclusion: Ask the desk.\n"
    for line, before in (
        ("Basis: [hr/sick-leave.md]", uncited),
        ("Basis: not covered by the Lanting documents.", CONCLUSION),
        ("Note: [x.md]", CONCLUSION),
    ):
        assert check_basis(line, before, PASSAGES) == (line, None)


def test_streamed_in_any_split_the_text_is_the_same_as_checked_whole() -> None:
    answer = CONCLUSION + "  Basis: [it/printers.md]\nNote: Basis: [it/x.md] stays.\nBasis: [it/y.md]"
    whole, warnings = run(answer)
    assert (
        whole == CONCLUSION + "  Basis: [hr/annual-leave.md]\nNote: Basis: [it/x.md] stays.\nBasis: [it/y.md]"
    )
    assert warnings == []
    for size in (1, 2, 3, 5, 8, 13):
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
        assert run(answer, pieces) == (whole, [])


def test_a_basis_line_that_ends_the_stream_is_checked_too_and_nothing_is_held_back() -> None:
    assert run(CONCLUSION + "Basis: [it/hr/annual-leave.md]")[0] == CONCLUSION + "Basis: [hr/annual-leave.md]"
    assert run("Conclusion: Basi")[0] == "Conclusion: Basi"
    assert run("Basis")[0] == "Basis"
    assert run("")[0] == ""


def test_without_passages_everything_passes_unchanged() -> None:
    answer = CONCLUSION + "Basis: [it/printers.md]\nNote: n."
    assert run(answer, passages=[]) == (answer, [])


class _LeakyGenerator(FakeGenerator):
    """Answers with a Basis line naming the worked example's file, one character per piece."""

    def generate(self, messages, **kw):  # type: ignore[no-untyped-def]
        self.calls.append({"messages": [dict(m) for m in messages], **kw})
        yield from CONCLUSION + "Basis: [it/printers.md]\nNote: Unused days expire."


def test_the_pipeline_streams_and_stores_the_checked_line() -> None:
    a = make(adapter=False, generator=_LeakyGenerator(adapter_loaded=False))
    stream = a.stream(Q, Mode.RAG)
    streamed = "".join(stream.pieces)
    answer = stream.answer()
    assert streamed == answer.text
    assert answer.text.splitlines()[1] == "Basis: [hr/annual-leave.md]"
    assert answer.warnings == []
    prompt_only = make(adapter=False, generator=_LeakyGenerator(adapter_loaded=False)).answer(Q, Mode.PROMPT)
    assert "Basis: [it/printers.md]" in prompt_only.text  # no passages shown: nothing to check against


def test_the_generator_is_handed_the_same_check_for_its_own_context() -> None:
    gen = _LeakyGenerator(adapter_loaded=False)
    make(adapter=False, generator=gen).answer(Q, Mode.RAG)
    check = gen.calls[0]["line_check"]
    assert check(CONCLUSION) is None  # not the Basis line
    assert check(CONCLUSION + "Basis: [it/printers.md]\n") == CONCLUSION + "Basis: [hr/annual-leave.md]\n"
    assert check(CONCLUSION + "Basis: [it/printers.md]\nNote: n.\n") is None  # only when it just ended
    assert check(CONCLUSION + "Basis: [hr/annual-leave.md]\n") is None  # already right
    prompt_gen = _LeakyGenerator(adapter_loaded=False)
    make(adapter=False, generator=prompt_gen).answer(Q, Mode.PROMPT)
    assert prompt_gen.calls[0]["line_check"](CONCLUSION + "Basis: [it/printers.md]\n") is None
