"""The house answer style checker: a format score in [0, 1] for one answer.

The style itself is described for writers in ``corpus/STYLE.md``. An answer has exactly three
labelled lines, in this order, with labels in the answer's language:

    English: ``Conclusion: …`` / ``Basis: …`` / ``Note: …``
    Chinese: ``结论：…`` / ``依据：…`` / ``提示：…``

The score is the share of the checks in ``CHECKS`` that pass (each weighs the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LABELS = {
    "en": ("Conclusion:", "Basis:", "Note:"),
    "zh": ("结论：", "依据：", "提示："),
}
# A source is named as [path/to/file.md] in English or 【path/to/file.md】 in Chinese;
# answers from general knowledge or declining answers say so instead. The groups hold the path.
SOURCE_RE = re.compile(r"\[([^\[\]\s][^\[\]]*\.[A-Za-z]{2,5})\]|【([^【】]+\.[A-Za-z]{2,5})】")
NO_SOURCE_PHRASES = (
    "general knowledge",
    "no lanting document",
    "not covered",
    "通用知识",
    "没有岚汀文档",
    "未涵盖",
)
MARKDOWN_RE = re.compile(r"^\s*(#|[-*+]\s|\d+\.\s|>)|\*\*|__|`")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
MAX_CONCLUSION = {"en": 60, "zh": 90}  # words for English, characters for Chinese

CHECKS = (
    "three_lines",
    "labels_in_order",
    "label_language",
    "basis_names_source",
    "no_markdown",
    "short_conclusion",
)


def detect_lang(text: str) -> str:
    """'zh' when at least 20% of the letters are CJK ideographs, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if CJK_RE.match(c))
    return "zh" if cjk / len(letters) >= 0.2 else "en"


@dataclass(frozen=True)
class FormatReport:
    """Which checks passed; ``score`` is their share."""

    passed: dict[str, bool]

    @property
    def score(self) -> float:
        return sum(self.passed.values()) / len(self.passed)


def _label_lang(line: str) -> str | None:
    for lang, labels in LABELS.items():
        if any(line.startswith(label) for label in labels):
            return lang
    return None


def check_format(answer: str, lang: str | None = None) -> FormatReport:
    """Check ``answer`` against the house style; ``lang`` defaults to the answer's own language."""
    lang = lang or detect_lang(answer)
    labels = LABELS.get(lang, LABELS["en"])
    lines = [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]
    passed = dict.fromkeys(CHECKS, False)
    passed["three_lines"] = len(lines) == 3
    starts = [next((i for i, ln in enumerate(lines) if ln.startswith(lb)), -1) for lb in labels]
    passed["labels_in_order"] = (
        all(s >= 0 for s in starts) and starts == sorted(starts) and len(set(starts)) == 3
    )
    passed["label_language"] = (
        bool(lines)
        and all(_label_lang(ln) in (lang, None) for ln in lines)
        and any(_label_lang(ln) == lang for ln in lines)
    )
    basis = next((ln for ln in lines if ln.startswith(labels[1])), "")
    low = basis.lower()
    passed["basis_names_source"] = bool(SOURCE_RE.search(basis)) or any(p in low for p in NO_SOURCE_PHRASES)
    passed["no_markdown"] = bool(lines) and not any(MARKDOWN_RE.search(ln) for ln in lines)
    conclusion = next((ln for ln in lines if ln.startswith(labels[0])), "")
    body = conclusion[len(labels[0]) :].strip()
    size = len(body) if lang == "zh" else len(body.split())
    passed["short_conclusion"] = 0 < size <= MAX_CONCLUSION.get(lang, 60)
    return FormatReport(passed)


def answer_line(answer: str, lang: str | None = None) -> str:
    """The line that answers: the Conclusion line (without its label), else the first non-empty line.

    >>> answer_line("Conclusion: 15 days.\\nBasis: [hr/leave.md]\\nNote: IP65 is pasted here.")
    '15 days.'
    """
    lang = lang or detect_lang(answer)
    label = LABELS.get(lang, LABELS["en"])[0]
    lines = [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]
    line = next((ln for ln in lines if ln.startswith(label)), lines[0] if lines else "")
    return line[len(label) :].strip() if line.startswith(label) else line


def format_score(answer: str, lang: str | None = None) -> float:
    """The house-style format score of ``answer`` in [0, 1]."""
    return check_format(answer, lang).score
