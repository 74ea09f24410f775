"""Datasets built from a collection's documents: the parser and checks of ``domain.dataset_build``
on hand-made passages, whole builds through ``app.wiring.datasets`` and the `hybrid dataset` CLI
with a scripted model over a tiny index, and a background build killed with SIGKILL and resumed
with the tiny Llama."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app import cli
from domain import dataset_build as ds
from domain.style import NEUTRAL, StyleProfile, answer_line, format_score, load_style
from domain.types import Chunk

REPO = Path(__file__).resolve().parents[1]
SAMPLE_STYLE = load_style(REPO / "corpus" / "style.json")
EVAL_KEYS = ["id", "lang", "kind", "question", "reference", "key_facts", "source", "split"]
TRAIN_KEYS = ["id", "lang", "question", "source", "answer"]

DOCS = {
    "it/backups.md": "# Backups\n\nShared folders are copied every night at 02:00 to the backup server. "
    "Each copy is kept for 30 days and then deleted. A deleted file can be restored by the help desk "
    "within one working day.\n\n## Restore tests\n\nA restore test runs on the first Sunday of each quarter. "
    "The test result is filed in the operations log. Failed tests are repeated the following week.\n",
    "hr/leave.md": "# Leave\n\nEvery employee receives twenty days of paid holiday per year. "
    "Requests go to the manager at least two weeks in advance. Unused days expire at the end of March.\n\n"
    "## Sick leave\n\nSick leave needs no approval. Tell your team before nine in the morning. "
    "A doctor's note is needed after three days of absence.\n",
    "travel/trains.txt": "Trains are preferred to planes for trips shorter than four hours. "
    "Hotel costs are refunded up to 120 euros per night in capital cities. "
    "Receipts must be uploaded within ten days of the trip.\n\nRental cars need written approval from finance. "
    "Fuel is refunded at the pump price. Parking fines are never refunded.\n",
    "office/kitchen.md": "# Kitchen\n\nThe kitchen fridge is emptied every Friday at 16:00. "
    "Coffee beans are ordered by the front desk on Mondays. "
    "Broken appliances are reported through the facilities form.\n",
    "zh/报销.md": "# 报销\n\n差旅费用须在出差结束后十天内提交报销申请。超过期限的申请需要部门主管书面批准。"
    "每晚酒店费用在一线城市最高报销六百元。\n",
    "zh/门禁.md": "# 门禁\n\n员工进入办公楼时必须刷工卡并佩戴胸牌。访客须在前台登记并由接待人员陪同。"
    "工卡遗失须当天报告安保部门。\n",
}


def chunk(text: str, path: str = "it/backups.md", lang: str = "en", cid: str = "c1") -> Chunk:
    return Chunk(cid, path, "", "", text, 0, len(text), lang=lang)


BACKUPS = chunk(DOCS["it/backups.md"])
LEAVE_ZH = chunk(DOCS["zh/报销.md"], "zh/报销.md", "zh", "c2")


def test_passages_are_spread_over_languages_and_files_and_fixed_by_the_seed() -> None:
    long_en, long_zh = "word " * 20, "字" * 40
    chunks = [chunk(long_en, f"en/{f}.md", "en", f"{f}{i}") for f in "abc" for i in range(3)]
    chunks += [chunk(long_zh, "zh/d.md", "zh", f"d{i}") for i in range(2)]
    chunks.append(chunk("too short", "en/a.md", "en", "short"))
    order = ds.passage_order(chunks, seed=0)
    assert len(order) == 11 and "short" not in {c.chunk_id for c in order}
    assert [c.lang for c in order[:4]] == ["en", "zh", "en", "zh"]
    assert len({c.path for c in order[:6] if c.lang == "en"}) == 3
    assert [c.chunk_id for c in ds.passage_order(chunks[::-1], seed=0)] == [c.chunk_id for c in order]
    assert [c.chunk_id for c in ds.passage_order(chunks, seed=1)] != [c.chunk_id for c in order]


# ----------------------------------------------------------------------------- the model's reply
@pytest.mark.parametrize(
    ("reply", "question", "facts"),
    [
        (
            "QUESTION: How long is a copy kept?\nFACT: kept for 30 days",
            "How long is a copy kept?",
            ("kept for 30 days",),
        ),
        (
            'QUESTION: **How long is a copy kept?**\n\nKey facts:\n- "30 days"\n- 02:00\n\nHope this helps!',
            "How long is a copy kept?",
            ("30 days", "02:00"),
        ),
        (
            "Question:\nHow long?\nFacts: 30 days; 02:00\nQUESTION: another?\nFACT: x",
            "How long?",
            ("30 days", "02:00"),
        ),
        (
            "问题：报销申请要在多久内提交？\n事实：「十天内」\n关键事实 2：提交报销申请",
            "报销申请要在多久内提交？",
            ("十天内", "提交报销申请"),
        ),
        ("QUESTION: q?\nFACT: a\nFACT: b\nFACT: c\nFACT: d\nFACT: a", "q?", ("a", "b", "c")),
        (
            '**Question:** What is **it**?\n**Fact 1:** "**72 hours**"\nFact 2: `--rebuild`',
            "What is it?",
            ("72 hours", "--rebuild"),
        ),
    ],
)
def test_the_parser_tolerates_the_ways_a_model_writes_its_reply(reply, question, facts) -> None:
    assert ds.parse_draft(reply) == ds.Draft(question, facts)


@pytest.mark.parametrize(
    "reply", ["", "I am not sure what to ask.", "QUESTION: only a question?", "FACT: 30 days"]
)
def test_a_reply_without_a_question_or_a_fact_is_rejected_as_unparseable(reply) -> None:
    with pytest.raises(ds.Reject) as err:
        ds.parse_draft(reply)
    assert err.value.reason == "unparseable"


def settle(
    question: str, facts: tuple[str, ...], c: Chunk, kept: ds.QuestionSet, again: str = ""
) -> ds.Draft:
    """The checks of a build: the question, then its facts against the round trip's reply (by
    default the reply that repeats the first proposed fact)."""
    draft = ds.Draft(question, facts)
    asked = ds.check_question(draft, c, kept)
    return ds.check_facts(asked, draft, c, again or f"ANSWER: {facts[0]}")


def test_only_facts_copied_verbatim_from_the_passage_are_kept() -> None:
    kept = ds.QuestionSet()
    draft = settle("How long is a copy kept?", ("kept for 30 days.",), BACKUPS, kept)
    assert draft.facts == ("kept for 30 days",)  # the full stop is dropped; the rest is verbatim
    assert all(f in BACKUPS.text for f in draft.facts)

    def reason(question: str, facts: tuple[str, ...], c: Chunk = BACKUPS, again: str = "") -> str:
        with pytest.raises(ds.Reject) as err:
            settle(question, facts, c, kept, again)
        return err.value.reason

    assert reason("How long is a copy kept?", ("kept for thirty days",)) == "fact_not_verbatim"
    assert reason("Copy?", ("30 days",)) == "empty_question"
    assert reason("备份保留多久？", ("30 days",)) == "wrong_language"
    assert reason("Shared folders are copied every night at 02:00 to the backup server?", ("02:00",)) == (
        "copies_passage"
    )
    assert reason("Is each copy kept for 30 days?", ("30 days",), again="ANSWER: 30 days") == (
        "not_answered"  # the round trip's answer only repeats the question
    )
    assert reason(
        "Is each copy kept for 30 days?", ("30 days",), again="ANSWER: kept for 30 days and then deleted"
    ) == ("gives_answer_away")
    long_fact = ds.sentences(BACKUPS.text)[1] + " " + ds.sentences(BACKUPS.text)[2]
    assert reason("How long is every copy kept?", (long_fact,)) == "bad_fact"
    code = chunk("Run `hybrid index --rebuild` to embed every file again.", "cli.md")
    assert reason("How do I embed every file again?", ("Run `hybrid index --rebuild`",), code) == "bad_fact"
    kept.add("How long is a copy kept?")
    assert reason("How long is a copy kept ?", ("30 days",)) == "near_duplicate"
    zh = settle("报销申请要在多久内提交？", ("十天内",), LEAVE_ZH, ds.QuestionSet())
    assert zh.facts == ("十天内",)
    # a fact that restates the question does not answer it
    assert (
        reason(
            "When is a deleted file restored by the help desk?",
            ("restored by the help desk",),
            again="ANSWER: within one working day",
        )
        == "gives_answer_away"
    )


def test_the_round_trip_decides_which_facts_answer_the_question() -> None:
    def facts(question: str, proposed: tuple[str, ...], again: str, c: Chunk = BACKUPS) -> tuple[str, ...]:
        return settle(question, proposed, c, ds.QuestionSet(), again).facts

    def reason(question: str, proposed: tuple[str, ...], again: str, c: Chunk = BACKUPS) -> str:
        with pytest.raises(ds.Reject) as err:
            settle(question, proposed, c, ds.QuestionSet(), again)
        return err.value.reason

    q = "How long is a copy kept?"
    assert facts(q, ("kept for 30 days",), "ANSWER: kept for 30 days") == ("kept for 30 days",)
    assert facts(q, ("kept for 30 days",), 'ANSWER: "30 days"\nbecause…') == ("kept for 30 days",)
    # only the facts the round trip confirms stay
    assert facts(q, ("every night at 02:00", "kept for 30 days"), "ANSWER: 30 days") == ("kept for 30 days",)
    # a proposed fact that is not verbatim, confirmed by a verbatim round-trip answer: that answer
    assert facts(q, ("kept for thirty days",), "ANSWER: kept for 30 days") == ("kept for 30 days",)
    assert reason(q, ("kept for 30 days",), "ANSWER: every night at 02:00") == "not_answered"  # elsewhere
    assert reason(q, ("kept for 30 days",), "ANSWER: NONE") == "not_answered"
    assert reason(q, ("kept for 30 days",), "ANSWER:") == reason(q, ("kept for 30 days",), "None.")
    assert reason("How many copies are made?", ("30",), "ANSWER: 3") == "not_answered"  # digits, not "30"
    zh = "报销申请要在多久内提交？"
    assert facts(zh, ("十天内",), "ANSWER: 出差结束后十天内", LEAVE_ZH) == ("十天内",)
    assert reason(zh, ("十天内",), "ANSWER: 部门主管书面批准", LEAVE_ZH) == "not_answered"
    messages = ds.check_messages(q, BACKUPS)
    assert BACKUPS.text.strip() in messages[-1]["content"]
    assert "30 days" not in messages[-1]["content"].split('"""')[-1]  # only the passage and the question


