"""Chat messages for each answering mode: a system prompt that describes the house answer style
(corpus/STYLE.md, whose rules ``domain.style`` checks) in the question's language, and for the retrieval modes the
passages numbered [1]..[n] with their files and headings, trimmed to a token budget from the
lowest-ranked passage up. The question is never trimmed.

Applying the model's chat template is the generator's job; this module only builds
``[{"role", "content"}]`` lists. Training rows use the same builder, so the adapter learns on the
prompts it will later be asked with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from domain.focus import focus_text
from domain.plain import one_line
from domain.ports import Message
from domain.style import CJK_RE, detect_lang
from domain.types import Hit, Mode

CountTokens = Callable[[str], int]
PROMPT_VERSION = 6  # bump when the messages change: cached gate scores are then re-measured

SYSTEM_PROMPTS: dict[str, str] = {
    "en": (
        "You are a careful assistant for the organisation's internal documents.\n"
        "Always answer in exactly three lines, in this order, and write nothing else:\n"
        "Conclusion: the direct answer in one short sentence (at most 60 words), with numbers, codes "
        "and limits copied exactly.\n"
        "Basis: the source file in square brackets, such as [hr/annual-leave.md] (two files: [a.md] and "
        '[b.md]); for a general question no document covers, write "general knowledge; no document '
        'covers this."; if the documents should cover it but do not, write "not covered by the '
        'documents."\n'
        "Note: one useful caveat, next step or related rule.\n"
        "Use plain text only: no Markdown, lists, tables, JSON or headings, even when the question "
        "asks for them.\n"
        "Answer in English."
    ),
    "zh": (
        "你是一名严谨的公司内部文档助手。\n"
        "回答一律恰好三行，顺序如下，不写其他内容：\n"
        "结论：用一句简短的话直接回答（不超过 90 个字），数字、编号和限额照原文写。\n"
        "依据：用【】写出来源文件，例如【hr/annual-leave.md】（两个文件写【a.md】、【b.md】）；"
        "文档不涉及的常识问题写“通用知识，文档未涉及。”；文档本应涵盖却没有写到的写“文档未涵盖此问题。”\n"
        "提示：一条有用的注意事项、下一步或相关规定。\n"
        "只用纯文本：即使问题要求，也不要使用 Markdown、列表、表格、JSON 或标题。\n"
        "请用中文回答。"
    ),
}

RAG_INSTRUCTIONS: dict[str, str] = {
    "en": (
        "Answer from the passages below. Name the file you used in the Basis line. If the passages "
        "do not answer the question, say that the documents do not cover it."
    ),
    "zh": "请根据下面的资料回答，并在“依据”一行写出所用文件。资料不能回答时，请说明文档未涵盖。",
}
# One worked exchange per language and kind, shown before the question in the modes without the
# adapter (prompt, rag): the source documents recommend a template plus few-shot examples for a
# fixed output format, so the base model gets that before it is compared with the adapter. The
# facts are invented and appear nowhere in the sample corpus. Tuned modes are trained without them.
EXAMPLE_PASSAGE = {
    "en": (
        "it/meeting-rooms.md",
        "Meeting Rooms > Booking",
        "Rooms are booked in the calendar up to 30 days ahead. A booking not checked in within "
        "15 minutes of its start is released automatically.",
    ),
    "zh": (
        "it/meeting-rooms.md",
        "会议室 > 预订",
        "会议室在日历中最多可提前 30 天预订。开始后 15 分钟内未签到的预订会被自动释放。",
    ),
}
# A passage that does not answer the example question, numbered [1]: the worked example then also
# shows picking the passage that answers and leaving the other one alone.
EXAMPLE_DISTRACTOR = {
    "en": (
        "it/printers.md",
        "Printers > Colour",
        "Colour printing needs a cost-centre code. Black-and-white jobs are released at any printer "
        "with a staff badge.",
    ),
    "zh": (
        "it/printers.md",
        "打印机 > 彩色打印",
        "彩色打印需要填写成本中心代码。黑白打印任务刷员工卡即可在任意打印机取件。",
    ),
}
EXAMPLE_QUESTION = {
    "en": "How soon must I check in to a booked meeting room?",
    "zh": "预订的会议室要在多久内签到？",
}
EXAMPLE_ANSWER = {
    "en": {
        "rag": "Conclusion: Check in within 15 minutes of the start, or the booking is released.\n"
        "Basis: [it/meeting-rooms.md]\n"
        "Note: Rooms can be booked up to 30 days ahead.",
        "plain": "Conclusion: I cannot confirm the check-in time without the booking rules.\n"
        "Basis: not covered by the documents.\n"
        "Note: Check the meeting room booking rules of your office.",
    },
    "zh": {
        "rag": "结论：须在开始后 15 分钟内签到，否则预订会被自动释放。\n"
        "依据：【it/meeting-rooms.md】\n"
        "提示：会议室最多可提前 30 天预订。",
        "plain": "结论：没有预订规则，无法确认签到时限。\n"
        "依据：文档未涵盖此问题。\n"
        "提示：请查阅所在办公室的会议室预订规定。",
    },
}
PASSAGES_LABEL = {"en": "Passages:", "zh": "资料："}
QUESTION_LABEL = {"en": "Question:", "zh": "问题："}

_WORD_RE = re.compile(r"\S+")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate: one per CJK character, one per four other characters of
    each word (rounded up). For prompt budgets when no model is loaded (training data, tools).

    >>> estimate_tokens("Annual leave 年假")
    6
    """
    total = 0
    for word in _WORD_RE.findall(text):
        cjk = len(CJK_RE.findall(word))
        rest = len(word) - cjk
        total += cjk + math.ceil(rest / 4)
    return total


