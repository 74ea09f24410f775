"""One owner of an answer's lines: the collection's style profile names the labelled lines and
their order, and ``write_lines`` writes them.

Every label is written here, never by the model; the model writes what follows one label, and
its line ends at its first line break (or its end token), where its generation is stopped. The
next label is then given to it as the start of its reply (a prefill), so:

- an answer has exactly the style's lines, in the style's order, whatever the model would have
  done after them (paste a passage block, repeat the worked example, start a fourth line);
- an answer never stops before its last line;
- in the retrieval modes the source line is written from the passages the answer is cited to
  (``source``): the quote's passages when the answer quotes its evidence, else the passages its
  answer line matches (``domain.citations``). Only when nothing is cited does the model write that
  line, and a file it names that was not shown is repaired to a shown path or reported
  (``domain.basis.check_basis``); in the modes without passages, a file it names that the
  collection does not hold (``files``) is reported.

A line is held back until its first non-blank piece, so a label never stands alone on the screen
and the first piece's time is the model's. The streamed pieces are the stored text. With a
translator (``translate``), an answer line that does not yet read as the question's language is
held back to its end and written in the question's language when it is prose in another
(``domain.answer_language``); ``model_text`` keeps the model's own line, which the later lines
continue and the citations are found from.

A generator that cannot continue a prefill (a remote server, ``continues_prefill`` False) writes
its whole reply at once; its lines are then taken in order as the labels' lines, a label it wrote
itself dropped, and everything after the last label's line left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from domain.answer_language import LineTranslator, needs_translation, reads_as
from domain.answer_stream import close_source
from domain.basis import check_basis
from domain.ports import Generator as TextGenerator
from domain.ports import Message
from domain.style import StyleProfile
from domain.types import Hit

# Given the answer so far, the files its source line names (empty: the model writes that line).
SourceFn = Callable[[str], Sequence[str]]


class LineWriter:
    """Writes one answer in ``style``'s lines for ``lang`` (see the module docstring); ``warnings``
    holds what the source-line check found."""

    def __init__(
        self,
        style: StyleProfile,
        lang: str,
        *,
        passages: Sequence[Hit] = (),
        files: Sequence[str] = (),
        source: SourceFn | None = None,
        translate: LineTranslator | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.style, self.lang = style, lang
        self.labels = style.labels_for(lang)
        self.passages = list(passages)
        self.files = files
        self.source = source
        self.translate = translate
        self.warnings: list[str] = []
        # The answer as the model wrote it (the written text differs only by a translated answer
        # line), and that line's own body when it was translated (``domain.answer_language``).
        self.model_text = ""
        self.translated_from = ""
        # When the model's first piece came (on ``clock``) if it was held back, and the seconds
        # spent translating.
        self.clock = clock
        self.first_piece_at: float | None = None
        self.translate_s = 0.0

    def write(
        self,
        generator: TextGenerator,
        messages: Sequence[Message],
        *,
        adapter: bool,
        max_new_tokens: int,
        temperature: float = 0.0,
        prefill: str = "",
    ) -> Iterator[str]:
        """The answer's pieces; ``prefill`` is text the reply starts with before the first label (the
        evidence line), not part of the answer. ``max_new_tokens`` bounds the model's lines together."""
        if not getattr(generator, "continues_prefill", True):
            reply = generator.generate(
                messages,
                adapter=adapter,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                prefill=prefill,
            )
            yield from self._from_reply(reply)
            return
        self.model_text = ""  # the answer so far, each finished line ending with a line break
        left = max_new_tokens
        for i, label in enumerate(self.labels):
            if left <= 0:
                return
            end = "\n" if i < len(self.labels) - 1 else ""
            line = self._cited(i)
            if line is None:
                pieces = generator.generate(
                    messages,
                    adapter=adapter,
                    max_new_tokens=left,
                    temperature=temperature,
                    prefill=prefill + self.model_text + label,
                )
                if i == self.style.source_line:  # the model names the source: checked once it ends
                    body, used = _one_line(pieces)
                    left -= used
                    line = self._checked(_labelled(label, body))
                else:  # streamed as it comes, the label with its first piece
                    # The answer line is held back while it does not read as the question's
                    # language, when a translator could put it into it.
                    hold = self.translate is not None and i == self.style.answer_line
                    written, held = "", ""
                    for piece, used in _line_pieces(pieces):
                        left -= used
                        if not piece:
                            continue
                        if hold:
                            if self.first_piece_at is None:  # shown later than written
                                self.first_piece_at = self.clock()
                            held += piece
                            if not reads_as(held, self.lang):
                                continue
                            hold, piece, held = False, held, ""
                        yield piece if written else _labelled(label, piece)
                        written += piece
                    own = written + held
                    if held:
                        written = self._in_question_language(held.strip())
                        yield _labelled(label, written)
                    self.model_text += _labelled(label, own) + end
                    tail = end if written else label + end
                    if tail:
                        yield tail
                    continue
            self.model_text += line + end
            yield line + end

    def _from_reply(self, reply: Iterator[str]) -> Iterator[str]:
        """The answer's lines from one whole reply (see the module docstring), line by line."""
        body = [ln.strip() for ln in "".join(reply).split("\n") if ln.strip()]
        for i, label in enumerate(self.labels):
            end = "\n" if i < len(self.labels) - 1 else ""
            own = body[i] if i < len(body) else ""
            own = own[len(label) :].strip() if own.startswith(label) else own
            line = _labelled(label, own)
            shown = line
            if i == self.style.source_line:
                line = shown = self._cited(i) or self._checked(line)
            elif i == self.style.answer_line and self.translate is not None and own:
                shown = _labelled(label, self._in_question_language(own))
            self.model_text += line + end
            yield shown + end

    def _cited(self, i: int) -> str | None:
        """Line ``i`` written from the citations of the answer so far (as the model wrote it) when
        it is the source line of a retrieval answer that cites something; else None."""
        if i != self.style.source_line or not self.passages or self.source is None:
            return None
        named = list(self.source(self.model_text))
        return self.style.source_text(self.lang, named) if named else None

    def _in_question_language(self, line: str) -> str:
        """``line`` translated into the question's language when it is prose in another language
        and the translation is usable (``domain.answer_language``); else ``line``."""
        if self.translate is None or not needs_translation(line, self.lang):
            return line
        start = self.clock()
        translated = self.translate(line, self.lang)
        self.translate_s += self.clock() - start
        if not translated:
            return line
        self.translated_from = line
        return translated

    def _checked(self, line: str) -> str:
        fixed, warning = check_basis(line, self.passages, style=self.style, files=self.files)
        if warning:
            self.warnings.append(warning)
        return fixed