THREE_LINES = StyleProfile(
    name="three",
    labels={"en": ("Answer:", "Source:", "Tip:"), "zh": ("答案：", "来源：", "提示：")},
    system_prompt={"en": "Answer in three lines."},
    rag_instructions={"en": "Use the passages."},
    not_covered=("not covered",),
)


def test_references_follow_the_style_with_any_number_of_lines() -> None:
    assert ds.build_reference(BACKUPS, ["30 days"], NEUTRAL) == (
        "Answer: Each copy is kept for 30 days and then deleted.\nSource: [it/backups.md]"
    )
    assert ds.build_reference(BACKUPS, ["30 days"], THREE_LINES) == (
        "Answer: Each copy is kept for 30 days and then deleted.\nSource: [it/backups.md]\n"
        "Tip: A deleted file can be restored by the help desk within one working day."
    )
    assert ds.build_reference(LEAVE_ZH, ["十天内"], SAMPLE_STYLE) == (
        "结论：差旅费用须在出差结束后十天内提交报销申请。\n依据：【zh/报销.md】\n提示：超过期限的申请需要部门主管书面批准。"
    )
    row = ds.eval_row(BACKUPS, ds.Draft("How long is a copy kept?", ("30 days", "02:00")), SAMPLE_STYLE)
    assert list(row) == EVAL_KEYS and row["kind"] == "fact" and row["source"] == "it/backups.md"
    assert row["reference"].startswith(
        "Conclusion: Shared folders are copied every night at 02:00 to the backup server. Each copy is kept"
    )
    assert format_score(row["reference"], "en", SAMPLE_STYLE) == 1.0


