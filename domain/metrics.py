"""Answer metrics for the evaluation harness: key-fact recall, ROUGE-L F and citation precision.

Pure functions over strings; each docstring works an example through by hand, and the tests pin
the same numbers. The format score is ``domain.style.format_score``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+", re.UNICODE)


def normalize_fact_text(text: str) -> str:
    """NFKC (full width → half width), case-folded, with punctuation and all whitespace removed.
    Symbols such as ¥, ± and ° are kept: they are part of facts.

    >>> normalize_fact_text("ＬＴ－３５０ costs ¥340, Ltd.")
    'lt350costs¥340ltd'
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not (c.isspace() or unicodedata.category(c).startswith("P")))


def fact_recall(answer: str, key_facts: Sequence[str]) -> float:
    """Share of ``key_facts`` found in ``answer`` after ``normalize_fact_text`` on both sides.
    No key facts → 1.0 (nothing could be missed).

    Worked example: facts "15 天" and "服务台"; the answer "全年超过15天须面谈。" contains
    "15天" (spaces do not count) but not "服务台", so recall = 1/2:

    >>> fact_recall("全年超过15天须面谈。", ["15 天", "服务台"])
    0.5
    >>> fact_recall("Call 400-826-5170.", ["400 826 5170"])
    1.0
    """
    facts = [f for f in (normalize_fact_text(k) for k in key_facts) if f]
    if not facts:
        return 1.0
    text = normalize_fact_text(answer)
    return sum(1 for f in facts if f in text) / len(facts)


def rouge_tokens(text: str) -> list[str]:
    """Tokens for ROUGE-L: each Chinese character on its own, and words (letter/digit runs)
    elsewhere, after NFKC and case folding; punctuation is dropped.

    >>> rouge_tokens("年假 15 天, Annual leave!")
    ['年', '假', '15', '天', 'annual', 'leave']
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of ``candidate`` against ``reference``: characters for Chinese, words for
    English (``rouge_tokens``). P = LCS/len(candidate), R = LCS/len(reference), F = 2PR/(P+R).

    Worked example (English): candidate "the cap is 680 per night" (6 words), reference "the
    nightly cap is 680" (5 words); LCS "the cap is 680" = 4, so P = 4/6, R = 4/5 and
    F = 2·(2/3)·(4/5)/((2/3)+(4/5)) = 16/22 ≈ 0.7273:

    >>> round(rouge_l("the cap is 680 per night", "the nightly cap is 680"), 4)
    0.7273

    Worked example (Chinese): candidate "年假十天" (4 characters), reference "年假为十五天"
    (6); LCS "年假十天" = 4, so P = 1, R = 4/6 and F = 2·1·(2/3)/(1+2/3) = 0.8:

    >>> round(rouge_l("年假十天", "年假为十五天"), 4)
    0.8
    """
    cand, ref = rouge_tokens(candidate), rouge_tokens(reference)
    lcs = lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(cand), lcs / len(ref)
    return 2 * p * r / (p + r)


def normalize_source(path: str) -> str:
    """POSIX separators, no leading './'."""
    return path.replace("\\", "/").removeprefix("./")


def citation_precision(cited_paths: Sequence[str], sources: Collection[str]) -> float | None:
    """Share of cited passages whose file is among the row's ``sources``; None when nothing was
    cited (precision is undefined then, and averages skip it).

    ``cited_paths`` has one entry per cited passage (two passages of one file count twice).
    Worked example: three passages cited, from a.md, a.md and b.md, with source a.md → 2/3:

    >>> round(citation_precision(["a.md", "a.md", "b.md"], ["a.md"]), 4)
    0.6667
    >>> citation_precision([], ["a.md"]) is None
    True
    """
    if not cited_paths:
        return None
    wanted = {normalize_source(s) for s in sources}
    return sum(1 for p in cited_paths if normalize_source(p) in wanted) / len(cited_paths)
