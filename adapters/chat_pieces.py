"""Chat prompts as pieces that know whose text they are, so text stays text.

A chat template is rendered with a placeholder for each message's content; the rendered string is
cut at the placeholders into the template's own markup (where special markers such as
``<|im_start|>`` are parsed as tokens) and the messages' contents (user questions, document
passages, corrections: tokenized with special-token parsing off). ``<|im_end|>`` typed into a
question or a document is then a few ordinary text tokens and can never open a chat turn. Both
generation backends and the training encoder tokenize through these pieces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import GenerationError

# Private-use characters: no template writes them, and the placeholder never reaches a tokenizer.
_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class Piece:
    """A stretch of the prompt: ``markup`` is the template's own text (special markers parsed)."""

    text: str
    markup: bool


def render_masked(render: Callable[[list[dict[str, Any]]], str], messages: Sequence[Any]) -> str:
    """The template's output with each message's content replaced by its numbered placeholder."""
    masked = [dict(m, content=_PLACEHOLDER.format(i)) for i, m in enumerate(messages)]
    return render(masked)


def split_masked(
    rendered: str, contents: Sequence[str], *, expected: Sequence[int] | None = None
) -> list[Piece]:
    """Cut a masked rendering into pieces, putting each message's real content in its place.

    Raises:
        GenerationError: the placeholders are not the ``expected`` ones (default: every message,
            once each, in order), i.e. the template rewrites or drops message text.
    """
    pieces: list[Piece] = []
    seen: list[int] = []
    at = 0
    for m in _PLACEHOLDER_RE.finditer(rendered):
        if m.start() > at:
            pieces.append(Piece(rendered[at : m.start()], True))
        i = int(m.group(1))
        seen.append(i)
        if i < len(contents) and contents[i]:
            pieces.append(Piece(contents[i], False))
        at = m.end()
    if at < len(rendered):
        pieces.append(Piece(rendered[at:], True))
    if seen != list(range(len(contents)) if expected is None else expected):
        raise GenerationError(
            "the chat template rewrites or drops message text, so it cannot be kept apart from the "
            "template's markers — use a model whose template inserts message content as it is"
        )
    return pieces


def chat_pieces(render: Callable[[list[dict[str, Any]]], str], messages: Sequence[Any]) -> list[Piece]:
    """The pieces of the whole rendered chat (``"".join`` of their texts is the prompt string)."""
    return split_masked(render_masked(render, messages), [str(m["content"]) for m in messages])


def encode_chat(
    pieces: Sequence[Piece],
    encode: Callable[[str, bool], list[int]],
    whole: Callable[[str], list[int]],
) -> list[int]:
    """Token ids of ``pieces``, where ``encode(text, markup)`` parses special markers only when
    ``markup`` and ``whole(prompt)`` tokenizes the joined prompt with markers parsed.

    When no content would tokenize differently with markers parsed, it holds no marker and the
    whole prompt is tokenized at once (the ids a plain chat prompt always had: a SentencePiece
    tokenizer would add a word mark at each piece's start). Otherwise each piece is tokenized on its
    own, the content with markers off.
    """
    if all(p.markup or encode(p.text, True) == encode(p.text, False) for p in pieces):
        return whole("".join(p.text for p in pieces))
    ids: list[int] = []
    for piece in pieces:
        ids.extend(encode(piece.text, piece.markup))
    return ids


def hf_encoder(tokenizer: Any) -> Callable[[str, bool], list[int]]:
    """``encode(text, markup)`` for a Hugging Face tokenizer: special markers are tokens only in
    markup; in content they are split into ordinary text tokens. No BOS/EOS is added."""

    def encode(text: str, markup: bool) -> list[int]:
        out = tokenizer(text, add_special_tokens=False, split_special_tokens=not markup)
        return list(out["input_ids"])

    return encode