def test_the_split_is_fixed_by_the_row_id() -> None:
    ids = [f"en-e-{i:03d}" for i in range(200)]
    assert [ds.split_for(i) for i in ids] == [ds.split_for(i) for i in ids]
    assert sum(ds.split_for(i) == "tune" for i in ids) == 92  # sha256's first byte even: about half


def test_out_of_domain_rows_are_general_and_in_the_style() -> None:
    questions = ds.ood_questions(["en", "zh"], 4, seed=0)
    assert [q[0] for q in questions] == ["en", "zh", "en", "zh"]
    for style in (NEUTRAL, SAMPLE_STYLE, THREE_LINES):
        for q in questions[:1]:
            row = ds.ood_row(*q, style)
            assert row["kind"] == "out_of_domain" and row["source"] is None
            assert format_score(row["reference"], row["lang"], style) == 1.0
    assert ds.ood_row("en", "What is the capital of Japan?", "It is Tokyo.", "Tokyo", NEUTRAL)[
        "reference"
    ] == ("Answer: It is Tokyo.\nSource: general knowledge.")
    text = json.dumps(ds.GENERAL_QUESTIONS, ensure_ascii=False).lower()
    assert "lanting" not in text and "岚汀" not in text
    mute = NEUTRAL.with_changes(not_covered=())
    with pytest.raises(ds.Reject, match="no_general_phrase"):
        ds.ood_row(*questions[0], mute)


def test_training_answers_are_checked_and_their_source_line_normalised() -> None:
    draft = ds.Draft("How long is a copy kept?", ("30 days",))
    reply = "Answer: Each copy is kept for 30 days.\nSource: the backups page [backups.md]\nextra chatter"
    assert ds.check_answer(reply, draft, BACKUPS, NEUTRAL) == (
        "Answer: Each copy is kept for 30 days.\nSource: [it/backups.md]"
    )

    def reason(text: str) -> str:
        with pytest.raises(ds.Reject) as err:
            ds.check_answer(text, draft, BACKUPS, NEUTRAL, distractors=["hr/leave.md", "travel/trains.txt"])
        return err.value.reason

    assert reason("Answer: Each copy is kept for 30 days.\nSource: [hr/leave.md]") == "wrong_source"
    slip = "Answer:Each copy is kept for 30 days.\nSource: [admin/backups.md]"  # not shown: a slip
    assert ds.check_answer(slip, draft, BACKUPS, NEUTRAL, distractors=["hr/leave.md"]).endswith(
        "[it/backups.md]"
    )
    assert reason("Answer: I do not know.\nSource: not covered by the documents.") == "said_not_covered"
    assert reason("Answer: Copies are kept for a month.\nSource: [it/backups.md]") == "answer_missing_fact"
    assert reason("Each copy is kept for 30 days.") == "answer_not_in_style"
    with pytest.raises(ds.Reject, match="copies_example"):
        ds.check_answer(
            "Conclusion: Each copy is kept for 30 days.\nBasis: [it/meeting-rooms.md]\n"
            "Note: Rooms can be booked up to 30 days ahead.",
            draft,
            BACKUPS,
            SAMPLE_STYLE,
        )


