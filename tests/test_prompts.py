"""Golden-value tests of the prompt builder: exact messages per mode and language, passage
numbering with files and headings, and the token budget that trims passages but never the question."""

from __future__ import annotations

from functools import partial

import pytest

from domain import prompts, style
from domain.focus import focus_text, segments
from domain.prompts import estimate_tokens
from domain.types import Mode
from tests.fakes_answer import SAMPLE_CHUNKS, make_chunk, make_hit
from tests.styles import SAMPLE_STYLE

# The golden prompts below are the sample collection's (its style profile, corpus/style.json).
build_messages = partial(prompts.build_messages, style=SAMPLE_STYLE)
build_prompt = partial(prompts.build_prompt, style=SAMPLE_STYLE)
example_messages = partial(prompts.example_messages, style=SAMPLE_STYLE)
format_score = partial(style.format_score, style=SAMPLE_STYLE)


def system_prompt(lang: str) -> str:
    return prompts.system_prompt(lang, SAMPLE_STYLE)


GOLDEN_SYSTEM_EN = (
    "You are a careful assistant for the organisation's internal documents.\n"
    "Always answer in exactly three lines, in this order, and write nothing else:\n"
    "Conclusion: the direct answer in one short sentence (at most 60 words), with numbers, codes and "
    "limits copied exactly.\n"
    "Basis: the source file in square brackets, such as [hr/annual-leave.md] (two files: [a.md] and "
    '[b.md]); for a general question no document covers, write "general knowledge; no document covers '
    'this."; if the documents should cover it but do not, write "not covered by the documents."\n'
    "Note: one useful caveat, next step or related rule.\n"
    "Use plain text only: no Markdown, lists, tables, JSON or headings, even when the question asks for them.\n"
    "Answer in English."
)
GOLDEN_SYSTEM_ZH = (
    "你是一名严谨的公司内部文档助手。\n"
    "回答一律恰好三行，顺序如下，不写其他内容：\n"
    "结论：用一句简短的话直接回答（不超过 90 个字），数字、编号和限额照原文写。\n"
    "依据：用【】写出来源文件，例如【hr/annual-leave.md】（两个文件写【a.md】、【b.md】）；"
    "文档不涉及的常识问题写“通用知识，文档未涉及。”；文档本应涵盖却没有写到的写“文档未涵盖此问题。”\n"
    "提示：一条有用的注意事项、下一步或相关规定。\n"
    "只用纯文本：即使问题要求，也不要使用 Markdown、列表、表格、JSON 或标题。\n"
    "请用中文回答。"
)
QUESTION = "How many days of annual leave do I get?"


def hits():
    leave, sick, travel = SAMPLE_CHUNKS[:3]
    return [make_hit(leave, 1, dense=0.83), make_hit(sick, 2, dense=0.7), make_hit(travel, 3, dense=0.6)]


GOLDEN_EXAMPLE_PLAIN_EN = [
    {"role": "user", "content": "How soon must I check in to a booked meeting room?"},
    {
        "role": "assistant",
        "content": "Conclusion: I cannot confirm the check-in time without the booking rules.\n"
        "Basis: not covered by the documents.\n"
        "Note: Check the meeting room booking rules of your office.",
    },
]
GOLDEN_EXAMPLE_RAG_ZH = [
    {
        "role": "user",
        "content": "请根据下面的资料回答，并在“依据”一行写出所用文件。资料不能回答时，请说明文档未涵盖。\n\n"
        "资料：\n[1] it/printers.md | 打印机 > 彩色打印\n"
        "彩色打印需要填写成本中心代码。黑白打印任务刷员工卡即可在任意打印机取件。\n\n"
        "[2] it/meeting-rooms.md | 会议室 > 预订\n"
        "会议室在日历中最多可提前 30 天预订。开始后 15 分钟内未签到的预订会被自动释放。\n\n"
        "问题：预订的会议室要在多久内签到？",
    },
    {
        "role": "assistant",
        "content": "结论：须在开始后 15 分钟内签到，否则预订会被自动释放。\n"
        "依据：【it/meeting-rooms.md】\n"
        "提示：会议室最多可提前 30 天预订。",
    },
]


