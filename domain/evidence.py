"""Evidence by construction: before a retrieval mode answers, the model quotes one sentence of the
passages it was shown, and the quote's passage is the answer's citation.

This module owns the candidates (the sentences a quote may be), their ranking by a sentence
scorer (the collection's embedder: question against "heading: sentence"), the options the model
chooses among (the best-ranked sentences alone and in pairs, and "not covered"), and turning the
chosen quote into citations. Constraining the decoding to the options
is the generator's job (``Generator.choose``, ``adapters.choice``); the prompt around it is
``domain.prompts``'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from domain.focus import segments
from domain.ports import Generator as TextGenerator
from domain.prompts import EVIDENCE_LABEL, Prompt, prompt_lang
from domain.prompts import EVIDENCE_SEPARATOR as _SEPARATOR
from domain.types import Citation, Hit

# What the model may say instead of a quote when no sentence supports an answer.
NOT_COVERED = {"en": "Not covered by the passages.", "zh": "资料中没有相关内容。"}
MIN_CHARS = 6
MAX_CHARS = 300
MAX_CANDIDATES = 60
_PAIR_JOIN = {"en": " ", "zh": ""}

# Scores of sentences for a question, higher = more relevant (one score per sentence).
SentenceScorer = Callable[[str, Sequence[str]], Sequence[float]]


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


def ranked(question: str, cands: Sequence[Candidate], scorer: SentenceScorer, keep: int) -> list[Candidate]:
    """The ``keep`` candidates ``scorer`` rates best for ``question`` (each scored with its
    passage's heading in front, so a sentence keeps the context its heading gives it), in passage
    order. ``keep`` ≤ 0 keeps all.

    >>> from domain.types import Chunk
    >>> h = Hit(Chunk("c", "a.md", "Leave", "Leave", "x", 0, 1), 0.5, 1)
    >>> cs = [Candidate(t, h) for t in ("Ask HR first.", "Carry over 5 days.", "Forms are online.")]
    >>> score = lambda q, texts: [("days" in t) * 2 + ("HR" in t) for t in texts]
    >>> [c.text for c in ranked("How many days?", cs, score, 2)]
    ['Ask HR first.', 'Carry over 5 days.']
    """
    if keep <= 0 or len(cands) <= keep:
        return list(cands)
    texts = [f"{c.hit.chunk.heading}: {c.text}" if c.hit.chunk.heading else c.text for c in cands]
    scores = np.asarray(scorer(question, texts), dtype=np.float64)
    best = sorted(np.argsort(-scores, kind="stable")[:keep].tolist())
    return [cands[i] for i in best]


def quotes(cands: Sequence[Candidate], *, pairs: bool) -> list[tuple[Candidate, ...]]:
    """What a quote may be: each candidate alone, then (with ``pairs``) each two of them in
    passage order."""
    out: list[tuple[Candidate, ...]] = [(c,) for c in cands]
    if pairs:
        out += list(combinations(cands, 2))
    return out


def quote_text(quote: Sequence[Candidate], lang: str) -> str:
    return _PAIR_JOIN.get(lang, " ").join(c.text for c in quote)


def choices(quoted: Sequence[Sequence[Candidate]], lang: str) -> list[str]:
    """The strings the constrained quote may be, as written after ``EVIDENCE_LABEL``: every
    quote, then "not covered"."""
    key = lang if lang in NOT_COVERED else "en"
    return [_SEPARATOR[key] + quote_text(q, key) for q in quoted] + [_SEPARATOR[key] + NOT_COVERED[key]]


def label(lang: str) -> str:
    return EVIDENCE_LABEL.get(lang, EVIDENCE_LABEL["en"])


def citations_for(chosen: str, quoted: Sequence[Sequence[Candidate]], lang: str) -> list[Citation]:
    """The citations of a chosen quote: one per passage its sentences come from, in quote order,
    each with the whole quote as its sentence and that passage's part of it as its span (none for
    "not covered" or anything that is not one of ``quoted``)."""
    chosen = chosen.strip()
    key = lang if lang in NOT_COVERED else "en"
    for q in quoted:
        if quote_text(q, key) != chosen:
            continue
        out: dict[str, Citation] = {}
        for c in q:
            chunk = c.hit.chunk
            prev = out.get(chunk.chunk_id)
            span = c.text if prev is None else prev.span + _PAIR_JOIN.get(key, " ") + c.text
            out[chunk.chunk_id] = Citation(chosen, chunk.chunk_id, chunk.path, chunk.heading, span, 1.0)
        return list(out.values())
    return []


def quote_first(
    generator: TextGenerator,
    prompt: Prompt,
    question: str,
    *,
    adapter: bool,
    method: str = "likelihood",
    scorer: SentenceScorer | None = None,
    keep: int = 0,
) -> tuple[list[Citation], str]:
    """(the quote's citations, the evidence line): the model chooses, by ``method`` (see
    ``Generator.choose``), one shown sentence — or, when ``scorer`` ranks them down to ``keep``,
    one or two of the best-ranked — or "not covered"; its answer is then written on the lines
    after the evidence line (``domain.answer_format``)."""
    lang = prompt_lang(question)
    cands = candidates(prompt.passages, str(prompt.messages[-1]["content"]))
    if scorer is not None and keep > 0:  # the best-ranked few, alone or two together
        quoted = quotes(ranked(question, cands, scorer, keep), pairs=True)
    else:
        quoted = quotes(cands, pairs=False)
    head = label(lang)
    quote = generator.choose(
        prompt.messages, choices(quoted, lang), adapter=adapter, prefill=head, method=method
    )
    return citations_for(quote, quoted, lang), f"{head}{quote}\n"