def test_imported_lines_are_checked_one_by_one() -> None:
    text = "\n".join(
        [
            json.dumps({"id": "a", "lang": "en", "question": "q?", "answer": "Answer: x\nSource: [a.md]"}),
            "{not json",
            json.dumps({"id": "b", "lang": "fr", "question": "q?", "answer": "x"}),
            "",
            json.dumps({"id": "a", "lang": "en", "question": "q?", "answer": "y"}),
            json.dumps(["a list"]),
        ]
    )
    rows, problems = ds.parse_rows(text, "train")
    assert [r["id"] for r in rows] == ["a"]
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3", "line 5", "line 6"]
    assert "repeats line 1" in problems[2]
    merged = ds.merge_rows(
        [{"id": "a", "v": 1}, {"id": "b", "v": 1}], [{"id": "b", "v": 2}, {"id": "c", "v": 2}]
    )
    assert merged == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 2}]


# ----------------------------------------------------------------------------- a scripted model
PASSAGE_RE = re.compile(r'^Passage from (.+?):\n"""\n(.*?)\n"""', re.S)
CHECK_RE = re.compile(r'^Text from (.+?):\n"""\n(.*?)\n"""\n\nQuestion: (.*?)\n', re.S)


def good_draft(path: str, passage: str) -> str:  # noqa: ARG001
    """A question about the passage's last sentence and its last words as the fact."""
    sents = ds.sentences(passage)
    last = sents[-1]
    if ds.detect_lang(last) == "zh":
        return f"QUESTION: 关于“{last[:4]}”有什么规定？\nFACT: {last[-7:-1]}"
    words = last.rstrip(".").split()
    return f"QUESTION: What applies to {' '.join(words[:3]).lower()}?\nFACT: {' '.join(words[-2:])}"


class ScriptedGenerator:
    """The base model as a script: question prompts are answered by ``ask(path, passage)``, the
    round trip with the first fact of the question asked before (or the passage's first sentence when
    ``ask`` put "elsewhere" in the question), answering prompts with its facts, in ``style``.
    ``calls`` counts the requests."""

    name = "scripted"
    has_adapter = False

    def __init__(self, ask: Callable[[str, str], str], style: StyleProfile = NEUTRAL) -> None:
        self.ask, self.style = ask, style
        self.asked: dict[str, tuple[str, list[str]]] = {}
        self.calls = 0
        self.sampled = False

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(
        self,
        messages: Sequence[dict[str, str]],
        *,
        adapter: bool,
        prefill: str = "",
        temperature: float = 0.0,
        **_: Any,
    ) -> Iterator[str]:
        assert adapter is False
        self.calls += 1
        self.sampled = temperature > 0
        user = messages[-1]["content"]
        found, again = PASSAGE_RE.match(user), CHECK_RE.match(user)
        if again:
            facts = self.asked[again[3]][1]
            reply = "ANSWER: " + (ds.sentences(again[2])[0] if "elsewhere" in again[3] else facts[0])
        elif found:
            reply = self.ask(found[1], found[2])
            draft = ds.parse_draft(reply) if "QUESTION" in reply else None
            if draft:
                self.asked[draft.question] = (found[1], list(draft.facts))
        else:
            question = user.rsplit("\n", 1)[-1].split(":", 1)[-1].split("：", 1)[-1].strip()
            path, facts = self.asked[question]
            lang = ds.detect_lang(question)
            body = ("，".join(facts) + "。") if lang == "zh" else "; ".join(facts) + "."
            reply = f"{self.style.answer_label(lang)} {body}\n{self.style.source_text(lang, [path])}"
        yield reply[len(prefill) :] if reply.startswith(prefill) else " " + reply  # it goes on after prefill


def flaky_draft(path: str, passage: str) -> str:
    if "fridge" in passage:
        return "Sorry, I cannot write a question about this."
    if "Hotel costs" in passage:
        return "QUESTION: How are trips refunded?\nFACT: refunded in full"
    if "Sick leave needs" in passage:  # facts that do not answer: the round trip answers elsewhere
        return "QUESTION: What applies elsewhere to sick leave?\nFACT: before nine in the morning"
    return good_draft(path, passage)


