"""The source line (the style's label that names the file: "Basis:", "Source:", …) when the model
writes it: in the retrieval modes that is only when its answer is cited to no passage
(``domain.answer_format`` writes the line itself otherwise).

A small base model often names a file there that it was never given: a folder from the worked
example glued to a real path ("[it/products/manual.md]") or the example's own file
("[it/printers.md]"). A named path that is a shown passage's path behind extra leading folders, or
that has the basename of exactly one shown passage, is repaired to that path; a name that matches
no shown passage is left as written and the answer carries a warning. In the modes that read no
passages (prompt-only, tuned) the same check runs against the collection's indexed files: a file
the model names from memory that the collection does not hold is reported, never shown as a source
without a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from domain.style import NEUTRAL, SOURCE_RE, StyleProfile
from domain.types import Hit


def named_files(line: str) -> list[str]:
    """Paths named in ``line`` as [path] or 【path】, in order.

    >>> named_files("Basis: [hr/leave.md] and [it/printers.md], section Carry-over")
    ['hr/leave.md', 'it/printers.md']
    """
    return [a or b for a, b in SOURCE_RE.findall(line)]


def repair_path(name: str, known: Sequence[str]) -> str | None:
    """The shown passage path ``name`` stands for, or None.

    >>> repair_path("it/products/manual.md", ["products/manual.md", "hr/leave.md"])
    'products/manual.md'
    >>> repair_path("leave.md", ["hr/leave.md"])
    'hr/leave.md'
    >>> repair_path("it/printers.md", ["hr/leave.md"]) is None
    True
    """
    if name in known:
        return name
    behind = [k for k in known if name.endswith("/" + k)]
    if behind:
        return max(behind, key=len)
    base = PurePosixPath(name).name
    same_base = sorted({k for k in known if PurePosixPath(k).name == base})
    return same_base[0] if len(same_base) == 1 else None


def check_basis(
    line: str, passages: Sequence[Hit], *, style: StyleProfile = NEUTRAL, files: Sequence[str] = ()
) -> tuple[str, str | None]:
    """(the source ``line`` with its names repaired to shown paths, a warning or None). Without
    ``passages`` the names are checked against the collection's ``files`` (none given: no check).

    >>> from domain.types import Chunk
    >>> shown = [Hit(Chunk("c", "products/manual.md", "", "", "x", 0, 1), 0.5, 1)]
    >>> check_basis("Source: [it/products/manual.md]", shown)
    ('Source: [products/manual.md]', None)
    >>> check_basis("Source: [it/printers.md]", shown)[1]
    'the source line names a file that was not among the passages (it/printers.md)'
    >>> check_basis("Source: [leave-policy.pdf]", [], files=["hr/leave.md"])[1]
    'the source line names a file this collection does not hold (leave-policy.pdf); this mode read no documents'
    >>> check_basis("Source: [leave.md]", [], files=["hr/leave.md"])
    ('Source: [hr/leave.md]', None)
    """
    stripped = line.strip()
    names = named_files(stripped)
    if not any(stripped.startswith(label) for label in style.source_labels()) or not names:
        return stripped, None
    known = list(dict.fromkeys(h.chunk.path for h in passages)) if passages else list(files)
    if not known:
        return stripped, None
    repaired = [repair_path(n, known) for n in names]
    for name, path in zip(names, repaired, strict=True):
        if path is not None and path != name:
            stripped = stripped.replace(f"[{name}]", f"[{path}]").replace(f"【{name}】", f"【{path}】")
    unknown = ", ".join(n for n, r in zip(names, repaired, strict=True) if r is None)
    if not unknown:
        return stripped, None
    if passages:
        return stripped, f"the source line names a file that was not among the passages ({unknown})"
    return (
        stripped,
        f"the source line names a file this collection does not hold ({unknown}); this mode read no documents",
    )
