"""Datasets built from a collection's own passages: which passages to ask about, the prompt that
asks the base model for a question and key facts, the tolerant parser of its reply, the round
trip that asks the question again over the passage alone, the checks that keep or reject a row (each rejection carries a reason from ``REASONS``), references and
training answers in the collection's style, the out-of-domain rows, and the validation of
imported JSONL rows.

Everything here is pure: the model, the index and the files are the wiring's
(``app.wiring.datasets``). A key fact is kept only when it is a verbatim substring of its passage
and the round trip's answer says it too.

Above ~300 lines because it is the whole pure side of a dataset build, in the order a row goes
through it (passage choice, question prompt and parser, round trip and fact checks, reference and
training answer, out-of-domain rows, import validation); the pieces share the row's shape and the
rejection reasons, and nothing outside the build uses them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from domain.corpus_check import KINDS, LANGS, NEAR_DUP_THRESHOLD, SPLITS, cosine, normalize, trigram_vector
from domain.ports import Message
from domain.prompts import Prompt, build_prompt
from domain.style import CJK_RE, SOURCE_RE, StyleProfile, check_format, detect_lang
from domain.types import Chunk, Hit

REASONS = {
    "unparseable": "the model's reply has no QUESTION line or no FACT line",
    "empty_question": "the question is empty or too short",
    "wrong_language": "the question is not in the passage's language",
    "copies_passage": "the question copies the passage",
    "fact_not_verbatim": "a key fact is not a verbatim substring of the passage",
    "bad_fact": "a key fact is too short, too long or holds Markdown marks",
    "gives_answer_away": "the question already contains every key fact",
    "not_answered": "asked again with the passage alone, the model's answer does not hold a key fact",
    "near_duplicate": "the question is a near-duplicate of a kept question",
    "reference_not_in_style": "no reference in the collection's style fits the facts",
    "answer_not_in_style": "the model's answer fails the style's format checks",
    "answer_missing_fact": "the model's answer leaves out a key fact",
    "wrong_source": "the model's answer names another file as its source",
    "said_not_covered": "the model's answer says the documents do not cover the question",
    "copies_example": "a line of the model's answer is copied from the style's worked example",
    "no_general_phrase": "the style has no phrase for questions no document covers",
    "generation_failed": "the model failed to produce text",
    "duplicate_id": "a row with this id is stored already",
}
QUESTION_PREFILL = "QUESTION:"
MIN_PASSAGE = {"en": 12, "zh": 30}  # words (en) or characters (zh) a passage needs to be asked about
FACT_SIZE = {"en": (1, 20), "zh": (2, 40)}  # (min, max) words or characters of a key fact
MAX_FACTS = 3
PROSE_SENTENCE = {"en": 8, "zh": 15}  # a sentence this long counts as prose
PROSE_SHARE = 0.5
MIN_RUN = 0.6  # share of a fact's words a verbatim run must keep to stand for it
ATTEMPTS_PER_ROW = 4  # passages tried per wanted row before a phase gives up
CHECK_PREFILL = "ANSWER:"
ROUND_TRIP_SHARE = 0.5  # share of a fact's content words the round-trip answer must hold
RESTATED_SHARE = 0.8  # a fact with this share of its content words in the question restates it
NONE_REPLIES = frozenset({"none", "n/a", "无", "没有", "不适用"})
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "by",
        "with",
        "as",
        "at",
        "from",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "can",
        "may",
        "will",
        "which",
        "what",
        "how",
        "when",
        "where",
        "who",
        "why",
        "do",
        "does",
    ]
)
_STOP_CHARS = frozenset("的了是在和与或及把被这那一个")
FALLBACK_LINE = {"en": "See the source document for details.", "zh": "详情请查看来源文件。"}
OOD_LINE = {
    "en": "No document in this collection covers this question.",
    "zh": "本集合的文档未涉及这个问题。",
}
# General questions no document answers: (question, answer, key fact) per language.
GENERAL_QUESTIONS = {
    "en": (
        ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "Tokyo"),
        ("How many days does a leap year have?", "A leap year has 366 days.", "366"),
        ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au.", "Au"),
        ("Which is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean.", "Pacific"),
        ("How many sides does a hexagon have?", "A hexagon has 6 sides.", "6"),
        ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.", "Shakespeare"),
        ("How many planets orbit the Sun?", "Eight planets orbit the Sun.", "Eight"),
        ("At what temperature in Celsius does water boil at sea level?", "Water boils at 100 °C.", "100"),
    ),
    "zh": (
        ("日本的首都是哪座城市？", "日本的首都是东京。", "东京"),
        ("一周有几天？", "一周有 7 天。", "7"),
        ("金的化学符号是什么？", "金的化学符号是 Au。", "Au"),
        ("地球上最大的海洋是哪个？", "地球上最大的海洋是太平洋。", "太平洋"),
        ("六边形有几条边？", "六边形有 6 条边。", "6"),
        ("《红楼梦》的作者是谁？", "《红楼梦》的作者是曹雪芹。", "曹雪芹"),
        ("一小时有多少分钟？", "一小时有 60 分钟。", "60"),
        ("水在标准大气压下的沸点是多少摄氏度？", "水在标准大气压下的沸点是 100 °C。", "100"),
    ),
}

_LINE_PREFIX = re.compile(r"^\s*(?:#+\s*(?:\d+(?:\.\d+)*\.?\s+)?|[-*+•]\s+|\d+[.)]\s+|>\s*)")
_MARKUP = re.compile(r"\*\*|__|`")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])")
_BOLD = r"(?:\*\*|__)?"
_LABEL = re.compile(
    rf"^{_BOLD}(?P<label>key\s*facts?|facts?|questions?|q|关键事实|事实|问题)\s*\d*\s*{_BOLD}\s*[:：.\-–]"
    rf"\s*{_BOLD}\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’「」『』"
T = TypeVar("T")


class Reject(Exception):
    """A candidate row that is not kept: ``reason`` is a key of ``REASONS``, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Draft:
    """What the model proposed for a passage: a question and its key facts."""

    question: str
    facts: tuple[str, ...]