def test_prompt_mode_is_system_then_one_worked_exchange_then_question() -> None:
    assert build_messages(Mode.PROMPT, f"  {QUESTION} ", hits()) == [
        {"role": "system", "content": GOLDEN_SYSTEM_EN},
        *GOLDEN_EXAMPLE_PLAIN_EN,
        {"role": "user", "content": QUESTION},
    ]


def test_tuned_mode_is_system_plus_question_as_in_training() -> None:
    assert build_messages(Mode.TUNED, f"  {QUESTION} ", hits()) == [
        {"role": "system", "content": GOLDEN_SYSTEM_EN},
        {"role": "user", "content": QUESTION},
    ]


def test_worked_examples_follow_the_house_style() -> None:
    for lang in ("en", "zh"):
        for with_passages in (False, True):
            answer = example_messages(lang, with_passages=with_passages)[1]["content"]
            assert format_score(answer, lang) == 1.0, (lang, with_passages)


def test_every_mode_gets_the_house_style_system_prompt() -> None:
    for mode in Mode:
        assert build_messages(mode, QUESTION, hits())[0] == {"role": "system", "content": GOLDEN_SYSTEM_EN}
    assert system_prompt("zh") == GOLDEN_SYSTEM_ZH
    assert system_prompt("fr") == GOLDEN_SYSTEM_EN


def test_tuned_mode_ignores_passages() -> None:
    assert build_messages(Mode.TUNED, QUESTION, hits()) == build_messages(Mode.TUNED, QUESTION, [])


def test_rag_prompt_numbers_passages_and_names_files_and_headings() -> None:
    prompt = build_prompt(Mode.TUNED_RAG, QUESTION, list(reversed(hits())))
    assert prompt.messages[1] == {
        "role": "user",
        "content": (
            "Answer from the passages below. Name the file you used in the Basis line. If the passages "
            "do not answer the question, say that the documents do not cover it.\n\n"
            "Passages:\n"
            "[1] hr/annual-leave.md | Annual leave > Entitlement\n"
            "Annual leave is 15 working days per year. Unused days expire on 31 March.\n\n"
            "[2] hr/sick-leave.md | Sick leave\n"
            "Sick leave needs a doctor's note after 3 days. Tell your manager on the first day.\n\n"
            "[3] finance/travel-policy.md | Hotels\n"
            "The hotel cap is 680 yuan per night in tier-one cities. Book through the travel desk.\n\n"
            "Question: How many days of annual leave do I get?"
        ),
    }
    assert [h.chunk.chunk_id for h in prompt.passages] == ["leave-1", "sick-1", "travel-1"]
    assert (prompt.dropped, prompt.truncated) == (0, False)


def test_rag_mode_gets_the_worked_exchange_with_a_passage() -> None:
    chunk = make_chunk("p", "hr/手册.pdf", "年假十五天。", page=3, lang="zh")
    rag = build_messages(Mode.RAG, "年假有几天？", [make_hit(chunk, 1)])
    tuned_rag = build_messages(Mode.TUNED_RAG, "年假有几天？", [make_hit(chunk, 1)])
    assert rag == [tuned_rag[0], *GOLDEN_EXAMPLE_RAG_ZH, tuned_rag[1]]


def test_chinese_rag_prompt_with_page_and_no_heading() -> None:
    chunk = make_chunk("p", "hr/手册.pdf", "年假十五天。", page=3, lang="zh")
    messages = build_messages(Mode.TUNED_RAG, "年假有几天？", [make_hit(chunk, 1)])
    assert messages == [
        {"role": "system", "content": GOLDEN_SYSTEM_ZH},
        {
            "role": "user",
            "content": "请根据下面的资料回答，并在“依据”一行写出所用文件。资料不能回答时，请说明文档未涵盖。\n\n"
            "资料：\n[1] hr/手册.pdf | 第 3 页\n年假十五天。\n\n问题：年假有几天？",
        },
    ]


def words(text: str) -> int:
    return len(text.split())