@pytest.fixture()
def demo(cli_env, monkeypatch):
    """Collection "demo": the documents above indexed with the tiny embedder; the `dataset` command
    registered; returns (settings, docs folder)."""
    docs = cli_env / "docs"
    for rel, text in DOCS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text, encoding="utf-8")
    if "app.commands.dataset_cmd" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "app.commands.dataset_cmd"))
    assert cli.main(["index", str(docs), "--collection", "demo", "--json", str(cli_env / "ix.json")]) == 0
    from app.settings import load_settings
    from app.wiring.collections import with_collection

    return with_collection(load_settings(), "demo"), docs


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_build_keeps_checked_rows_and_counts_every_reject(demo) -> None:
    from app.wiring import datasets

    settings, _ = demo
    fake = ScriptedGenerator(flaky_draft)
    report = datasets.build_datasets(
        settings, datasets.BuildOptions(n_eval=6, n_train=3, answers="model"), generator=fake
    )
    paths = settings.ws.collection("demo")
    evals, trains = read_jsonl(paths.eval_set), read_jsonl(paths.train_set)
    texts = {}
    for c in datasets.index_chunks(settings):
        texts.setdefault(c.path, []).append(c.text)
    assert all(list(r) == EVAL_KEYS for r in evals) and all(list(r) == TRAIN_KEYS for r in trains)
    for r in evals:
        assert format_score(r["reference"], r["lang"], NEUTRAL) == 1.0
        if r["kind"] == "fact":
            assert any(all(f in t for f in r["key_facts"]) for t in texts[r["source"]])
    assert [r["kind"] for r in evals].count("out_of_domain") == 1
    assert all(format_score(r["answer"], r["lang"], NEUTRAL) == 1.0 for r in trains)
    journal = read_jsonl(paths.datasets / "build" / "progress.jsonl")
    eval_items = {r["item"] for r in journal if r["phase"] == "eval"}
    assert eval_items and not eval_items & {r["item"] for r in journal if r["phase"] == "train"}
    assert len({r["id"] for r in evals + trains}) == len(evals) + len(trains)

    rejects = read_jsonl(paths.datasets / "build" / "rejects.jsonl")
    by_reason = {r["reason"] for r in rejects}
    assert {"unparseable", "fact_not_verbatim", "not_answered"} <= by_reason
    assert {r["path"] for r in rejects} == {"office/kitchen.md", "travel/trains.txt", "hr/leave.md"}
    assert (
        report["complete"] and report["eval"]["kept"] == len(evals) and report["train"]["kept"] == len(trains)
    )
    assert report["eval"]["rejected"] + report["train"]["rejected"] == len(rejects)
    assert report["processed"] == len(journal)
    assert json.loads((paths.datasets / "build" / "report.json").read_text())["eval"] == report["eval"]


def test_training_answers_from_the_passage_cost_one_model_call_per_row(demo) -> None:
    from app.wiring import datasets

    settings, _ = demo
    fake = ScriptedGenerator(flaky_draft)
    report = datasets.build_datasets(settings, datasets.BuildOptions(n_eval=0, n_train=3), generator=fake)
    paths = settings.ws.collection("demo")
    trains = read_jsonl(paths.train_set)
    journal = [r for r in read_jsonl(paths.datasets / "build" / "progress.jsonl") if r["phase"] == "train"]
    assert report["train"]["kept"] == len(trains) > 0
    assert fake.calls == len(journal)  # the question only: the answer is the passage's own sentence
    assert not any("check_output" in r for r in journal)  # no round trip for training rows by default
    passage_sentences = {x for c in datasets.index_chunks(settings) for x in ds.sentences(c.text)}
    for r in trains:
        assert format_score(r["answer"], r["lang"], NEUTRAL) == 1.0
        body = answer_line(r["answer"], r["lang"], NEUTRAL)
        assert set(ds.sentences(body)) <= passage_sentences  # the passage's own sentences


def test_a_round_trip_for_training_rows_when_asked(demo) -> None:
    from app.wiring import datasets

    settings, _ = demo
    fake = ScriptedGenerator(flaky_draft)
    options = datasets.BuildOptions(n_eval=0, n_train=40, check_train=True)  # every passage
    report = datasets.build_datasets(settings, options, generator=fake)
    journal = read_jsonl(settings.ws.collection("demo").datasets / "build" / "progress.jsonl")
    checked = sum("check_output" in r for r in journal)
    assert fake.calls == len(journal) + checked and checked >= report["train"]["kept"] > 0
    assert any(r.get("reason") == "not_answered" for r in journal)  # the sick-leave passage