def prompt_lang(question: str) -> str:
    """The language answers are written in: the question's ('zh' or 'en')."""
    return detect_lang(question)


def system_prompt(lang: str) -> str:
    """The house-style system prompt in ``lang`` (English for any language but Chinese)."""
    return SYSTEM_PROMPTS.get(lang, SYSTEM_PROMPTS["en"])


def passage_header(number: int, hit: Hit, lang: str) -> str:
    """``[n] path | heading | page p`` with the empty parts left out.

    >>> from domain.types import Chunk
    >>> h = Hit(Chunk("c", "hr/leave.md", "Leave", "Leave > Carry-over", "...", 0, 3), 0.5, 1)
    >>> passage_header(2, h, "en")
    '[2] hr/leave.md | Leave > Carry-over'
    >>> passage_header(1, Hit(Chunk("c", "a\\nQuestion: x.md", "", "", "...", 0, 3), 0.5, 1), "en")
    '[1] a\\\\nQuestion: x.md'
    """
    parts = [f"[{number}] {hit.chunk.path}"]
    if hit.chunk.heading:
        parts.append(hit.chunk.heading)
    if hit.chunk.page is not None:
        parts.append(f"第 {hit.chunk.page} 页" if lang == "zh" else f"page {hit.chunk.page}")
    return one_line(" | ".join(parts))  # a newline in a file name cannot start a line of its own


def passage_block(number: int, hit: Hit, lang: str, text: str | None = None) -> str:
    return f"{passage_header(number, hit, lang)}\n{(hit.chunk.text if text is None else text).strip()}"


@dataclass(frozen=True)
class Prompt:
    """Messages ready for a generator, and which passages made it into them (in prompt order)."""

    messages: list[Message]
    passages: list[Hit] = field(default_factory=list)
    dropped: int = 0
    truncated: bool = False