def test_budget_drops_lowest_ranked_passages_first_and_keeps_the_question() -> None:
    # Blocks cost 21, 21 and 20 words (header + text); a budget of 42 keeps the first two.
    prompt = build_prompt(Mode.RAG, QUESTION, hits(), context_tokens=42, count_tokens=words)
    assert [h.chunk.chunk_id for h in prompt.passages] == ["leave-1", "sick-1"]
    assert prompt.dropped == 1
    assert prompt.messages[-1]["content"].endswith("\n\nQuestion: How many days of annual leave do I get?")
    assert "[3]" not in prompt.messages[-1]["content"]


def test_budget_cuts_the_best_passage_when_nothing_fits_whole() -> None:
    long_question = "why " * 200
    # The first block's header alone is 7 words, so a budget of 12 leaves 5 words of its text.
    prompt = build_prompt(Mode.RAG, long_question, hits(), context_tokens=12, count_tokens=words)
    content = prompt.messages[-1]["content"]
    assert prompt.truncated and prompt.dropped == 2
    assert "[1] hr/annual-leave.md | Annual leave > Entitlement\nAnnual leave is 15 working\n\n" in content
    assert content.endswith("Question: " + long_question.strip())


def test_rag_without_hits_falls_back_to_the_plain_question() -> None:
    assert build_messages(Mode.RAG, QUESTION, []) == build_messages(Mode.PROMPT, QUESTION, [])


def test_estimate_tokens_worked_example() -> None:
    # "Annual"(6 chars → 2) + "leave"(5 → 2) + "年假"(2 CJK → 2) = 6
    assert estimate_tokens("Annual leave 年假") == 6


@pytest.mark.parametrize(
    ("answer", "lang"),
    [
        ("Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Ask the People Desk.", "en"),
        ("Conclusion: 550 then 680.\nBasis: [a.md] and [b.md]\nNote: Use the current one.", "en"),
        ("Conclusion: Paris.\nBasis: general knowledge; no document covers this.\nNote: None needed.", "en"),
        ("Conclusion: Unknown.\nBasis: not covered by the documents.\nNote: Ask the desk.", "en"),
        ("结论：十五天。\n依据：【hr/annual-leave.md】\n提示：请咨询人事服务台。", "zh"),
        ("结论：先 550 后 680。\n依据：【a.md】、【b.md】\n提示：按现行版。", "zh"),
        ("结论：北京。\n依据：通用知识，文档未涉及。\n提示：无。", "zh"),
        ("结论：无法回答。\n依据：文档未涵盖此问题。\n提示：请联系灯塔服务台。", "zh"),
    ],
)
def test_every_basis_form_the_prompt_teaches_passes_the_checker(answer: str, lang: str) -> None:
    assert format_score(answer, lang) == 1.0


def test_rag_mode_reads_the_segments_closest_to_the_question() -> None:
    """focus_segments=1: the RAG and tuned + RAG prompts show the one sentence sharing most
    trigrams with the question ("carry over" and "days" in "Carry over up to 5 days."); the kept
    passage is the whole hit; focus_segments=0 shows the whole passage."""
    text = "Annual leave is 15 days.\nCarry over up to 5 days. Ask the People Desk first."
    hit = make_hit(make_chunk("p", "hr/leave.md", text, heading="Leave"), 1)
    question = "How many days can I carry over?"
    rag = build_prompt(Mode.RAG, question, [hit], focus_segments=1)
    assert rag.messages[-1]["content"].split("\n\n")[1] == (
        "Passages:\n[1] hr/leave.md | Leave\nCarry over up to 5 days."
    )
    assert rag.passages == [hit]
    tuned = build_prompt(Mode.TUNED_RAG, question, [hit], focus_segments=1)
    assert "[1] hr/leave.md | Leave\nCarry over up to 5 days.\n\n" in tuned.messages[-1]["content"]
    whole = build_prompt(Mode.RAG, question, [hit], focus_segments=0)
    assert f"[1] hr/leave.md | Leave\n{text}" in whole.messages[-1]["content"]


