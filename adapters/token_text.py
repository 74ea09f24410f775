"""Turns the bytes of generated tokens into text pieces for streaming: a character split across
tokens is held back until it is whole, and the answer never opens with whitespace. ``LineFloor``
is the rule both backends apply when a model wants to end an answer before its minimum lines.

Invalid bytes are rendered the way the transformers reference backend renders them, so both
backends print the same text: a run of SentencePiece byte tokens that is not valid UTF-8 becomes
one U+FFFD per byte; other invalid bytes one U+FFFD per bad sequence.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

REPLACEMENT = "\ufffd"


class TokenTextDecoder:
    """Feed each generated token's bytes (``feed``), then ``finish``; both return text to show."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._run = bytearray()  # consecutive byte-fallback tokens, judged as a whole
        self._started = False

    def feed(self, piece: bytes, *, byte_token: bool = False) -> str:
        """The text that ``piece`` completes ("" while a character is still partial)."""
        if byte_token:
            self._run += piece
            return ""
        return self._show(self._flush_run() + self._utf8.decode(piece))

    def finish(self) -> str:
        """Text still held at the end. A character cut by the token limit is dropped, not shown as U+FFFD."""
        text = self._flush_run(at_end=True)
        held = self._utf8.getstate()[0]
        if held:  # only ever the incomplete start of a character
            self._utf8.reset()
        return self._show(text)

    def _flush_run(self, *, at_end: bool = False) -> str:
        if not self._run:
            return ""
        run, self._run = bytes(self._run), bytearray()
        try:
            return run.decode("utf-8")
        except UnicodeDecodeError as e:
            if at_end and e.reason == "unexpected end of data":
                valid = run[: e.start].decode("utf-8", errors="strict") if e.start else ""
                return valid if _is_truncated(run[e.start :]) else REPLACEMENT * len(run)
            return REPLACEMENT * len(run)

    def _show(self, text: str) -> str:
        if not self._started:  # SentencePiece models open with a word-boundary space
            text = text.lstrip()
            self._started = bool(text)
        return text


def _is_truncated(tail: bytes) -> bool:
    """True when ``tail`` is the valid beginning of one multi-byte character."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        return decoder.decode(tail) == "" and bool(decoder.getstate()[0])
    except UnicodeDecodeError:
        return False


class LineFloor:
    """The rule "an answer has at least ``min_lines`` lines": fed the text generated so far
    (``feed``), it says whether the model may end there (``end_allowed``). Where it may not, both
    backends take a line break instead of the end token, so a model that stops after its first
    line goes on to write the next one itself.

    An end proposed on an empty line (right after a line break, or before any text) is accepted:
    a model that wants to stop twice in a row is not pushed into blank lines.

    >>> floor = LineFloor(3)
    >>> floor.feed("Conclusion: 15 days.")
    >>> floor.end_allowed()
    False
    >>> floor.feed("\\nBasis: [hr/leave.md]\\nNote: Ask HR.")
    >>> floor.end_allowed()
    True
    >>> blank = LineFloor(3)
    >>> blank.feed("Conclusion: 15 days.\\n")
    >>> blank.end_allowed()
    True
    """

    def __init__(self, min_lines: int) -> None:
        self.min_lines = min_lines
        self._lines = 0  # finished non-empty lines
        self._current = ""  # the line being written

    def feed(self, text: str) -> None:
        *done, self._current = (self._current + text).split("\n")
        self._lines += sum(1 for line in done if line.strip())

    def end_allowed(self) -> bool:
        if self.min_lines <= 0:
            return True
        lines = self._lines + (1 if self._current.strip() else 0)
        return lines >= self.min_lines or not self._current.strip()


def replace_at_line_ends(text: str, start: int, check: Callable[[str], str | None]) -> str | None:
    """``check`` asked about ``text`` up to each of its line breaks from ``start`` on, in order: the
    first replacement it gives, followed by the rest of ``text``; None when it gives none.

    >>> replace_at_line_ends("a\\nb\\nc", 0, lambda t: "A\\n" if t == "a\\n" else None)
    'A\\nb\\nc'
    >>> replace_at_line_ends("a\\nb\\nc", 2, lambda t: "A\\n" if t == "a\\n" else None) is None
    True
    """
    at = text.find("\n", start)
    while at >= 0:
        upto = text[: at + 1]
        replaced = check(upto)
        if replaced is not None and replaced != upto:
            return replaced + text[at + 1 :]
        at = text.find("\n", at + 1)
    return None


class ContextText:
    """The answer text a model continues from, for a ``line_check`` (see ``domain.ports``): fed each
    generated token's bytes, it asks ``check`` at every line break whether the text so far is to
    be replaced, and returns the new context text when it is (None otherwise).

    >>> fix = lambda t: t.replace("[x.md]", "[a.md]") if t.endswith("[x.md]\\n") else None
    >>> ctx = ContextText(fix)
    >>> [ctx.feed(p, False) for p in (b"Basis: [x", b".md]\\nNo", b"te: n.\\n")]
    [None, 'Basis: [a.md]\\nNo', None]
    >>> ctx.text
    'Basis: [a.md]\\nNote: n.\\n'
    """

    def __init__(self, check: Callable[[str], str | None]) -> None:
        self._check = check
        self._decoder = TokenTextDecoder()
        self.text = ""

    def feed(self, piece: bytes, byte_token: bool) -> str | None:
        start = len(self.text)
        self.text += self._decoder.feed(piece, byte_token=byte_token)
        replaced = replace_at_line_ends(self.text, start, self._check)
        if replaced is not None:
            self.text = replaced
        return replaced
