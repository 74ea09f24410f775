"""The answer style of a collection as data (``StyleProfile``) and the checker that scores an
answer against it: a format score in [0, 1].

A profile names the labelled lines an answer has and their order, per language (for example
``Answer:`` / ``Source:``), which line holds the answer and which names the source file, the
system prompt and the instructions shown with passages, one or two worked examples, and the
phrases that say no document covers a question. The prompt builder (``domain.prompts``), the
streaming Basis check (``domain.basis``), the evaluation and the training-row checks read it; it
is stored per collection as ``style.json``. ``NEUTRAL`` is the style a new collection starts from.

The checks (each weighs the same) are those in ``CHECKS``.

Above ~300 lines because the profile (with its JSON loading and validation, about 190 lines) and
the checker that scores answers against it (about 70) are read together by every user of the style.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from domain.errors import ConfigError

# A source is named as [path/to/file.md] in English or 【path/to/file.md】 in Chinese; answers that
# no document backs say so with one of the profile's not-covered phrases. The groups hold the path.
SOURCE_RE = re.compile(r"\[([^\[\]\s][^\[\]]*\.[A-Za-z]{2,5})\]|【([^【】]+\.[A-Za-z]{2,5})】")
MARKDOWN_RE = re.compile(r"^\s*(#|[-*+]\s|\d+\.\s|>)|\*\*|__|`")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
LANGS = ("en", "zh")

CHECKS = (
    "line_count",
    "labels_in_order",
    "label_language",
    "source_named",
    "no_markdown",
    "short_answer",
)


def detect_lang(text: str) -> str:
    """'zh' when at least 20% of the letters are CJK ideographs, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if CJK_RE.match(c))
    return "zh" if cjk / len(letters) >= 0.2 else "en"


@dataclass(frozen=True)
class Example:
    """A worked exchange in one language: the passages shown ([1], [2], … as (path, heading,
    text)), the question, the answer written from them, and the answer without passages."""

    lang: str
    question: str
    passages: tuple[tuple[str, str, str], ...]
    answer: str
    answer_without_passages: str