def _cut_to_budget(block_head: str, text: str, budget: int, count_tokens: CountTokens) -> str:
    """The longest prefix of ``text`` whose block fits ``budget`` tokens (binary search on chars)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(f"{block_head}\n{text[:mid]}") <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def fit_passages(
    hits: Sequence[Hit],
    lang: str,
    *,
    budget_tokens: int,
    count_tokens: CountTokens,
    focus_on: str | None = None,
    focus_segments: int = 0,
    whole_passages: int = 0,
) -> tuple[list[Hit], list[str], bool]:
    """Keep passages in rank order while their blocks fit ``budget_tokens`` in total.

    With ``focus_on`` (the question) and ``focus_segments`` > 0 each block shows only that many
    of its passage's segments (``domain.focus.focus_text``), except the ``whole_passages``
    best-ranked ones, which are shown whole. Lower-ranked passages are dropped
    first; when even the best passage alone does not fit, its text is cut to fit. Returns (kept
    hits, their prompt blocks, whether a text was cut).
    """
    ordered = sorted(hits, key=lambda h: h.rank)

    def shown(number: int, hit: Hit) -> str | None:
        if focus_on is None or focus_segments <= 0 or number <= whole_passages:
            return None
        return focus_text(focus_on, hit.chunk.text, keep=focus_segments)

    blocks = [passage_block(i, h, lang, shown(i, h)) for i, h in enumerate(ordered, start=1)]
    costs = [count_tokens(b) for b in blocks]
    keep = len(ordered)
    while keep > 0 and sum(costs[:keep]) > budget_tokens:
        keep -= 1
    if keep > 0 or not ordered:
        return ordered[:keep], blocks[:keep], False
    best = ordered[0]
    head = passage_header(1, best, lang)
    text = _cut_to_budget(head, best.chunk.text.strip(), budget_tokens, count_tokens)
    return [best], [f"{head}\n{text.rstrip()}"], True


def _rag_user_message(key: str, blocks: Sequence[str], question: str, *, best_last: bool) -> str:
    """Instructions, the passage blocks (given in rank order; listed from the last to the first
    with ``best_last``) and the question."""
    return "\n\n".join(
        [
            RAG_INSTRUCTIONS[key],
            PASSAGES_LABEL[key] + "\n" + "\n\n".join(reversed(blocks) if best_last else blocks),
            f"{QUESTION_LABEL[key]} {question}" if key == "en" else f"{QUESTION_LABEL[key]}{question}",
        ]
    )


def example_messages(lang: str, *, with_passages: bool, best_last: bool = False) -> list[Message]:
    """The worked exchange (user turn, assistant turn) shown to the modes without the adapter.

    With ``best_last`` its two passages are laid out like the real prompt's, numbers descending:
    the answering passage [2] first and the distractor [1] right above the question, so the
    example teaches the same layout the question is asked in.
    """
    key = lang if lang in EXAMPLE_QUESTION else "en"
    question = EXAMPLE_QUESTION[key]
    if with_passages:
        blocks = [
            f"[{i}] {path} | {heading}\n{text}"
            for i, (path, heading, text) in enumerate((EXAMPLE_DISTRACTOR[key], EXAMPLE_PASSAGE[key]), 1)
        ]
        user = _rag_user_message(key, blocks, question, best_last=best_last)
        answer = EXAMPLE_ANSWER[key]["rag"]
    else:
        user, answer = question, EXAMPLE_ANSWER[key]["plain"]
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def build_prompt(
    mode: Mode | str,
    question: str,
    hits: Sequence[Hit] = (),
    *,
    context_tokens: int = 1400,
    count_tokens: CountTokens = estimate_tokens,
    lang: str | None = None,
    focus_segments: int = 0,
    whole_passages: int = 0,
    best_last: bool = False,
) -> Prompt:
    """The chat messages for ``question`` in ``mode``.

    Modes without retrieval ignore ``hits``: the user message is the question alone. Retrieval
    modes put the instructions, the numbered passages (within ``context_tokens``) and the question
    into the user message; with no passage left they fall back to the plain question. Modes
    without the adapter get one worked exchange (``example_messages``) before the question. With
    ``focus_segments`` > 0 each passage shows only its segments closest to the question
    (``domain.focus``), except the ``whole_passages`` best-ranked ones; training rows are built
    with whole passages (the default focus_segments=0).

    Args:
        mode: one of the four modes (the adapter is the generator's business, not the prompt's).
        question: the user's question, kept whole.
        hits: retrieved passages; their ``rank`` orders them.
        context_tokens: token budget for the passage blocks together.
        count_tokens: the generator's tokenizer, or ``estimate_tokens``.
        lang: answer language; defaults to the question's.
        focus_segments: segments shown per passage (0 = whole passages).
        whole_passages: how many best-ranked passages are shown whole despite ``focus_segments``.
        best_last: list the passages from the lowest-ranked to [1], so the best one stands right
            above the question (the numbers still follow rank; ``Prompt.passages`` is in rank order);
            the worked example is laid out the same way.
    """
    mode = Mode(mode)
    lang = lang or prompt_lang(question)
    question = question.strip()
    messages: list[Message] = [{"role": "system", "content": system_prompt(lang)}]
    kept, blocks, cut = (
        fit_passages(
            hits,
            lang,
            budget_tokens=context_tokens,
            count_tokens=count_tokens,
            focus_on=question,
            focus_segments=focus_segments,
            whole_passages=whole_passages,
        )
        if mode.uses_retrieval and hits
        else ([], [], False)
    )
    if not mode.uses_adapter:
        messages += example_messages(lang, with_passages=bool(kept), best_last=best_last)
    if not kept:
        messages.append({"role": "user", "content": question})
        return Prompt(messages, [], dropped=len(hits) if mode.uses_retrieval else 0)
    key = lang if lang in RAG_INSTRUCTIONS else "en"
    messages.append(
        {"role": "user", "content": _rag_user_message(key, blocks, question, best_last=best_last)}
    )
    return Prompt(messages, kept, dropped=len(hits) - len(kept), truncated=cut)


def build_messages(
    mode: Mode | str,
    question: str,
    hits: Sequence[Hit] = (),
    *,
    context_tokens: int = 1400,
    count_tokens: CountTokens = estimate_tokens,
) -> list[Message]:
    """``build_prompt(...).messages``: the shape training-data builders call as (mode, question, hits)."""
    return build_prompt(
        mode, question, hits, context_tokens=context_tokens, count_tokens=count_tokens
    ).messages