def test_training_passages_rejected_once_are_asked_again_sampled(demo) -> None:
    from app.wiring import datasets

    settings, _ = demo

    def ask(path: str, passage: str) -> str:  # a different question when sampled
        return good_draft(path, passage) if fake.sampled else flaky_draft(path, passage)

    fake = ScriptedGenerator(ask)
    report = datasets.build_datasets(settings, datasets.BuildOptions(n_eval=0, n_train=40), generator=fake)
    journal = [r for r in read_jsonl(settings.ws.collection("demo").datasets / "build" / "progress.jsonl")]
    again = [r for r in journal if r["item"].endswith(datasets.RETRY_SUFFIX)]
    first = {r["item"]: r for r in journal if not r["item"].endswith(datasets.RETRY_SUFFIX)}
    assert again and all(not first[r["item"].removesuffix(datasets.RETRY_SUFFIX)]["kept"] for r in again)
    assert all(r["temperature"] > 0 for r in again) and not any("temperature" in r for r in first.values())
    rows = read_jsonl(settings.ws.collection("demo").train_set)
    assert {r["path"] for r in again if r["kept"]} >= {"travel/trains.txt", "office/kitchen.md"}
    assert (
        report["train"]["kept"]
        == len(rows)
        == len({r["id"] for r in rows})
        == sum(r["kept"] for r in journal)
    )


def test_a_stopped_build_continues_to_the_same_rows_without_duplicates(demo) -> None:
    from app.wiring import datasets

    settings, _ = demo
    options = datasets.BuildOptions(n_eval=6, n_train=3, seed=1)
    fake = ScriptedGenerator(flaky_draft)
    progress = settings.ws.collection("demo").datasets / "build" / "progress.jsonl"

    def after_three() -> bool:
        return progress.is_file() and len(read_jsonl(progress)) >= 3

    stopped = datasets.build_datasets(settings, options, generator=fake, should_stop=after_three)
    assert stopped["complete"] is False and stopped["processed"] == 3
    with progress.open("a", encoding="utf-8") as fh:
        fh.write('{"phase": "eval", "item": "torn by a ki')  # a line cut off by SIGKILL
    with pytest.raises(Exception, match="unfinished build"):
        datasets.build_datasets(settings, datasets.BuildOptions(n_eval=5), generator=fake)
    first = datasets.build_datasets(settings, options, generator=fake)
    items = [(r["phase"], r["item"]) for r in read_jsonl(progress)]
    assert len(items) == len(set(items)) == first["processed"]
    rows = read_jsonl(settings.ws.collection("demo").eval_set)

    again = datasets.build_datasets(settings, options, generator=fake, replace=True, fresh=True)
    assert read_jsonl(settings.ws.collection("demo").eval_set) == rows
    assert (again["eval"], again["train"]) == (first["eval"], first["train"])


def test_existing_sets_need_replace_and_are_backed_up(demo, capsys) -> None:
    from app.wiring import datasets

    settings, _ = demo
    fake = ScriptedGenerator(good_draft)
    datasets.build_datasets(settings, datasets.BuildOptions(n_eval=4, n_train=2), generator=fake)
    eval_set = settings.ws.collection("demo").eval_set
    before = eval_set.read_bytes()
    assert cli.main(["dataset", "build", "--collection", "demo", "--eval", "4"]) == 2
    assert "--replace" in capsys.readouterr().err
    datasets.build_datasets(
        settings, datasets.BuildOptions(n_eval=4, n_train=2, seed=5), generator=fake, replace=True
    )
    backups = sorted((eval_set.parent / "backups").glob("eval-*.jsonl"))
    assert len(backups) == 1 and backups[0].read_bytes() == before


