"""Citations attached after generation: each answer sentence is matched to the passage that
shares most of its character n-grams, and the passage sentence it overlaps most becomes the
matched span. The model's own [n] or [file] tags are stripped before matching and never trusted.

Sentences split on English and Chinese end punctuation and on line breaks; a leading label (a
word or two and a colon, as every style profile's labels are: "Answer:", "结论：") is removed
first, so a "Source: [file]" line that names only a file cites nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from domain.style import CJK_RE
from domain.types import Citation, Hit

DEFAULT_THRESHOLD = 0.45
MIN_GRAMS = 5  # sentences with fewer distinct n-grams (under ~6 characters) are not cited

_SENT_END = re.compile(r"(?<=[。！？；])|(?<=[.!?;])(?=\s|$)|\n")
_TAG = re.compile(r"\[[^\[\]]*\]|【[^【】]*】")
_LABEL = re.compile(r"^(?:[A-Za-z][A-Za-z -]{0,23}:|[\u4e00-\u9fff]{1,6}[：:])\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, stripped, empty ones dropped.

    >>> split_sentences("Leave is 15 days. It expires in March!\\n结论：年假 15 天。逾期作废")
    ['Leave is 15 days.', 'It expires in March!', '结论：年假 15 天。', '逾期作废']
    """
    return [s.strip() for s in _SENT_END.split(text) if s and s.strip()]


def _strip_label(sentence: str) -> str:
    """``sentence`` without a leading label.

    >>> _strip_label("Conclusion: 15 days."), _strip_label("结论：15 天。"), _strip_label("E-417: low")
    ('15 days.', '15 天。', 'E-417: low')
    """
    return _LABEL.sub("", sentence, count=1).strip()


def normalize(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols dropped, whitespace collapsed to one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c)[0] in "PZ" or c.isspace() else c for c in folded)
    return " ".join(kept.split())


def gram_size(text: str) -> int:
    """Bigrams for mostly-Chinese text, trigrams otherwise."""
    letters = [c for c in text if c.isalnum()]
    cjk = sum(1 for c in letters if CJK_RE.match(c))
    return 2 if letters and cjk / len(letters) >= 0.3 else 3


def char_ngrams(text: str, n: int) -> set[str]:
    """Distinct character n-grams of normalised ``text`` (the whole text when shorter than n)."""
    t = normalize(text)
    if len(t) < n:
        return {t} if t else set()
    return {t[i : i + n] for i in range(len(t) - n + 1)}


def overlap(sentence: str, passage: str, n: int | None = None) -> float:
    """Share of the sentence's character n-grams that also occur in the passage, in [0, 1].

    >>> overlap("leave is 15 days", "Annual leave is 15 days per year.")
    1.0
    >>> overlap("年假十五天", "员工年假为十五天")  # bigrams 年假 十五 五天 found, 假十 not
    0.75
    """
    size = n or gram_size(sentence)
    grams = char_ngrams(sentence, size)
    if not grams:
        return 0.0
    return len(grams & char_ngrams(passage, size)) / len(grams)


def longest_common_substring(a: str, b: str) -> str:
    """The longest substring of ``a`` that also occurs in ``b`` (first one found on ties).

    >>> longest_common_substring("leave is 15 days", "annual leave is 15 days")
    'leave is 15 days'
    """
    if not a or not b:
        return ""
    prev = [0] * (len(b) + 1)
    best_len = best_end = 0
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        ai = a[i - 1]
        for j in range(1, len(b) + 1):
            if ai == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best_len:
                    best_len, best_end = cur[j], i
        prev = cur
    return a[best_end - best_len : best_end]


def matched_span(sentence: str, passage_text: str) -> str:
    """The sentence of ``passage_text`` (verbatim) that overlaps ``sentence`` most; ties go to the
    longer common substring, then the earlier sentence."""
    size = gram_size(sentence)
    best, best_key = "", (-1.0, -1)
    for candidate in split_sentences(passage_text):
        key = (
            overlap(sentence, candidate, size),
            len(longest_common_substring(normalize(sentence), normalize(candidate))),
        )
        if key > best_key:
            best, best_key = candidate, key
    return best


def attach_citations(
    answer: str, hits: Sequence[Hit], *, threshold: float = DEFAULT_THRESHOLD
) -> list[Citation]:
    """One citation per answer sentence whose best passage overlaps it by ``threshold`` or more.

    Sentences too short to match meaningfully (fewer than ``MIN_GRAMS`` n-grams, such as a bare
    heading) cite nothing. Ties between passages go to the better-ranked one. Bracketed tags are removed from the
    sentence first, so "[2]" or "[hr/leave.md]" alone never cites anything.
    """
    ordered = sorted(hits, key=lambda h: h.rank)
    out: list[Citation] = []
    for raw in split_sentences(answer):
        sentence = _TAG.sub(" ", _strip_label(raw)).strip()
        size = gram_size(sentence)
        if len(char_ngrams(sentence, size)) < MIN_GRAMS:
            continue
        scored = [(overlap(sentence, h.chunk.text, size), -i, h) for i, h in enumerate(ordered)]
        if not scored:
            break
        score, _, hit = max(scored, key=lambda t: (t[0], t[1]))
        if score < threshold:
            continue
        out.append(
            Citation(
                sentence=raw,
                chunk_id=hit.chunk.chunk_id,
                path=hit.chunk.path,
                heading=hit.chunk.heading,
                span=matched_span(sentence, hit.chunk.text),
                score=round(score, 4),
            )
        )
    return out


def cited_paths(citations: Sequence[Citation]) -> list[str]:
    """Distinct cited passages' paths, one entry per cited chunk, in first-cited order."""
    seen: dict[str, str] = {}
    for c in citations:
        seen.setdefault(c.chunk_id, c.path)
    return list(seen.values())
