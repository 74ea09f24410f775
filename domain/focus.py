"""Query-focused excerpts of retrieved passages: the few lines or sentences of a passage that share
most character n-grams with the question, kept in their original order.

A small base model copies facts more reliably from a short context than from five whole chunks.
Only what the model reads is cut: citations still match answers against the whole passage.
``domain.prompts`` builds the blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.citations import char_ngrams, gram_size, normalize, split_sentences

_RULE_ONLY = set("|-:= +")  # table rules and separators carry no text


def segments(text: str) -> list[str]:
    """The passage's sentences and lines (``domain.citations.split_sentences``) without the ones
    that are only table rules or separators.

    >>> segments("## Leave\\n\\n| a | b |\\n|---|---|\\nCarry over 5 days. Ask HR first.\\n年假 5 天。逾期作废。")
    ['## Leave', '| a | b |', 'Carry over 5 days.', 'Ask HR first.', '年假 5 天。', '逾期作废。']
    """
    return [s for s in split_sentences(text) if not set(s) <= _RULE_ONLY]


def _grams(text: str, n: int) -> set[str]:
    """Distinct character n-grams of ``text`` normalised with spaces removed."""
    return char_ngrams(normalize(text).replace(" ", ""), n)


def focus_text(question: str, text: str, *, keep: int) -> str:
    """The ``keep`` segments of ``text`` that cover most of the question's character n-grams
    (bigrams for a Chinese question, trigrams otherwise), joined by line breaks in passage order;
    ties go to the earlier segment. ``keep`` ≤ 0, or a passage with ``keep`` segments or fewer,
    comes back whole.

    Worked example: the question "How many days carry over?" (spaces and punctuation dropped:
    "howmanydayscarryover") has trigrams such as "day", "car" and "ove"; "Carry over 5 days."
    shares 9 of them ("car", "arr", "rry", "ryo", "yov", "ove", "ver", "day", "ays"), the
    other two segments none, so with keep=1:

    >>> focus_text("How many days carry over?", "Leave policy.\\nCarry over 5 days. Ask HR first.", keep=1)
    'Carry over 5 days.'
    """
    parts = segments(text)
    if keep <= 0 or len(parts) <= keep:
        return text
    size = gram_size(question)
    wanted = _grams(question, size)
    scored = sorted(
        range(len(parts)),
        key=lambda i: (-len(wanted & _grams(parts[i], size)), i),
    )
    return "\n".join(parts[i] for i in sorted(scored[:keep]))


def closest_segment(target: str, texts: Sequence[str]) -> str:
    """The segment of ``texts`` that covers most of ``target``'s character n-grams (the first on
    ties; "" when there is none).

    >>> closest_segment("Check in within 15 minutes", ["Rooms are booked ahead. Check in within 15 minutes."])
    'Check in within 15 minutes.'
    """
    size = gram_size(target)
    wanted = _grams(target, size)
    parts = [p for text in texts for p in segments(text) if not p.startswith("#")]
    return max(parts, key=lambda p: len(wanted & _grams(p, size)), default="")