@dataclass(frozen=True)
class StyleProfile:
    """How a collection's answers look (see the module docstring)."""

    name: str
    labels: Mapping[str, tuple[str, ...]]
    system_prompt: Mapping[str, str]
    rag_instructions: Mapping[str, str]
    examples: tuple[Example, ...] = ()
    not_covered: tuple[str, ...] = ()
    answer_line: int = 0
    source_line: int = 1
    max_answer: Mapping[str, int] = field(default_factory=lambda: {"en": 60, "zh": 90})

    def __post_init__(self) -> None:
        problems = []
        if "en" not in self.labels:
            problems.append("labels need an 'en' entry")
        sizes = {len(v) for v in self.labels.values()}
        if len(sizes) != 1 or 0 in sizes:
            problems.append("every language needs the same, non-zero number of labels")
        n = min(sizes or {0})
        if (
            not (0 <= self.answer_line < n and 0 <= self.source_line < n)
            or self.answer_line == self.source_line
        ):
            problems.append("answer_line and source_line must be two different label positions")
        if any(not lb.strip() for v in self.labels.values() for lb in v):
            problems.append("a label is empty")
        for what in ("system_prompt", "rag_instructions"):
            if "en" not in getattr(self, what):
                problems.append(f"{what} needs an 'en' entry")
        if problems:
            raise ConfigError(f"style profile {self.name!r}: {'; '.join(problems)}")

    # ------------------------------------------------------------------ per language
    def lang_key(self, lang: str) -> str:
        return lang if lang in self.labels else "en"

    def labels_for(self, lang: str) -> tuple[str, ...]:
        return tuple(self.labels[self.lang_key(lang)])

    @property
    def n_lines(self) -> int:
        return len(self.labels["en"])

    def answer_label(self, lang: str) -> str:
        return self.labels_for(lang)[self.answer_line]

    def source_label(self, lang: str) -> str:
        return self.labels_for(lang)[self.source_line]

    def source_labels(self) -> dict[str, str]:
        """{source label: its language} over every language."""
        return {v[self.source_line]: lang for lang, v in self.labels.items()}

    def system(self, lang: str) -> str:
        return self.system_prompt.get(lang) or self.system_prompt["en"]

    def instructions(self, lang: str) -> str:
        return self.rag_instructions.get(lang) or self.rag_instructions["en"]

    def example(self, lang: str) -> Example | None:
        return next((e for e in self.examples if e.lang == lang), None) or next(
            (e for e in self.examples if e.lang == "en"), None
        )

    def source_text(self, lang: str, paths: Sequence[str]) -> str:
        """The source line naming ``paths``: [a.md] and [b.md], or 【a.md】、【b.md】 in Chinese."""
        if lang == "zh":
            return self.source_label("zh") + "、".join(f"【{p}】" for p in paths)
        return self.source_label(lang) + " " + " and ".join(f"[{p}]" for p in paths)

    # ------------------------------------------------------------------ storage
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = {k: list(v) for k, v in self.labels.items()}
        data["examples"] = [{**asdict(e), "passages": [list(p) for p in e.passages]} for e in self.examples]
        data["not_covered"] = list(self.not_covered)
        return data

    @classmethod
    def from_json(cls, data: Any) -> StyleProfile:
        """A profile from its JSON form.

        Raises:
            ConfigError: not a profile (a missing or mistyped field, labels that do not line up).
        """
        try:
            examples = tuple(
                Example(
                    lang=str(e["lang"]),
                    question=str(e["question"]),
                    passages=tuple((str(p[0]), str(p[1]), str(p[2])) for p in e["passages"]),
                    answer=str(e["answer"]),
                    answer_without_passages=str(e["answer_without_passages"]),
                )
                for e in data.get("examples", [])
            )
            return cls(
                name=str(data["name"]),
                labels={str(k): tuple(str(x) for x in v) for k, v in data["labels"].items()},
                system_prompt={str(k): str(v) for k, v in data["system_prompt"].items()},
                rag_instructions={str(k): str(v) for k, v in data["rag_instructions"].items()},
                examples=examples,
                not_covered=tuple(str(x) for x in data.get("not_covered", [])),
                answer_line=int(data.get("answer_line", 0)),
                source_line=int(data.get("source_line", 1)),
                max_answer={str(k): int(v) for k, v in data.get("max_answer", {"en": 60, "zh": 90}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ConfigError(
                f"not a style profile ({type(e).__name__}: {e}) — fix or delete the file"
            ) from e

    def with_changes(self, **changes: Any) -> StyleProfile:
        return replace(self, **changes)


def load_style(path: Path) -> StyleProfile:
    """The profile stored at ``path``.

    Raises:
        ConfigError: unreadable or not a profile (the message names the file).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the style profile {path}: {e} — fix or delete the file") from e
    try:
        return StyleProfile.from_json(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


NEUTRAL = StyleProfile(
    name="neutral",
    labels={"en": ("Answer:", "Source:"), "zh": ("答案：", "来源：")},
    system_prompt={
        "en": "You answer questions about a collection of documents.\n"
        "Write exactly two lines and nothing else:\n"
        "Answer: the direct answer in one or two short sentences, with names, numbers, options and "
        "commands copied exactly from the documents.\n"
        "Source: the file the answer comes from in square brackets, such as [guide/install.html]; "
        'if the documents do not answer the question, write "not covered by the documents."\n'
        "Use plain text only. Answer in English.",
        "zh": "你负责回答关于一组文档的问题。\n"
        "只写两行，不写其他内容：\n"
        "答案：用一两句简短的话直接回答，名称、数字、选项和命令照文档原文写。\n"
        "来源：用【】写出答案所依据的文件，例如【guide/install.html】；文档不能回答时写“文档未涵盖此问题。”\n"
        "只用纯文本。请用中文回答。",
    },
    rag_instructions={
        "en": "Answer from the passages below and name the file you used in the Source line. If the "
        "passages do not answer the question, say that the documents do not cover it.",
        "zh": "请根据下面的资料回答，并在“来源”一行写出所用文件。资料不能回答时，请说明文档未涵盖。",
    },
    examples=(
        Example(
            lang="en",
            question="How long are backups kept?",
            passages=(
                (
                    "admin/logging.md",
                    "Logging > Rotation",
                    "Log files rotate weekly and four old files are kept.",
                ),
                (
                    "admin/backups.md",
                    "Backups > Retention",
                    "Backups run nightly at 02:00. Each backup is kept for 14 days, then deleted.",
                ),
            ),
            answer="Answer: Each backup is kept for 14 days and then deleted.\nSource: [admin/backups.md]",
            answer_without_passages="Answer: I cannot tell how long backups are kept without the "
            "backup policy.\nSource: not covered by the documents.",
        ),
        Example(
            lang="zh",
            question="备份保留多久？",
            passages=(
                ("admin/logging.md", "日志 > 轮转", "日志文件每周轮转一次，保留最近四个旧文件。"),
                ("admin/backups.md", "备份 > 保留", "备份每晚 02:00 运行。每份备份保留 14 天后删除。"),
            ),
            answer="答案：每份备份保留 14 天，之后删除。\n来源：【admin/backups.md】",
            answer_without_passages="答案：没有备份策略，无法确定保留时间。\n来源：文档未涵盖此问题。",
        ),
    ),
    not_covered=("not covered", "general knowledge", "未涵盖", "通用知识"),
)


@dataclass(frozen=True)
class FormatReport:
    """Which checks passed; ``score`` is their share."""

    passed: dict[str, bool]

    @property
    def score(self) -> float:
        return sum(self.passed.values()) / len(self.passed)


def _label_lang(line: str, style: StyleProfile) -> str | None:
    for lang, labels in style.labels.items():
        if any(line.startswith(label) for label in labels):
            return lang
    return None


def _lines(answer: str) -> list[str]:
    return [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]


def check_format(answer: str, lang: str | None = None, style: StyleProfile = NEUTRAL) -> FormatReport:
    """Check ``answer`` against ``style``; ``lang`` defaults to the answer's own language."""
    lang = lang or detect_lang(answer)
    labels = style.labels_for(lang)
    n = len(labels)
    lines = _lines(answer)
    passed = dict.fromkeys(CHECKS, False)
    passed["line_count"] = len(lines) == n
    starts = [next((i for i, ln in enumerate(lines) if ln.startswith(lb)), -1) for lb in labels]
    passed["labels_in_order"] = (
        all(s >= 0 for s in starts) and starts == sorted(starts) and len(set(starts)) == n
    )
    passed["label_language"] = (
        bool(lines)
        and all(_label_lang(ln, style) in (lang, None) for ln in lines)
        and any(_label_lang(ln, style) == lang for ln in lines)
    )
    source = next((ln for ln in lines if ln.startswith(labels[style.source_line])), "")
    low = source.lower()
    passed["source_named"] = bool(SOURCE_RE.search(source)) or any(
        p.lower() in low for p in style.not_covered
    )
    passed["no_markdown"] = bool(lines) and not any(MARKDOWN_RE.search(ln) for ln in lines)
    label = labels[style.answer_line]
    body = next((ln[len(label) :].strip() for ln in lines if ln.startswith(label)), "")
    size = len(body) if lang == "zh" else len(body.split())
    passed["short_answer"] = 0 < size <= style.max_answer.get(lang, style.max_answer.get("en", 60))
    return FormatReport(passed)


def answer_line(answer: str, lang: str | None = None, style: StyleProfile = NEUTRAL) -> str:
    """The line that answers: the style's answer line (without its label), else the first
    non-empty line.

    >>> answer_line("Answer: 15 days.\\nSource: [hr/leave.md]")
    '15 days.'
    """
    lang = lang or detect_lang(answer)
    label = style.answer_label(lang)
    lines = _lines(answer)
    line = next((ln for ln in lines if ln.startswith(label)), lines[0] if lines else "")
    return line[len(label) :].strip() if line.startswith(label) else line


def format_score(answer: str, lang: str | None = None, style: StyleProfile = NEUTRAL) -> float:
    """The format score of ``answer`` against ``style``, in [0, 1]."""
    return check_format(answer, lang, style).score
