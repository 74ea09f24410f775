"""The source line when the model writes it (domain.basis): names repaired to shown paths, a name
that matches no shown passage reported."""

from __future__ import annotations

from functools import partial

from domain import basis
from tests.fakes_answer import make_chunk, make_hit
from tests.styles import SAMPLE_STYLE

check_basis = partial(basis.check_basis, style=SAMPLE_STYLE)

LEAVE = make_hit(
    make_chunk(
        "leave-1", "hr/annual-leave.md", "Annual leave is 15 working days per year. Unused days expire."
    ),
    1,
)
SICK = make_hit(make_chunk("sick-1", "hr/sick-leave.md", "Sick leave needs a doctor's note after 3 days."), 2)
PASSAGES = [LEAVE, SICK]


def test_a_leaked_folder_prefix_and_a_bare_basename_are_repaired_in_place() -> None:
    assert check_basis("Basis: [it/hr/annual-leave.md], section Carry-over", PASSAGES) == (
        "Basis: [hr/annual-leave.md], section Carry-over",
        None,
    )
    assert check_basis("依据：【sick-leave.md】", PASSAGES) == ("依据：【hr/sick-leave.md】", None)


def test_a_file_that_was_not_shown_stays_and_a_warning_names_it() -> None:
    line, warning = check_basis("Basis: [it/printers.md] and [annual-leave.md]", PASSAGES)
    assert line == "Basis: [it/printers.md] and [hr/annual-leave.md]"
    assert warning == "the source line names a file that was not among the passages (it/printers.md)"


def test_lines_without_files_and_lines_that_are_not_the_source_line_are_left_alone() -> None:
    for line in ("Basis: not covered by the documents.", "Note: [x.md]", "Basis: [hr/sick-leave.md]"):
        assert check_basis(line, PASSAGES) == (line, None)