def test_focus_keeps_passage_order_and_short_passages_whole() -> None:
    text = "## 年假\n| 工龄 | 天数 |\n|---|---|\n| 满 10 年 | 15 天 |\n年假可结转 5 天。须经人事服务台确认。"
    # Bigrams of "年假可以结转几天": 年假 假可 可以 以结 结转 转几 几天. "年假可结转 5 天。" shares
    # 年假, 假可, 结转 (3); "## 年假" shares 年假 (1); the others share none.
    assert focus_text("年假可以结转几天？", text, keep=2) == "## 年假\n年假可结转 5 天。"
    assert focus_text("年假可以结转几天？", "年假 5 天。", keep=2) == "年假 5 天。"
    assert segments(text)[:2] == ["## 年假", "| 工龄 | 天数 |"]


def test_whole_passages_shows_the_best_ranked_passages_whole_and_focuses_the_rest() -> None:
    """whole_passages=1 with focus_segments=1: passage [1] keeps all three sentences, passage [2]
    shows only its sentence closest to the question; whole_passages=0 focuses both."""
    first = "Annual leave is 15 days.\nCarry over up to 5 days. Ask the People Desk first."
    second = "Sick leave needs a note.\nCarry-over of sick days is not possible."
    hits = [
        make_hit(make_chunk("a", "hr/leave.md", first, heading="Leave"), 1),
        make_hit(make_chunk("b", "hr/sick.md", second, heading="Sick"), 2),
    ]
    question = "How many days can I carry over?"
    both = build_prompt(Mode.RAG, question, hits, focus_segments=1, whole_passages=1)
    assert both.messages[-1]["content"].split("\n\n")[1:3] == [
        f"Passages:\n[1] hr/leave.md | Leave\n{first}",
        "[2] hr/sick.md | Sick\nCarry-over of sick days is not possible.",
    ]
    focused = build_prompt(Mode.RAG, question, hits, focus_segments=1, whole_passages=0)
    assert focused.messages[-1]["content"].split("\n\n")[1] == (
        "Passages:\n[1] hr/leave.md | Leave\nCarry over up to 5 days."
    )


def test_best_last_lists_the_passages_from_the_lowest_ranked_up_and_keeps_their_numbers() -> None:
    prompt = build_prompt(Mode.RAG, QUESTION, list(reversed(hits())), best_last=True)
    assert prompt.messages[-1]["content"].split("\n\n")[1:] == [
        "Passages:\n[3] finance/travel-policy.md | Hotels\n"
        "The hotel cap is 680 yuan per night in tier-one cities. Book through the travel desk.",
        "[2] hr/sick-leave.md | Sick leave\n"
        "Sick leave needs a doctor's note after 3 days. Tell your manager on the first day.",
        "[1] hr/annual-leave.md | Annual leave > Entitlement\n"
        "Annual leave is 15 working days per year. Unused days expire on 31 March.",
        "Question: How many days of annual leave do I get?",
    ]
    assert [h.chunk.chunk_id for h in prompt.passages] == ["leave-1", "sick-1", "travel-1"]
    example = prompt.messages[1]["content"]
    assert example.index("[2] it/meeting-rooms.md") < example.index("[1] it/printers.md")
    assert example.rsplit("\n\n", 1)[1] == "Question: How soon must I check in to a booked meeting room?"
    ranked = build_prompt(Mode.RAG, QUESTION, hits()).messages[-1]["content"]
    assert ranked.index("[1] hr/annual-leave.md") < ranked.index("[3] finance/travel-policy.md")


def test_a_new_collections_neutral_style_prompts_and_checks_two_lines() -> None:
    """Without a profile of its own a collection answers in the neutral style: its system prompt,
    its own worked example (nothing of the sample's), and a checker that wants Answer / Source."""
    messages = prompts.build_messages(Mode.RAG, QUESTION, hits())
    assert messages[0]["content"] == style.NEUTRAL.system("en")
    example = messages[2]["content"]
    assert example.startswith("Answer: ") and "\nSource: [" in example
    assert "meeting" not in "".join(m["content"] for m in messages[:3])
    assert style.format_score(example, "en") == 1.0
    assert style.format_score(example, "en", SAMPLE_STYLE) < 1.0
    assert style.format_score("答案：保留 14 天。\n来源：【admin/backups.md】", "zh") == 1.0
    assert style.answer_line("Answer: 14 days.\nSource: [a.md]") == "14 days."