# ----------------------------------------------------------------------------- passages
def chunk_lang(chunk: Chunk) -> str:
    return chunk.lang if chunk.lang in LANGS else detect_lang(chunk.text)


def text_size(text: str, lang: str) -> int:
    """Words in English, characters (without spaces) in Chinese."""
    return len(re.sub(r"\s+", "", text)) if lang == "zh" else len(text.split())


def passage_order(chunks: Sequence[Chunk], *, seed: int) -> list[Chunk]:
    """The passages long enough to ask about, in a seeded order spread over languages and files:
    languages take turns, and within a language the files take turns (each file's passages and
    the order of files shuffled by ``seed``). The same chunks and seed give the same order."""
    rng = random.Random(seed)
    by_lang: dict[str, dict[str, list[Chunk]]] = {}
    for c in sorted(chunks, key=lambda c: c.chunk_id):
        lang = chunk_lang(c)
        if text_size(c.text, lang) >= MIN_PASSAGE[lang] and is_prose(c.text, lang):
            by_lang.setdefault(lang, {}).setdefault(c.path, []).append(c)
    per_lang = []
    for lang in sorted(by_lang):
        files = [by_lang[lang][p] for p in sorted(by_lang[lang])]
        for f in files:
            rng.shuffle(f)
        rng.shuffle(files)
        per_lang.append(_take_turns(files))
    return _take_turns(per_lang)


def is_prose(text: str, lang: str) -> bool:
    """Whether most of ``text`` is in full sentences (``PROSE_SHARE`` of its size in sentences of
    ``PROSE_SENTENCE`` words or characters), not a table of contents or a list of names: a question
    about a list of headings has no answer to check.

    >>> is_prose("Backups run nightly at 02:00. Each backup is kept for 14 days, then deleted.", "en")
    True
    >>> is_prose("2.1. Packages\\n2.2. Archive sites\\n2.3. Areas\\n2.4. Suites and codenames", "en")
    False
    """
    sents = sentences(text)
    total = sum(text_size(x, lang) for x in sents)
    long = sum(text_size(x, lang) for x in sents if text_size(x, lang) >= PROSE_SENTENCE[lang])
    return total > 0 and long / total >= PROSE_SHARE


def _take_turns(lists: Sequence[Sequence[T]]) -> list[T]:
    longest = max((len(x) for x in lists), default=0)
    return [x[i] for i in range(longest) for x in lists if i < len(x)]


