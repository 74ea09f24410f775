"""Chat messages for each answering mode: the collection's style profile (``domain.style``) gives
the system prompt in the question's language, the instructions shown with passages and the worked
example; the retrieval modes add the passages numbered [1]..[n] with their files and headings,
trimmed to a token budget from the lowest-ranked passage up. The question is never trimmed.

Applying the model's chat template is the generator's job; this module only builds
``[{"role", "content"}]`` lists. Training rows use the same builder, so the adapter learns on the
prompts it will later be asked with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from domain.focus import closest_segment, focus_text
from domain.plain import one_line
from domain.ports import Message
from domain.style import CJK_RE, NEUTRAL, Example, StyleProfile, answer_line, detect_lang
from domain.types import Hit, Mode

CountTokens = Callable[[str], int]
PROMPT_VERSION = 8  # bump when the messages change: cached gate scores are then re-measured

PASSAGES_LABEL = {"en": "Passages:", "zh": "资料："}
# The line a retrieval answer starts with when it quotes its evidence (``domain.evidence``).
EVIDENCE_LABEL = {"en": "Evidence:", "zh": "证据："}
EVIDENCE_SEPARATOR = {"en": " ", "zh": ""}  # between the label and the quote
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


def system_prompt(lang: str, style: StyleProfile = NEUTRAL) -> str:
    """The style's system prompt in ``lang`` (English when the style has none in ``lang``)."""
    return style.system(lang)


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


def _rag_user_message(
    instructions: str, key: str, blocks: Sequence[str], question: str, *, best_last: bool
) -> str:
    """Instructions, the passage blocks (given in rank order; listed from the last to the first
    with ``best_last``) and the question."""
    return "\n\n".join(
        [
            instructions,
            PASSAGES_LABEL[key] + "\n" + "\n\n".join(reversed(blocks) if best_last else blocks),
            f"{QUESTION_LABEL[key]} {question}" if key == "en" else f"{QUESTION_LABEL[key]}{question}",
        ]
    )


def example_evidence(example: Example, style: StyleProfile = NEUTRAL) -> str:
    """The evidence line of a worked example: its label and the sentence of the example's
    passages closest to the example's answer line (``domain.focus.closest_segment``).

    >>> passages = (("a.md", "A", "Rooms are booked ahead. Check in within 15 minutes."),)
    >>> ex = Example("en", "How soon?", passages, "Answer: Within 15 minutes.\\nSource: [a.md]", "")
    >>> example_evidence(ex)
    'Evidence: Check in within 15 minutes.'
    """
    key = "zh" if example.lang == "zh" else "en"
    target = answer_line(example.answer, example.lang, style)
    quote = closest_segment(target, [text for _path, _heading, text in example.passages])
    return EVIDENCE_LABEL[key] + EVIDENCE_SEPARATOR[key] + quote


def example_messages(
    lang: str,
    *,
    with_passages: bool,
    best_last: bool = False,
    style: StyleProfile = NEUTRAL,
    evidence: bool = False,
) -> list[Message]:
    """The style's worked exchange (user turn, assistant turn) shown to the modes without the
    adapter; none when the style has no example.

    With ``best_last`` its passages are laid out like the real prompt's, numbers descending, so
    the example teaches the same layout the question is asked in; with ``evidence`` its answer
    starts with its evidence line (``example_evidence``), as a quoting answer does.
    """
    example = style.example(lang)
    if example is None:
        return []
    key = "zh" if example.lang == "zh" else "en"
    if with_passages and example.passages:
        blocks = [
            f"[{i}] {path} | {heading}\n{text}" for i, (path, heading, text) in enumerate(example.passages, 1)
        ]
        user = _rag_user_message(
            style.instructions(example.lang), key, blocks, example.question, best_last=best_last
        )
        answer = example.answer
        if evidence:
            answer = example_evidence(example, style) + "\n" + answer
    else:
        user, answer = example.question, example.answer_without_passages
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
    style: StyleProfile = NEUTRAL,
    evidence: bool = False,
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
        style: the collection's style profile (system prompt, instructions, worked example).
    """
    mode = Mode(mode)
    lang = lang or prompt_lang(question)
    question = question.strip()
    messages: list[Message] = [{"role": "system", "content": system_prompt(lang, style)}]
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
        messages += example_messages(
            lang, with_passages=bool(kept), best_last=best_last, style=style, evidence=evidence
        )
    if not kept:
        messages.append({"role": "user", "content": question})
        return Prompt(messages, [], dropped=len(hits) if mode.uses_retrieval else 0)
    key = "zh" if lang == "zh" else "en"
    user = _rag_user_message(style.instructions(lang), key, blocks, question, best_last=best_last)
    messages.append({"role": "user", "content": user})
    return Prompt(messages, kept, dropped=len(hits) - len(kept), truncated=cut)


def build_messages(
    mode: Mode | str,
    question: str,
    hits: Sequence[Hit] = (),
    *,
    context_tokens: int = 1400,
    count_tokens: CountTokens = estimate_tokens,
    style: StyleProfile = NEUTRAL,
) -> list[Message]:
    """``build_prompt(...).messages``: the shape training-data builders call as (mode, question, hits)."""
    return build_prompt(
        mode, question, hits, context_tokens=context_tokens, count_tokens=count_tokens, style=style
    ).messages