def _labelled(label: str, text: str) -> str:
    """``label`` and ``text`` with what stands between them: a space after an ASCII colon,
    nothing after a full-width one; the label alone for an empty line.

    >>> _labelled("Conclusion:", "15 days."), _labelled("结论：", "十五天。"), _labelled("Note:", "")
    ('Conclusion: 15 days.', '结论：十五天。', 'Note:')
    """
    if not text:
        return label
    return label + (" " if label.endswith(":") else "") + text


def _line_pieces(pieces: Iterator[str]) -> Iterator[tuple[str, int]]:
    """(text, 1) for each piece of the model's line: leading whitespace dropped, ending before its
    first line break after some text (blank lines before it are skipped); the source is closed
    there, so the model stops."""
    started = False
    try:
        for piece in pieces:
            if not started:
                piece = piece.lstrip()
                started = bool(piece)
            cut = piece.find("\n")
            if cut >= 0:
                yield piece[:cut].rstrip(), 1
                return
            yield piece, 1
    finally:
        close_source(pieces)


def _one_line(pieces: Iterator[str]) -> tuple[str, int]:
    """The model's whole line (see ``_line_pieces``) and the pieces it took."""
    parts = list(_line_pieces(pieces))
    return "".join(p for p, _ in parts).strip(), len(parts)
