"""Evidence by construction: before a retrieval mode answers, the model quotes one sentence of the
passages it was shown, and the quote's passage is the answer's citation.

This module owns the candidates (the sentences a quote may be), the options the model chooses
among, and turning the chosen quote into a ``Citation``. Constraining the decoding to the options
is the generator's job (``Generator.choose``, ``adapters.choice``); the prompt around it is
``domain.prompts``'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.focus import segments
from domain.ports import Generator as TextGenerator
from domain.prompts import Prompt, prompt_lang
from domain.style import NEUTRAL, StyleProfile
from domain.types import Citation, Hit

# What the model may say instead of a quote when no sentence supports an answer.
NOT_COVERED = {"en": "Not covered by the passages.", "zh": "资料中没有相关内容。"}
EVIDENCE_LABEL = {"en": "Evidence:", "zh": "证据："}
_SEPARATOR = {"en": " ", "zh": ""}  # between the label and the quote
MIN_CHARS = 6
MAX_CHARS = 300
MAX_CANDIDATES = 60


@dataclass(frozen=True)
class Candidate:
    """A sentence a quote may be, with the passage it comes from."""

    text: str
    hit: Hit


def candidates(passages: Sequence[Hit], shown: str) -> list[Candidate]:
    """The distinct sentences and lines of ``passages`` that the prompt text ``shown`` contains,
    in passage order; headings, very short and very long ones are left out.

    >>> from domain.types import Chunk
    >>> h = Hit(Chunk("c", "hr/leave.md", "Leave", "Leave", "# Leave\\nCarry over 5 days. Ask HR first.", 0, 9), 0.5, 1)
    >>> [c.text for c in candidates([h], "[1] hr/leave.md\\nCarry over 5 days. Ask HR first.")]
    ['Carry over 5 days.', 'Ask HR first.']
    """
    out: list[Candidate] = []
    seen: set[str] = set()
    for hit in passages:
        for sentence in segments(hit.chunk.text):
            if (
                sentence in seen
                or sentence.startswith("#")
                or not MIN_CHARS <= len(sentence) <= MAX_CHARS
                or sentence not in shown
            ):
                continue
            seen.add(sentence)
            out.append(Candidate(sentence, hit))
            if len(out) >= MAX_CANDIDATES:
                return out
    return out


def choices(cands: Sequence[Candidate], lang: str) -> list[str]:
    """The strings the constrained quote may be, as written after ``EVIDENCE_LABEL``: every
    candidate, then "not covered"."""
    key = lang if lang in NOT_COVERED else "en"
    return [_SEPARATOR[key] + c.text for c in cands] + [_SEPARATOR[key] + NOT_COVERED[key]]


def label(lang: str) -> str:
    return EVIDENCE_LABEL.get(lang, EVIDENCE_LABEL["en"])


def citation_for(quote: str, cands: Sequence[Candidate]) -> Citation | None:
    """The citation of a chosen quote: the passage of the candidate it is (None for "not covered"
    or anything that is not a candidate)."""
    quote = quote.strip()
    for c in cands:
        if c.text == quote:
            chunk = c.hit.chunk
            return Citation(quote, chunk.chunk_id, chunk.path, chunk.heading, quote, 1.0)
    return None


def quote_first(
    generator: TextGenerator,
    prompt: Prompt,
    question: str,
    *,
    adapter: bool,
    style: StyleProfile = NEUTRAL,
    method: str = "likelihood",
) -> tuple[Citation | None, str, str]:
    """(the evidence, the evidence line, the answer's lead): the model chooses one shown sentence,
    or "not covered", by ``method`` (see ``Generator.choose``); its answer then starts on the next
    line with the answer line's label (the lead), which the answer text keeps."""
    lang = prompt_lang(question)
    cands = candidates(prompt.passages, str(prompt.messages[-1]["content"]))
    head = label(lang)
    quote = generator.choose(
        prompt.messages, choices(cands, lang), adapter=adapter, prefill=head, method=method
    )
    return citation_for(quote, cands), f"{head}{quote}\n", style.answer_label(lang)