def test_the_cli_builds_in_the_foreground_and_shows_the_counts(demo, capsys, monkeypatch) -> None:  # noqa: ARG001
    monkeypatch.setattr(
        "app.wiring.datasets._base_generator", lambda _settings: ScriptedGenerator(flaky_draft)
    )
    assert (
        cli.main(["dataset", "build", "--collection", "demo", "--eval", "6", "--train", "3", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["complete"]
    assert report["eval"]["reasons"] == {"unparseable": 1, "fact_not_verbatim": 1, "not_answered": 1}
    assert cli.main(["dataset", "show", "--collection", "demo"]) == 0
    out = capsys.readouterr().out
    assert (
        f"eval: {report['eval']['kept']} rows — fact {report['eval']['kept'] - 1}, out_of_domain 1 · " in out
    )
    assert f"train: {report['train']['kept']} rows — en " in out
    row = next(
        r for r in read_jsonl(demo[0].ws.collection("demo").eval_set) if r.get("key_facts") and r["source"]
    )
    assert cli.main(["dataset", "show", "--collection", "demo", "--row", row["id"]]) == 0
    out = capsys.readouterr().out
    assert f"question: {row['question']}" in out and f"passage: {row['source']} § " in out
    assert all(f"⟦{' '.join(f.split())}" in " ".join(out.split()) for f in row["key_facts"])
    assert cli.main(["dataset", "show", "--collection", "demo", "--row", "no-such-row"]) == 2
    assert "no evaluation row 'no-such-row'" in capsys.readouterr().err


def test_import_checks_every_line_and_changes_nothing_on_error(demo, capsys) -> None:
    settings, docs = demo
    eval_set = settings.ws.collection("demo").eval_set
    good = [
        {
            "id": "x1",
            "lang": "en",
            "kind": "fact",
            "question": "How long are copies kept?",
            "reference": "Answer: 30 days.\nSource: [it/backups.md]",
            "key_facts": ["30 days"],
            "source": "it/backups.md",
        },
        {
            "id": "x2",
            "lang": "zh",
            "kind": "out_of_domain",
            "question": "一周有几天？",
            "reference": "答案：7 天。\n来源：通用知识。",
            "source": None,
            "split": "heldout",
        },
    ]
    first = docs.parent / "first.jsonl"
    first.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good), encoding="utf-8")
    assert cli.main(["dataset", "import", str(first), "--kind", "eval", "--collection", "demo"]) == 0
    stored = eval_set.read_bytes()
    assert [r["split"] for r in read_jsonl(eval_set)] == [ds.split_for("x1"), "heldout"]

    bad = docs.parent / "bad.jsonl"
    bad.write_text(
        json.dumps({**good[0], "question": "changed?"})
        + "\n{oops\n"
        + json.dumps({**good[0], "id": "x3", "kind": "trivia"})
        + "\n"
        + json.dumps({**good[0], "id": "x4", "key_facts": []})
        + "\n",
        encoding="utf-8",
    )
    assert (
        cli.main(["dataset", "import", str(bad), "--kind", "eval", "--collection", "demo", "--replace"]) == 2
    )
    err = capsys.readouterr().err
    assert "3 malformed line(s)" in err and "line 2:" in err and "line 3:" in err and "line 4:" in err
    assert eval_set.read_bytes() == stored

    again = docs.parent / "again.jsonl"
    again.write_text(json.dumps({**good[0], "question": "How long is a copy kept?"}) + "\n", encoding="utf-8")
    assert (
        cli.main(["dataset", "import", str(again), "--kind", "eval", "--collection", "demo", "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["imported"], result["replaced_ids"], result["rows"]) == (1, 1, 2)
    assert [r["question"] for r in read_jsonl(eval_set)] == ["How long is a copy kept?", "一周有几天？"]

    out = docs.parent / "out.jsonl"
    assert cli.main(["dataset", "export", "--kind", "eval", str(out), "--collection", "demo"]) == 0
    assert out.read_bytes() == eval_set.read_bytes()
    capsys.readouterr()
    assert cli.main(["dataset", "show", "--collection", "demo", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval"]["by_kind"] == {"fact": 1, "out_of_domain": 1} and summary["train"]["rows"] == 0


# ----------------------------------------------------------------------------- killed and resumed
def test_a_background_build_killed_with_sigkill_resumes_without_duplicates(demo, tiny_llama_dir, monkeypatch):
    from adapters import jobs
    from app.wiring.dataset_job import start_dataset_job

    monkeypatch.setenv("HYBRID_GENERATION__BACKEND", "transformers")
    monkeypatch.setenv("HYBRID_MODELS__BASE_HF", str(tiny_llama_dir))
    settings, _ = demo
    job_dir = start_dataset_job(settings, n_eval=10, n_train=3, seed=0)
    try:
        check_killed_and_resumed(settings, job_dir)
    finally:  # never leave a worker behind
        pid = jobs.read_status(job_dir).get("pid")
        if jobs.read_status(job_dir)["status"] in ("starting", "running") and pid:
            os.kill(pid, signal.SIGKILL)


def check_killed_and_resumed(settings: Any, job_dir: Path) -> None:
    from adapters import jobs
    from app.wiring import jobs as runner
    from app.wiring.dataset_job import DATASET

    progress = settings.ws.collection("demo").datasets / "build" / "progress.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl(progress) if progress.is_file() else []) < 2:
        assert jobs.read_status(job_dir)["status"] in ("starting", "running"), (
            job_dir / "log.txt"
        ).read_text()
        time.sleep(0.05)
    pid = jobs.read_status(job_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        if jobs.read_status(job_dir)["status"] == "failed":
            break
        time.sleep(0.05)
    killed_at = len(read_jsonl(progress))
    assert jobs.read_status(job_dir)["status"] == "failed" and killed_at >= 2
    assert not settings.ws.collection("demo").eval_set.exists()

    assert runner.resume(settings, DATASET, "last") == job_dir
    status = jobs.wait(job_dir, poll_s=0.1)
    assert status["status"] == "succeeded", (job_dir / "log.txt").read_text()[-2000:]
    items = [(r["phase"], r["item"]) for r in read_jsonl(progress)]
    assert len(items) == len(set(items)) == status["result"]["processed"] > killed_at
    rows = read_jsonl(settings.ws.collection("demo").eval_set)
    assert len({r["id"] for r in rows}) == len(rows) >= 1  # the out-of-domain row at least
    assert status["step"] == status["total"]
    assert cli.main(["dataset", "status", "--collection", "demo", "--json"]) == 0
    assert cli.main(["dataset", "resume", job_dir.name, "--collection", "demo"]) == 2  # it has finished


def test_rows_can_be_written_by_another_model_than_the_one_that_answers(
    demo,  # noqa: ARG001 — the collection "demo", indexed
    tiny_models,
    monkeypatch,
) -> None:
    from app.settings import load_settings
    from app.wiring import datasets
    from app.wiring.collections import with_collection
    from app.wiring.generation import build_writer
    from domain.errors import ModelMissingError

    monkeypatch.setenv("HYBRID_DATASET__MODEL_GGUF", str(tiny_models["gguf"]))
    settings = with_collection(load_settings(), "demo")
    writer = build_writer(settings)
    assert writer.has_adapter is False and tiny_models["gguf"].stem in writer.name
    report = datasets.build_datasets(settings, datasets.BuildOptions(n_eval=2, n_train=0))
    assert report["model"] == writer.name and report["processed"] > 0
    monkeypatch.setenv("HYBRID_DATASET__MODEL_GGUF", str(tiny_models["gguf"].parent / "missing.gguf"))
    with pytest.raises(ModelMissingError, match="HYBRID_DATASET__MODEL_GGUF"):
        build_writer(with_collection(load_settings(), "demo"))


def test_the_largest_model_set_up_writes_rows_unless_one_is_chosen(
    cli_env,  # noqa: ARG001 — a workspace of its own
    tiny_models,
    monkeypatch,
) -> None:
    """Rows of a Chinese manual judged by hand: 7 of 30 answerable written by the 0.5B, 15 of 27 by
    the 1.5B (corpus/measured/collections/debref-zh-writer-1.5b.md), so the largest model set up
    writes them when nothing else is named."""
    import shutil

    from adapters.base_model import PROFILES
    from app.settings import load_settings
    from app.wiring import generation
    from app.wiring.models import with_profile

    monkeypatch.delenv("HYBRID_MODELS__BASE_GGUF", raising=False)
    monkeypatch.setenv("HYBRID_GENERATION__BACKEND", "llama_cpp")
    monkeypatch.setattr(generation, "build_generator", lambda _settings: "the answering generator")
    settings = load_settings()
    assert settings.models.base_gguf is None and settings.dataset.model_gguf is None
    settings.ws.models.mkdir(parents=True, exist_ok=True)
    for key in ("qwen", "qwen-1.5b"):  # the tiny model stands for each profile's file
        name = PROFILES[key].gguf_name
        shutil.copyfile(tiny_models["gguf"], settings.ws.models / name)
        (settings.ws.models / f"{name}.sha256").write_text("checked at setup\n", encoding="utf-8")
    writer = generation.build_writer(settings)
    assert PROFILES["qwen-1.5b"].gguf_name.removesuffix(".gguf") in writer.name
    assert writer.has_adapter is False
    # a profile named for the command, or a base GGUF of one's own, writes instead
    assert generation.build_writer(with_profile(settings, "qwen")) == "the answering generator"
    monkeypatch.setenv("HYBRID_MODELS__BASE_GGUF", str(tiny_models["gguf"]))
    assert generation.build_writer(load_settings()) == "the answering generator"
    monkeypatch.delenv("HYBRID_MODELS__BASE_GGUF")
    assert generation.writer_hint(settings) is None
    # the 1.5B not set up (no checked copy): the answering profile is the largest set up, and the
    # page and the command say how to set up the larger one
    (settings.ws.models / f"{PROFILES['qwen-1.5b'].gguf_name}.sha256").unlink()
    assert generation.build_writer(load_settings()) == "the answering generator"
    hint = generation.writer_hint(load_settings())
    assert hint is not None and PROFILES["qwen-1.5b"].install_hint in hint
    assert generation.writer_hint(with_profile(load_settings(), "qwen")) is None  # chosen: no advice
    monkeypatch.setenv("HYBRID_GENERATION__BACKEND", "transformers")  # its own model writes: no advice
    assert generation.writer_hint(load_settings()) is None


def test_row_passage_is_the_passage_of_its_source_holding_most_of_its_facts() -> None:
    def chunk(cid: str, path: str, text: str, start: int) -> Chunk:
        return Chunk(cid, path, path, "Setup", text, start, start + len(text))

    chunks = [
        chunk("b1", "guide.md", "Backups are kept for 14 days.", 0),
        chunk("b2", "guide.md", "Backups run at 02:00 and are kept\nfor 14 days.", 40),
        chunk("o1", "other.md", "Backups run at 02:00 and are kept for 14 days.", 0),
    ]
    row = {"source": "guide.md", "key_facts": ["run at 02:00", "kept for 14 days"]}
    found = ds.row_passage(row, chunks)
    assert found is not None and found[0].chunk_id == "b2"
    assert found[1] == ["run at 02:00", "kept\nfor 14 days"]
    only = ds.row_passage({**row, "key_facts": ["kept for 14 days"]}, chunks)
    assert only is not None and only[0].chunk_id == "b1"  # a tie goes to the first in the file
    assert ds.row_passage({**row, "key_facts": ["kept for 30 days"]}, chunks) is None
    assert ds.row_passage({"source": None, "key_facts": ["Tokyo"]}, chunks) is None  # out of domain
    assert ds.row_passage({"source": ["guide.md", "other.md"], "key_facts": ["02:00"]}, chunks) is None