def _table_row(line: str) -> str:
    """A Markdown table row as text ("cell: cell; cell"); "" for a |---| rule."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    cells = [c for c in cells if c and not re.fullmatch(r":?-{2,}:?", c)]
    zh = any(CJK_RE.search(c) for c in cells)
    head, rest = (cells[0], cells[1:]) if cells else ("", [])
    return head + (("：" if zh else ": ") + ("；" if zh else "; ").join(rest) if rest else "")


def sentences(text: str) -> list[str]:
    """The passage's sentences, each on one line with single spaces, without Markdown line marks
    and emphasis; a table row becomes one sentence ("cell: cell; cell")."""
    out = []
    for line in text.splitlines():
        line = _table_row(line) if line.strip().startswith("|") else line
        line = re.sub(r"\s+", " ", _MARKUP.sub("", _LINE_PREFIX.sub("", line))).strip()
        out += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return out


# ----------------------------------------------------------------------------- asking for a question
_EXAMPLE = {
    "en": (
        "admin/backups.md",
        "Backups run nightly at 02:00. Each backup is kept for 14 days, then deleted.",
        "How long is each backup kept?",
        ("kept for 14 days",),
    ),
    "zh": (
        "admin/backups.md",
        "备份每晚 02:00 运行。每份备份保留 14 天后删除。",
        "每份备份保留多久？",
        ("保留 14 天",),
    ),
}


def _ask(path: str, text: str, lang: str) -> str:
    language = "Chinese" if lang == "zh" else "English"
    return (
        f'Passage from {path}:\n"""\n{text.strip()}\n"""\n\n'
        "Write one question that this passage answers, the way a reader of these documents would "
        "ask it, without copying the passage. Then write 1 to 3 key facts: short phrases copied "
        f"word for word from the passage that answer the question. Write the question in {language}.\n"
        "Reply in exactly this format and nothing else:\n"
        "QUESTION: <the question>\nFACT: <a phrase copied from the passage>\n"
        "FACT: <another phrase, only if needed>"
    )


def question_messages(chunk: Chunk) -> list[Message]:
    """The chat that asks the model for a question and key facts about ``chunk`` (one worked
    exchange first); the reply is expected to continue ``QUESTION_PREFILL``."""
    lang = chunk_lang(chunk)
    path, text, question, facts = _EXAMPLE[lang]
    reply = f"QUESTION: {question}\n" + "\n".join(f"FACT: {f}" for f in facts)
    return [
        {"role": "system", "content": "You write test questions about document passages."},
        {"role": "user", "content": _ask(path, text, lang)},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": _ask(chunk.path, chunk.text, lang)},
    ]


def _unwrap(text: str) -> str:
    """``text`` without the quotes or emphasis wrapped round all of it (marks inside stay)."""
    text, before = text.strip(), ""
    while text != before:
        before = text
        for mark in ("**", "__", "`"):
            if len(text) > 2 * len(mark) and text.startswith(mark) and text.endswith(mark):
                text = text[len(mark) : -len(mark)].strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
    return text


def parse_draft(reply: str) -> Draft:
    """The question and facts in the model's ``reply``. Tolerant: labels in any case, English or
    Chinese, numbered ("Fact 2:"), bulleted or bold; a label alone on its line takes the next
    line (a "Facts:" heading the unlabelled lines up to a blank line); "Facts: a; b" holds two; other
    unlabelled lines are ignored. Only the first question counts: a second one ends the reply.

    Raises:
        Reject: "unparseable" when no question or no fact is found.
    """
    question, facts = "", []
    pending, taken = "", 0  # a label whose text is on the next line(s); lines taken for it
    for raw in reply.splitlines():
        bare = _LINE_PREFIX.sub("", raw.strip()).strip()
        m = _LABEL.match(bare)
        if m:
            kind = "question" if m["label"].lower().startswith(("q", "问")) else "fact"
            if kind == "question" and question:
                break
            rest, plural = _unwrap(m["rest"]), m["label"].lower().endswith("s")
            pending, taken = ("" if rest else kind), 0
        elif pending and bare:
            kind, rest, plural = pending, _unwrap(bare), False
            pending, taken = ("" if kind == "question" else pending), taken + 1
        else:
            pending = pending if taken == 0 else ""  # a blank line ends a list of facts
            continue
        if kind == "question" and rest:
            question = _MARKUP.sub("", rest).strip()
        elif kind == "fact" and rest:
            facts += [_unwrap(p) for p in re.split(r"[;；]", rest)] if plural else [rest]
    facts = list(dict.fromkeys(f for f in facts if f))
    if not question or not facts:
        raise Reject("unparseable", f"question {'found' if question else 'missing'}, {len(facts)} fact(s)")
    return Draft(question, tuple(facts[:MAX_FACTS]))


# ----------------------------------------------------------------------------- checks
class QuestionSet:
    """Kept questions, for the near-duplicate check (``domain.corpus_check``'s measure)."""

    def __init__(self, threshold: float = NEAR_DUP_THRESHOLD) -> None:
        self.threshold = threshold
        self._vectors: list[tuple[str, Any]] = []

    def add(self, question: str) -> None:
        self._vectors.append((question, trigram_vector(question)))

    def near(self, question: str) -> str | None:
        """The kept question ``question`` nearly repeats, or None."""
        vec = trigram_vector(question)
        return next((q for q, v in self._vectors if cosine(vec, v) >= self.threshold), None)

    def __len__(self) -> int:
        return len(self._vectors)


def _spaced(fact: str, text: str) -> str | None:
    """The span of ``text`` that is ``fact`` up to whitespace (a line break where the model wrote a
    space), as it stands in ``text``; None when there is none."""
    words = fact.split()
    if not words:
        return None
    found = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return found.group(0) if found else None


def _verbatim(fact: str, text: str) -> str | None:
    """The span of ``text`` that ``fact`` stands for, copied from ``text`` (so always verbatim), or
    None: ``fact`` itself (a trailing full stop or comma may be dropped, whitespace may differ), else
    the longest run of its words (characters in Chinese) found in ``text`` when that run holds at
    least ``MIN_RUN`` of them — a model that copies a phrase and adds a word keeps the copied part.

    >>> _verbatim("kept for 14 days", "Each backup is kept\\nfor 14 days, then deleted.")
    'kept\\nfor 14 days'
    >>> _verbatim("each backup is kept for 14 days only", "Each backup is kept for 14 days, then deleted.")
    'backup is kept for 14 days'
    >>> _verbatim("it provides a secure password tool", "Each backup is kept for 14 days.") is None
    True
    """
    for candidate in (fact, fact.rstrip(".,;:。，；：")):
        if candidate and candidate in text:
            return candidate
        span = _spaced(candidate, text) if candidate else None
        if span:
            return span
    cjk = bool(CJK_RE.search(fact)) and len(fact.split()) <= 2
    units = list(re.sub(r"\s+", "", fact)) if cjk else fact.split()
    shortest = max(4 if cjk else 2, math.ceil(MIN_RUN * len(units)))
    for size in range(len(units) - 1, shortest - 1, -1):
        for start in range(len(units) - size + 1):
            part = units[start : start + size]
            span = (
                ("".join(part) if "".join(part) in text else None) if cjk else _spaced(" ".join(part), text)
            )
            if span and re.search(r"\w", span):
                return span
    return None


def check_question(draft: Draft, chunk: Chunk, kept: QuestionSet) -> str:
    """The draft's question, stripped, when it may be asked about ``chunk``.

    Raises:
        Reject: "wrong_language", "empty_question", "copies_passage" or "near_duplicate".
    """
    lang = chunk_lang(chunk)
    question = draft.question.strip()
    core = question.rstrip("?？ ")
    if question and detect_lang(question) != lang:
        raise Reject("wrong_language", f"question in {detect_lang(question)}, passage in {lang}")
    if text_size(question, lang) < (4 if lang == "zh" else 3):
        raise Reject("empty_question", repr(question))
    long_enough = text_size(core, lang) >= (15 if lang == "zh" else 8)
    if (long_enough and core.lower() in chunk.text.lower()) or cosine(
        trigram_vector(question), trigram_vector(chunk.text)
    ) >= NEAR_DUP_THRESHOLD:
        raise Reject("copies_passage", question)
    twin = kept.near(question)
    if twin is not None:
        raise Reject("near_duplicate", f"{question!r} ~ {twin!r}")
    return question


def content_units(text: str) -> set[str]:
    """The words of ``text`` (lower case, without the commonest ones), or its characters when it is
    Chinese: what two phrases are compared by.

    >>> sorted(content_units("How long is each backup kept?"))
    ['backup', 'each', 'kept', 'long']
    >>> sorted(content_units("保留 14 天"))
    ['1', '4', '保', '天', '留']
    """
    if CJK_RE.search(text):
        return {c for c in text if c.isalnum() and c not in _STOP_CHARS}
    return {w for w in re.findall(r"\w(?:[\w.+/-]*\w)?", text.lower()) if w not in _STOP_WORDS}


def share_in(part: set[str], whole: set[str]) -> float:
    """The share of ``part`` found in ``whole`` (0.0 for an empty ``part``)."""
    return len(part & whole) / len(part) if part else 0.0


def check_messages(question: str, chunk: Chunk) -> list[Message]:
    """The round trip: the question asked again over its passage alone, without the facts, for the
    shortest phrase of the passage that answers it (the reply continues ``CHECK_PREFILL``)."""
    return [
        {"role": "system", "content": "You answer questions about a text by copying from it."},
        {
            "role": "user",
            "content": (
                f'Text from {chunk.path}:\n"""\n{chunk.text.strip()}\n"""\n\nQuestion: {question}\n\n'
                "Copy the shortest phrase of the text that answers the question, word for word. "
                "If the text does not answer it, write NONE.\n"
                "Reply in exactly this format:\nANSWER: <the phrase>"
            ),
        },
    ]


def _fact_problem(found: str, lang: str) -> str | None:
    low, high = FACT_SIZE[lang]
    if not low <= text_size(found, lang) <= high or not re.search(r"\w", found):
        return f"{found!r} is too short or too long"
    if _MARKUP.search(found):  # answers in the style are plain text: it could never appear there
        return f"{found!r} holds Markdown marks"
    return None


def _round_trip_units(reply: str, question: str, chunk: Chunk) -> tuple[str | None, set[str]]:
    """The round trip's answer as a verbatim span of the passage (or None) and its content units.

    Raises:
        Reject: "not_answered" when it says the passage has no answer or only repeats the question.
    """
    body = reply.split(CHECK_PREFILL, 1)[-1] if CHECK_PREFILL in reply else reply
    answer = _unwrap(next((x for x in body.splitlines() if x.strip()), ""))
    if not answer or answer.rstrip(".。").strip().lower() in NONE_REPLIES:
        raise Reject("not_answered", "asked again, the model says the passage does not answer it")
    span = _verbatim(answer, chunk.text)
    got = content_units(span or answer)
    if share_in(got, content_units(question)) >= RESTATED_SHARE:
        raise Reject("not_answered", f"asked again, the model only repeats the question: {answer!r}")
    return span, got


def check_facts(question: str, draft: Draft, chunk: Chunk, reply: str | None = None) -> Draft:
    """The key facts of ``question``, as they stand in the passage. A proposed fact counts when it
    is verbatim (or snaps to a verbatim span, see ``_verbatim``), of a fact's size, and does not
    restate the question. With the round trip's ``reply`` (the question asked again over the
    passage alone, without the facts) the facts are settled with it:

    - the counting facts that the round-trip answer holds ``ROUND_TRIP_SHARE`` of;
    - else the round-trip answer itself, when it is verbatim, of a fact's size, and agrees with a
      proposed fact that was not verbatim: two independent replies that say the same thing.

    A question whose answer, asked again, is somewhere else in the passage has no key fact.

    Raises:
        Reject: "not_answered", "fact_not_verbatim", "bad_fact" or "gives_answer_away".
    """
    lang = chunk_lang(chunk)
    span, got = _round_trip_units(reply, question, chunk) if reply is not None else (None, set())
    asked = content_units(question)
    facts, problems, claims = [], [], []
    for fact in draft.facts:
        found = _verbatim(fact, chunk.text)
        problem = ("fact_not_verbatim", repr(fact)) if found is None else None
        size = _fact_problem(found, lang) if found is not None else None
        if size:
            problem = ("bad_fact", size)
        elif found is not None and share_in(content_units(found), asked) >= RESTATED_SHARE:
            problem = ("gives_answer_away", f"{found!r} restates the question")
        if problem:
            problems.append(problem)
            if problem[0] != "gives_answer_away":
                claims.append(content_units(fact))
        elif reply is None or share_in(content_units(found or ""), got) >= ROUND_TRIP_SHARE:
            facts.append(found or "")
        else:
            problems.append(
                ("not_answered", f"asked again, the model answers {span or reply!r}, not {found!r}")
            )
    if facts and (reply is not None or not problems):
        return Draft(question, tuple(dict.fromkeys(facts)))
    agrees = any(share_in(c, got) >= ROUND_TRIP_SHARE or share_in(got, c) >= ROUND_TRIP_SHARE for c in claims)
    if span is not None and agrees and _fact_problem(span, lang) is None:
        return Draft(question, (span,))
    reason, detail = next((p for p in problems if p[0] != "not_answered"), problems[0])
    raise Reject(reason, detail)


# ----------------------------------------------------------------------------- rows in the style
_REF = "reference_not_in_style"


def _line(label: str, text: str) -> str:
    return label + text if label.endswith(("：", " ")) else f"{label} {text}"


def _fits(body: str, lang: str, style: StyleProfile) -> bool:
    return 0 < text_size(body, lang) <= style.max_answer.get(lang, style.max_answer.get("en", 60))


def _answer_body(sents: list[str], facts: Sequence[str], lang: str, style: StyleProfile) -> tuple[str, int]:
    """The sentences holding the facts (a fact may run over two), or the facts themselves when
    those are too long; and the index of the last sentence used (-1 for the facts alone)."""
    joiner = "" if lang == "zh" else " "
    starts = [sum(len(x) + len(joiner) for x in sents[:i]) for i in range(len(sents))]
    flat = joiner.join(sents)
    used: set[int] = set()
    for fact in facts:
        at = flat.find(re.sub(r"\s+", " ", fact))
        if at < 0:
            used.clear()
            break
        used |= {i for i, st in enumerate(starts) if st < at + len(fact) and at < st + len(sents[i])}
    body = joiner.join(sents[i] for i in sorted(used))
    if used and _fits(body, lang, style):
        return body, max(used)
    joined = ("；" if lang == "zh" else "; ").join(facts)
    return joined + ("" if joined[-1] in ".!?。！？" else "。" if lang == "zh" else "."), -1


def _extra_line(sents: list[str], after: int, lang: str) -> str:
    """A sentence of the passage beside the answer's, for the style's other lines."""
    for i in (after + 1, after - 1):
        if not 0 <= i < len(sents) or sents[i].count("|") >= 2:  # none there, or a table row
            continue
        if 3 <= text_size(sents[i], lang) <= (80 if lang == "zh" else 40):
            return sents[i]
    return FALLBACK_LINE["zh" if lang == "zh" else "en"]


def _verified(
    text: str, facts: Sequence[str], lang: str, style: StyleProfile, *, format_reason: str, fact_reason: str
) -> str:
    """``text`` when it scores 1.0 on the style's checks and holds every fact (whitespace aside)."""
    report = check_format(text, lang, style)
    if report.score != 1.0:
        failed = ", ".join(k for k, ok in report.passed.items() if not ok)
        raise Reject(format_reason, f"fails {failed}")
    missing = [f for f in facts if normalize(f) not in normalize(text)]
    if missing:
        raise Reject(fact_reason, f"{missing!r} not in {text!r}")
    return text


def build_reference(chunk: Chunk, facts: Sequence[str], style: StyleProfile) -> str:
    """The reference answer: the style's lines in order — the sentence(s) holding the facts on the
    answer line, ``style.source_text`` on the source line, a neighbouring sentence elsewhere.

    Raises:
        Reject: "reference_not_in_style" when the result fails the style's checks.
    """
    lang = chunk_lang(chunk)
    sents = sentences(chunk.text)
    body, last = _answer_body(sents, facts, lang, style)
    lines = []
    for i, label in enumerate(style.labels_for(lang)):
        if i == style.answer_line:
            lines.append(_line(label, body))
        elif i == style.source_line:
            lines.append(style.source_text(lang, [chunk.path]))
        else:
            lines.append(_line(label, _extra_line(sents, last, lang)))
    return _verified("\n".join(lines), facts, lang, style, format_reason=_REF, fact_reason=_REF)


def split_for(row_id: str) -> str:
    """ "tune" or "heldout", fixed by a hash of the row id (about half each)."""
    return SPLITS[hashlib.sha256(row_id.encode("utf-8")).digest()[0] % 2]


def row_id(phase: str, lang: str, key: str) -> str:
    """A stable id: ``en-e-…`` (evaluation), ``en-t-…`` (training), ``en-o-…`` (out of domain)."""
    return f"{lang}-{phase[0]}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def eval_row(chunk: Chunk, draft: Draft, style: StyleProfile) -> dict[str, Any]:
    """An evaluation row (the eval.jsonl schema) for a checked draft.

    Raises:
        Reject: no reference in the style fits.
    """
    lang = chunk_lang(chunk)
    rid = row_id("eval", lang, chunk.chunk_id)
    return {
        "id": rid,
        "lang": lang,
        "kind": "fact",
        "question": draft.question,
        "reference": build_reference(chunk, draft.facts, style),
        "key_facts": list(draft.facts),
        "source": chunk.path,
        "split": split_for(rid),
    }


def _general_phrase(style: StyleProfile, lang: str) -> str:
    phrases = [p for p in style.not_covered if (detect_lang(p) == "zh") == (lang == "zh")]
    phrases.sort(key=lambda p: not any(w in p.lower() for w in ("general", "通用")))
    if not phrases:
        raise Reject("no_general_phrase", f"style {style.name!r} lists no not_covered phrase in {lang}")
    return phrases[0] + ("。" if lang == "zh" else ".")


def ood_questions(langs: Sequence[str], n: int, *, seed: int) -> list[tuple[str, str, str, str]]:
    """``n`` general questions as (lang, question, answer, fact), languages taking turns, seeded."""
    rng = random.Random(seed)
    pools = []
    for lang in sorted(set(langs) & set(GENERAL_QUESTIONS)):
        entries = [(lang, q, a, f) for q, a, f in GENERAL_QUESTIONS[lang]]
        rng.shuffle(entries)
        pools.append(entries)
    return _take_turns(pools)[:n]


def ood_row(lang: str, question: str, answer: str, fact: str, style: StyleProfile) -> dict[str, Any]:
    """An out-of-domain evaluation row (source null) in the style.

    Raises:
        Reject: the style cannot say that no document covers a question.
    """
    lines = []
    for i, label in enumerate(style.labels_for(lang)):
        if i == style.answer_line:
            lines.append(_line(label, answer))
        elif i == style.source_line:
            lines.append(_line(label, _general_phrase(style, lang)))
        else:
            lines.append(_line(label, OOD_LINE[lang]))
    rid = row_id("ood", lang, question)
    reference = _verified("\n".join(lines), [fact], lang, style, format_reason=_REF, fact_reason=_REF)
    return {
        "id": rid,
        "lang": lang,
        "kind": "out_of_domain",
        "question": question,
        "reference": reference,
        "key_facts": [fact],
        "source": None,
        "split": split_for(rid),
    }


# ----------------------------------------------------------------------------- training answers
def pick_distractors(chunk: Chunk, pool: Sequence[Chunk], rng: random.Random, n: int) -> list[Chunk]:
    """``n`` passages of other files from ``pool``, of ``chunk``'s language when there are enough."""
    others = [c for c in pool if c.path != chunk.path]
    same = [c for c in others if chunk_lang(c) == chunk_lang(chunk)]
    choice = same if len(same) >= n else others
    return rng.sample(choice, min(n, len(choice)))


def answer_prompt(
    question: str, chunk: Chunk, distractors: Sequence[Chunk], rng: random.Random, *, style: StyleProfile
) -> list[Message]:
    """The "rag" answering prompt with ``chunk`` at a random place among ``distractors`` (RAFT);
    when the passage budget would cut ``chunk`` off, it is moved to the top."""
    order = list(distractors)
    order.insert(rng.randint(0, len(order)), chunk)

    def prompt_for(chunks: Sequence[Chunk]) -> Prompt:
        hits = [Hit(c, 0.0, rank) for rank, c in enumerate(chunks, start=1)]
        return build_prompt("rag", question, hits, lang=chunk_lang(chunk), style=style)

    prompt = prompt_for(order)
    if not any(h.chunk.chunk_id == chunk.chunk_id for h in prompt.passages):
        prompt = prompt_for([chunk, *distractors])
    return list(prompt.messages)


def _same_file(named: str, path: str) -> bool:
    """Whether a file named in an answer is ``path`` (a folder left out or put before it counts)."""
    return named == path or path.endswith("/" + named) or named.endswith("/" + path)


def _body(line: str, labels: Sequence[str]) -> str:
    """A line without its label, whitespace normalised."""
    label = next((lb for lb in labels if line.startswith(lb)), "")
    return normalize(line[len(label) :])


def check_answer(
    reply: str, draft: Draft, chunk: Chunk, style: StyleProfile, *, distractors: Sequence[str] = ()
) -> str:
    """The model's training answer, normalised: lines after the style's last label dropped, one
    space after each English label, and the source line rewritten with ``style.source_text``. An answer naming a ``distractors`` file and
    not ``chunk``'s is rejected; a file named that was not shown at all (a small model copies the
    worked example's) is taken as a slip of the source line and rewritten like a missing one, but
    any other line copied from the worked example rejects the answer.

    Raises:
        Reject: wrong source, "not covered", fails the format checks, or leaves out a key fact.
    """
    lang = chunk_lang(chunk)
    labels = style.labels_for(lang)
    example = style.example(lang)
    copied = {_body(ln, labels) for ln in example.answer.splitlines()} if example else set()
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    end = next((i for i, ln in enumerate(lines) if ln.startswith(labels[-1])), len(lines) - 1)
    lines = lines[: end + 1]
    for i, line in enumerate(lines):
        label = next((lb for lb in labels if line.startswith(lb)), None)
        if label is not None:  # one space after an English label ("Answer:15 days" reads badly)
            lines[i] = line = _line(label, line[len(label) :].strip())
        if label != labels[style.source_line]:
            if _body(line, labels) in copied:
                raise Reject("copies_example", line)
            continue
        named = [a or b for a, b in SOURCE_RE.findall(line)]
        right = any(_same_file(n, chunk.path) for n in named)
        if not right and any(_same_file(n, d) for n in named for d in distractors):
            raise Reject("wrong_source", f"names {', '.join(named)}")
        if not named and any(p.lower() in line.lower() for p in style.not_covered):
            raise Reject("said_not_covered", line)
        lines[i] = style.source_text(lang, [chunk.path])
    return _verified(
        "\n".join(lines),
        draft.facts,
        lang,
        style,
        format_reason="answer_not_in_style",
        fact_reason="answer_missing_fact",
    )


def train_row(chunk: Chunk, draft: Draft, answer: str) -> dict[str, Any]:
    """A training row (the train.jsonl schema)."""
    lang = chunk_lang(chunk)
    return {
        "id": row_id("train", lang, chunk.chunk_id),
        "lang": lang,
        "question": draft.question,
        "source": chunk.path,
        "answer": answer,
    }


# ----------------------------------------------------------------------------- reviewing rows
def row_passage(row: dict[str, Any], chunks: Sequence[Chunk]) -> tuple[Chunk, list[str]] | None:
    """The passage of ``row``'s source file that holds the most of its key facts, with the facts as
    they stand in it (whitespace may differ): what a reviewer reads to judge the row. None for a
    row without key facts or a single source file, or when no passage of the file holds one (the
    file was re-indexed or the row was written by hand).

    >>> c = Chunk("c1", "admin/backups.md", "backups.md", "", "Each backup is kept\\nfor 14 days.", 0, 30)
    >>> row_passage({"source": "admin/backups.md", "key_facts": ["kept for 14 days"]}, [c])
    (Chunk(chunk_id='c1', ...), ['kept\\nfor 14 days'])
    """
    facts, source = row.get("key_facts") or [], row.get("source")
    if not isinstance(source, str) or not facts:
        return None
    best: tuple[Chunk, list[str]] | None = None
    for chunk in sorted((c for c in chunks if c.path == source), key=lambda c: c.start):
        found = [span for f in facts if isinstance(f, str) and (span := _spaced(f.strip(), chunk.text))]
        if found and (best is None or len(found) > len(best[1])):
            best = (chunk, found)
    return best


# ----------------------------------------------------------------------------- imported rows
REQUIRED = {
    "eval": ("id", "lang", "kind", "question", "reference"),
    "train": ("id", "lang", "question", "answer"),
}


def row_problem(row: Any, kind: str) -> str | None:
    """What is wrong with ``row`` as a ``kind`` ("eval" or "train") row, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for name in REQUIRED[kind]:
        if not isinstance(row.get(name), str) or not row[name].strip():
            return f"field {name!r} is missing or not a non-empty string"
    if row["lang"] not in LANGS:
        return f"lang {row['lang']!r} is not one of {', '.join(LANGS)}"
    src = row.get("source")
    if not (
        src is None
        or isinstance(src, str)
        or (isinstance(src, list) and all(isinstance(s, str) for s in src))
    ):
        return "field 'source' must be a path, a list of paths, or null"
    if kind == "eval":
        if row["kind"] not in KINDS:
            return f"kind {row['kind']!r} is not one of {', '.join(KINDS)}"
        if row.get("split", "tune") not in SPLITS:
            return f"split {row.get('split')!r} is not one of {', '.join(SPLITS)}"
        facts = row.get("key_facts")
        if facts is not None and not (
            isinstance(facts, list)
            and 1 <= len(facts) <= MAX_FACTS
            and all(isinstance(f, str) and f.strip() for f in facts)
        ):
            return "key_facts must be a list of 1-3 non-empty strings"
    return None


def parse_rows(text: str, kind: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of JSONL ``text`` and the problems found ("line N: …"; a repeated id is one).
    Evaluation rows without a split get ``split_for(id)``."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {number}: invalid JSON ({e.msg} at column {e.colno})")
            continue
        problem = row_problem(row, kind)
        if problem is None and row["id"] in seen:
            problem = f"id {row['id']!r} repeats line {seen[row['id']]}"
        if problem:
            problems.append(f"line {number}: {problem}")
            continue
        seen[row["id"]] = number
        if kind == "eval":
            row.setdefault("split", split_for(row["id"]))
        rows.append(row)
    return rows, problems


def merge_rows(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with rows of the same id replaced by ``new``'s (in place), then ``new``'s other rows."""
    by_id = {r["id"]: r for r in new}
    merged = [by_id.pop(r["id"], r) for r in old]
    return merged + [r for r in new if r["id"] in by_id]
