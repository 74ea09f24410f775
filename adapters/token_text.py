"""Turns the bytes of generated tokens into text pieces for streaming: a character split across
tokens is held back until it is whole, and the answer never opens with whitespace.

Invalid bytes are rendered the way the transformers reference backend renders them, so both
backends print the same text: a run of SentencePiece byte tokens that is not valid UTF-8 becomes
one U+FFFD per byte; other invalid bytes one U+FFFD per bad sequence.
"""

from __future__ import annotations

import codecs

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
