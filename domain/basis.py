"""The source line (the style's label that names the file: "Basis:", "Source:", …) checked
against the passages the model was shown, while the answer streams.

A small base model often names a file in that line that it was never given: a folder from the
worked example glued to a real path ("[it/products/manual.md]") or the example's own file
("[it/printers.md]"). The model's tags are not trusted for citations (``domain.citations``), and the
line a user reads should not name a file that does not back the answer either. So, in the
retrieval modes:

- a named path that is a shown passage's path behind extra leading folders, or that has the
  basename of exactly one shown passage, is repaired to that path;
- when the answer above the line is cited to passages (``attach_citations``) and the line names
  none of their files, or names a file that matches no shown passage, the line is rewritten in the
  style's form to name the cited files;
- when the answer cites nothing, a line naming only shown files stands (repaired); one naming a
  file that was not shown is left as written and the answer carries a warning.

Only the first source line is checked, and it is held back until it ends (a few tokens) so the
streamed text and the stored answer are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath

from domain.answer_stream import close_source
from domain.citations import DEFAULT_THRESHOLD, attach_citations
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


def basis_line(lang: str, paths: Sequence[str], style: StyleProfile = NEUTRAL) -> str:
    """The style's source line naming ``paths``.

    >>> basis_line("en", ["a.md", "b.md"])
    'Source: [a.md] and [b.md]'
    >>> basis_line("zh", ["a.md", "b.md"])
    '来源：【a.md】、【b.md】'
    """
    return style.source_text(lang, paths)


def check_basis(
    line: str,
    before: str,
    passages: Sequence[Hit],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    style: StyleProfile = NEUTRAL,
) -> tuple[str, str | None]:
    """(the source ``line`` checked against ``passages``, a warning or None); ``before`` is the
    answer text above the line (the answer line), used to find the files it is cited to."""
    stripped = line.strip()
    lang = next((lg for label, lg in style.source_labels().items() if stripped.startswith(label)), None)
    names = named_files(stripped)
    if lang is None or not names:
        return stripped, None
    known = list(dict.fromkeys(h.chunk.path for h in passages))
    repaired = [repair_path(n, known) for n in names]
    cited = list(dict.fromkeys(c.path for c in attach_citations(before, passages, threshold=threshold)))
    shown = all(r is not None for r in repaired)
    if shown and (not cited or any(r in cited for r in repaired)):
        fixed = stripped
        for name, path in zip(names, repaired, strict=True):
            if path != name:
                fixed = fixed.replace(f"[{name}]", f"[{path}]").replace(f"【{name}】", f"【{path}】")
        return fixed, None
    if cited:
        return basis_line(lang, cited, style), None
    unknown = ", ".join(n for n, r in zip(names, repaired, strict=True) if r is None)
    return stripped, f"the Basis line names a file that was not among the passages ({unknown})"


class BasisCheck:
    """Stream filter: pieces pass through unchanged except the first Basis line, which comes out
    checked (``check_basis``) once it ends. ``warnings`` holds what the check found.

    ``context`` is the same check for the generator's own context (the port's ``line_check``):
    the model then writes its Note after the checked line, not after the one it wrote itself.
    """

    def __init__(
        self, passages: Sequence[Hit], *, threshold: float = DEFAULT_THRESHOLD, style: StyleProfile = NEUTRAL
    ) -> None:
        self.passages = list(passages)
        self.threshold = threshold
        self.style = style
        self.warnings: list[str] = []
        self._labels = tuple(style.source_labels())
        self._results: dict[tuple[str, str], tuple[str, str | None]] = {}

    def context(self, text: str) -> str | None:
        """``text`` (the answer so far, ending with a line break) with its first Basis line checked,
        when that line is the one that just ended and the check changes it; otherwise None."""
        if not self.passages or not text.endswith("\n"):
            return None
        lines = text[:-1].split("\n")
        first = next((i for i, ln in enumerate(lines) if self._is_basis(ln)), None)
        if first != len(lines) - 1:
            return None
        before = "".join(ln + "\n" for ln in lines[:-1])
        checked = self._line(lines[-1], before)[0]
        return None if checked == lines[-1] else before + checked + "\n"

    def _may_be_basis(self, start: str) -> bool:
        s = start.lstrip()
        return any(label.startswith(s) or s.startswith(label) for label in self._labels)

    def filter(self, pieces: Iterable[str]) -> Iterator[str]:
        """``pieces`` with the first Basis line checked; closing this closes ``pieces`` too."""
        source = iter(pieces)
        try:
            yield from self._filter(source)
        finally:
            close_source(source)

    def _filter(self, pieces: Iterator[str]) -> Iterator[str]:
        done = not self.passages
        before: list[str] = []  # emitted text
        line = ""  # the current line, held while it may be the Basis line
        holding = not done
        for piece in pieces:
            if done:
                yield piece
                continue
            out: list[str] = []
            for ch in piece:
                if done:
                    out.append(ch)
                elif holding:
                    line += ch
                    if ch == "\n" or not self._may_be_basis(line):
                        if ch == "\n" and self._is_basis(line):
                            out.append(self._checked(line[:-1], "".join(before) + "".join(out)) + "\n")
                            done = True
                        else:
                            out.append(line)
                            holding = ch == "\n"
                        line = ""
                else:
                    out.append(ch)
                    holding = ch == "\n"
            text = "".join(out)
            before.append(text)
            if text:
                yield text
        if line:
            yield self._checked(line, "".join(before)) if self._is_basis(line) else line

    def _is_basis(self, line: str) -> bool:
        return line.lstrip().startswith(self._labels)

    def _line(self, line: str, before: str) -> tuple[str, str | None]:
        """(the checked line, keeping its indentation, a warning or None), computed once."""
        key = (line, before)
        if key not in self._results:
            fixed, warning = check_basis(
                line, before, self.passages, threshold=self.threshold, style=self.style
            )
            out = line if fixed == line.strip() else line[: len(line) - len(line.lstrip())] + fixed
            self._results[key] = (out, warning)
        return self._results[key]

    def _checked(self, line: str, before: str) -> str:
        out, warning = self._line(line, before)
        if warning:
            self.warnings.append(warning)
        return out
