"""The answer line in the question's language (domain.answer_language): a line the model writes as
prose in the other language is held back and shown translated, the model's own line kept for the
next lines, the citations and the record; lines that read as the question's language stream as
before; a translation that drops a number, a command or a path is not used."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from domain.answer_format import LineWriter
from domain.answer_language import (
    clean_line_translation,
    kept_terms,
    line_translation_messages,
    line_translator,
    needs_translation,
    reads_as,
)
from domain.pipeline import Assistant, AssistantOptions
from domain.router import AdapterState
from domain.serialize import answer_from_json, answer_to_json
from domain.style import NEUTRAL
from domain.types import Mode
from tests.fakes_answer import FakeGenerator, FakeRetriever, ScriptedLines, StepClock, make_chunk, make_hit
from tests.models_kit import set_up_profile

PAM = make_hit(
    make_chunk("pam-1", "ch04.en.html", "Configuration errors of PAM may lock you out of your own system."), 1
)
IN_CHINESE = "PAM 的配置错误可能把你锁在自己的系统之外。"


def _write(writer: LineWriter, gen: object) -> list[str]:
    return list(writer.write(gen, [{"role": "user", "content": "q"}], adapter=False, max_new_tokens=200))  # type: ignore[arg-type]


def test_an_english_answer_line_to_a_chinese_question_is_shown_translated() -> None:
    gen = ScriptedLines(
        {
            "答案：": " Configuration errors of PAM may lock you out of your own system.\n",
            "来源：": "【x.md】",
        },
        size=4,
    )
    asked: list[tuple[str, str]] = []

    def translate(line: str, lang: str) -> str:
        asked.append((line, lang))
        return IN_CHINESE

    cited: list[str] = []
    writer = LineWriter(
        NEUTRAL,
        "zh",
        passages=[PAM],
        source=lambda t: cited.append(t) or ["ch04.en.html"],
        translate=translate,
    )
    pieces = _write(writer, gen)
    assert "".join(pieces) == f"答案：{IN_CHINESE}\n来源：【ch04.en.html】"
    assert pieces[0] == f"答案：{IN_CHINESE}"  # the English line never reached the screen
    assert asked == [("Configuration errors of PAM may lock you out of your own system.", "zh")]
    assert writer.translated_from == "Configuration errors of PAM may lock you out of your own system."
    # the model's own line is what the citations are found from
    assert cited == ["答案：Configuration errors of PAM may lock you out of your own system.\n"]
    assert writer.model_text.startswith("答案：Configuration errors")


def test_the_next_line_continues_the_models_own_line() -> None:
    gen = ScriptedLines({"Answer:": " 年假为每年十五个工作日。\n", "Source:": " [hr/leave.md]\n"}, size=4)
    writer = LineWriter(
        NEUTRAL, "en", translate=lambda _line, _lang: "Annual leave is 15 working days a year."
    )
    text = "".join(_write(writer, gen))
    assert text == "Answer: Annual leave is 15 working days a year.\nSource: [hr/leave.md]"
    assert gen.prefills[1] == "Answer: 年假为每年十五个工作日。\nSource:"
    assert writer.translated_from == "年假为每年十五个工作日。"


def test_a_line_in_the_questions_language_streams_as_it_comes_and_is_not_translated() -> None:
    gen = ScriptedLines(
        {"答案：": "Harbor Pro 按每台设备每月 USD 2.40 收费，按月后付。\n", "来源：": "【a.md】"}, size=2
    )

    def never(_line: str, _lang: str) -> str:
        raise AssertionError("a Chinese line was sent to the translator")

    writer = LineWriter(NEUTRAL, "zh", translate=never)
    stream = writer.write(gen, [], adapter=False, max_new_tokens=200)  # type: ignore[arg-type]
    first = next(stream)
    assert first == "答案：Harbor Pro 按每台"  # held only until it read as Chinese
    assert gen.taken == [7]  # the rest of the line was not written yet
    assert (
        first + "".join(stream) == "答案：Harbor Pro 按每台设备每月 USD 2.40 收费，按月后付。\n来源：【a.md】"
    )
    assert writer.translated_from == ""


@pytest.mark.parametrize(
    "line", ["ethtool。", "md5sum", "$ sudo systemctl restart network-manager", "2023-02-04"]
)
def test_names_commands_and_numbers_in_the_other_language_stay_as_written(line: str) -> None:
    gen = ScriptedLines({"答案：": line + "\n", "来源：": "【a.md】"}, size=4)
    writer = LineWriter(NEUTRAL, "zh", translate=lambda _l, _g: "不该用到")
    assert "".join(_write(writer, gen)) == f"答案：{line}\n来源：【a.md】"
    assert writer.translated_from == ""


def test_without_a_translator_nothing_is_held_back() -> None:
    gen = ScriptedLines({"答案：": "Errors in PAM may lock you out.\n", "来源：": "【a.md】"}, size=4)
    pieces = _write(LineWriter(NEUTRAL, "zh"), gen)
    assert (
        pieces[0] == "答案：Erro"
        and "".join(pieces) == "答案：Errors in PAM may lock you out.\n来源：【a.md】"
    )


def test_a_whole_reply_has_its_answer_line_translated_too() -> None:
    class Whole:
        continues_prefill = False

        def generate(self, _messages: Sequence[dict[str, str]], **_kw: object) -> Iterator[str]:
            yield "答案：Errors in PAM may lock you out.\n来源：【a.md】"

    writer = LineWriter(NEUTRAL, "zh", translate=lambda _l, _g: "PAM 出错可能把你锁在外面。")
    assert "".join(_write(writer, Whole())) == "答案：PAM 出错可能把你锁在外面。\n来源：【a.md】"
    assert writer.model_text == "答案：Errors in PAM may lock you out.\n来源：【a.md】"


def test_a_translation_that_drops_a_number_a_path_or_an_option_is_not_used() -> None:
    line = "Edit /etc/apt/apt.conf.d/proxy and set Acquire::http::Proxy to port 3128."
    assert kept_terms(line) == ["/etc/apt/apt.conf.d/proxy", "Acquire::http::Proxy", "3128"]
    good = "编辑 /etc/apt/apt.conf.d/proxy，把 Acquire::http::Proxy 设为端口 3128。"
    assert clean_line_translation(f"译文：{good}\n解释……", line, "zh") == good
    assert clean_line_translation("编辑代理配置文件，把端口设为 3128。", line, "zh") is None
    assert clean_line_translation(line, line, "zh") is None  # not translated
    assert clean_line_translation("Edit the proxy file.", line, "zh") is None  # not Chinese
    assert (
        clean_line_translation(
            "编" * 400 + " 3128 /etc/apt/apt.conf.d/proxy Acquire::http::Proxy", line, "zh"
        )
        is None
    )


def test_a_failing_translator_keeps_the_line_as_written() -> None:
    def broken(_text: str, _lang: str) -> str:
        raise RuntimeError("model gone")

    assert line_translator(broken)("Errors in PAM may lock you out.", "zh") is None
    assert line_translator(lambda _t, _l: "PAM 出错可能把你锁在外面。")(
        "Errors in PAM may lock you out.", "zh"
    ) == ("PAM 出错可能把你锁在外面。")


def test_a_table_row_has_only_its_last_cell_translated() -> None:
    asked: list[str] = []

    def translate(text: str, _lang: str) -> str:
        asked.append(text)
        return (
            "进化 | 470 | X GUI 程序（GNOME3，群件套件）" if "|" in text else "X GUI 程序（GNOME3，群件套件）"
        )

    row = "evolution | V:28, I:226 | 470 | X GUI program (GNOME3, groupware suite)"
    assert (
        line_translator(translate)(row, "zh")
        == "evolution | V:28, I:226 | 470 | X GUI 程序（GNOME3，群件套件）"
    )
    assert asked == ["X GUI program (GNOME3, groupware suite)"]  # the package name never went to the model
    assert (
        line_translator(translate)("package | popcon | size | description", "zh") is None
    )  # nothing to translate
    assert len(asked) == 1


def test_the_translation_request_names_the_language_and_keeps_codes() -> None:
    system, user = line_translation_messages("Errors in PAM may lock you out.", "zh")
    assert "Simplified Chinese" in system["content"] and "commands" in system["content"]
    assert user == {"role": "user", "content": "Errors in PAM may lock you out."}


def test_what_reads_as_a_language_and_what_needs_translating() -> None:
    assert reads_as("PAM 的配", "zh") and not reads_as("PAM 的", "zh")
    assert not reads_as("Errors in PAM may lock you out（见", "zh")
    assert reads_as("Annual leave is", "en") and not reads_as("年假", "en") and not reads_as("15 ", "en")
    assert not reads_as("Debian 将上述各种", "en")
    assert needs_translation("Some quotes for new users", "zh")
    assert not needs_translation("配置错误的 PAM 可以锁定你自己的系统。", "zh")
    assert needs_translation("年假为每年十五个工作日。", "en")
    assert not needs_translation("Call the desk at +65 6817 2290.", "en")


def test_the_assistant_shows_the_translation_and_cites_from_the_models_line() -> None:
    english = [make_hit(PAM.chunk, 1, dense=0.9, bm25=3.0)]
    lines: list[tuple[str, str]] = []

    def translate(line: str, lang: str) -> str:
        lines.append((line, lang))
        return IN_CHINESE

    clock = StepClock(1.0)
    a = Assistant(
        retriever=FakeRetriever(fixed=english),
        generator=FakeGenerator(adapter_loaded=False),
        options=AssistantOptions(low_score_warning=0.6),
        adapter=AdapterState(active=False),
        translate_line=translate,
        clock=clock,
    )
    answer = a.answer("PAM 配置错了会怎样？", "rag")
    assert answer.mode == Mode.RAG
    assert answer.text.startswith(f"答案：{IN_CHINESE}")
    assert answer.translated_from.startswith("Configuration errors of PAM may lock you out")
    assert lines and lines[0][1] == "zh"
    assert [c.path for c in answer.citations] == ["ch04.en.html"]  # found from the English line
    assert "【ch04.en.html】" in answer.text
    # the line shows only once translated: throughput is the model's, not the wait for the line
    t = answer.timing
    assert t.model_first_s is not None and t.model_first_s < t.first_token_s and t.translate_s == 1.0
    assert t.tokens_per_s == t.tokens / (t.total_s - t.model_first_s - t.translate_s)
    stored = answer_from_json(answer_to_json(answer))
    assert stored.translated_from == answer.translated_from and stored.timing == answer.timing
    old = answer_to_json(answer)
    del old["translated_from"]  # answers saved before this read as before
    assert answer_from_json(old).translated_from == ""
    plain = Assistant(
        retriever=FakeRetriever(fixed=english),
        generator=FakeGenerator(adapter_loaded=False),
        options=AssistantOptions(low_score_warning=0.6),
        adapter=AdapterState(active=False),
    )
    same = plain.answer("PAM 配置错了会怎样？", "rag")
    assert same.translated_from == "" and same.text.startswith("答案：Configuration errors of PAM")
    assert same.citations == answer.citations


@pytest.mark.usefixtures("cli_env")
def test_answer_lines_are_translated_by_the_model_that_translates_questions(tiny_models, monkeypatch) -> None:
    from app.settings import load_settings
    from app.wiring import generation

    class Scripted:
        has_adapter = False
        name = "scripted"

        def generate(self, messages, *, adapter, max_new_tokens=256, temperature=0.0, prefill=""):  # noqa: ANN001, ARG002
            assert adapter is False and messages[0]["content"].startswith("Translate the user's text into")
            assert messages[1]["content"] == "Errors in PAM may lock you out."
            yield "PAM 出错可能"
            yield "把你锁在外面。\nMore"
            raise AssertionError("read past the first line")

    monkeypatch.delenv("HYBRID_MODELS__BASE_GGUF", raising=False)
    monkeypatch.setattr(generation, "build_generator", lambda _settings: Scripted())
    set_up_profile(load_settings().ws.models, "qwen", tiny_models["gguf"])
    assert generation.build_line_translator(load_settings()) is None  # auto: no translating profile
    monkeypatch.setenv("HYBRID_ANSWER__TRANSLATE_ANSWERS", "on")  # on: the answering model translates
    translate = generation.build_line_translator(load_settings())
    assert translate is not None
    assert line_translator(translate)("Errors in PAM may lock you out.", "zh") == "PAM 出错可能把你锁在外面。"
    assert generation.build_translator(load_settings()) is None  # questions: their own setting
    monkeypatch.setenv("HYBRID_ANSWER__TRANSLATE_ANSWERS", "off")
    assert generation.build_line_translator(load_settings()) is None


def test_the_evaluation_counts_the_translated_answer_lines() -> None:
    from domain.evaluation import build_report, evaluate_rows, render_markdown

    none = AdapterState(active=False)
    a = Assistant(
        retriever=FakeRetriever(fixed=[make_hit(PAM.chunk, 1, dense=0.9, bm25=3.0)]),
        generator=FakeGenerator(adapter_loaded=False),
        options=AssistantOptions(low_score_warning=0.6),
        adapter=none,
        translate_line=lambda _line, _lang: IN_CHINESE,
    )
    row = {"id": "z1", "lang": "zh", "kind": "fact", "question": "PAM 配置错了会怎样？", "key_facts": ["PAM"]}
    results = evaluate_rows(
        [row, {**row, "id": "e1", "lang": "en", "question": "What if PAM is wrong?"}], a, ["rag"]
    )
    assert results[0]["results"]["rag"]["translated_from"].startswith("Configuration errors of PAM")
    assert results[1]["results"]["rag"]["translated_from"] is None
    report = build_report(results, ["rag"], none)
    assert report["modes"]["rag"]["translated"] == 1
    assert "Answer lines shown translated into the question's language" in render_markdown(report)
    assert "rag 1 of 2" in render_markdown(report)


@pytest.mark.usefixtures("cli_env")
def test_the_other_language_model_is_the_larger_translating_profile_when_set_up(
    tiny_models, monkeypatch
) -> None:
    from adapters.base_model import PROFILES
    from app.settings import load_settings
    from app.wiring import generation

    monkeypatch.delenv("HYBRID_MODELS__BASE_GGUF", raising=False)
    models = load_settings().ws.models

    def set_up(key: str) -> None:
        set_up_profile(models, key, tiny_models["gguf"])

    set_up("qwen")
    assert generation.other_language_profile(load_settings()) is None  # nothing larger set up
    set_up("qwen-1.5b")
    assert generation.other_language_profile(load_settings()) == "qwen-1.5b"
    model, label, adapter = generation.build_other_language_generator(load_settings())
    assert model is not None and label == PROFILES["qwen-1.5b"].label and adapter == ""
    monkeypatch.setenv("HYBRID_MODELS__PROFILE", "qwen-1.5b")  # it answers everything already
    assert generation.other_language_profile(load_settings()) is None
    monkeypatch.delenv("HYBRID_MODELS__PROFILE")
    monkeypatch.setenv("HYBRID_ANSWER__OTHER_LANGUAGE_MODEL", "off")
    assert generation.build_other_language_generator(load_settings()) == (None, "", "")
    monkeypatch.delenv("HYBRID_ANSWER__OTHER_LANGUAGE_MODEL")
    monkeypatch.setenv("HYBRID_MODELS__BASE_GGUF", str(tiny_models["gguf"]))  # a model of one's own
    assert generation.other_language_profile(load_settings()) is None
