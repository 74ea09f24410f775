"""The answer service with fakes: routing, streaming, timing, citations, warnings, compare sharing
one retrieval, and correction memory answering a near-duplicate at once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from domain import pipeline
from domain.corrections import CorrectionStore
from domain.errors import ConfigError
from domain.pipeline import Assistant
from domain.ports import Message
from domain.router import AdapterState, RouterThresholds
from domain.types import Answer, Mode, RouteDecision, Timing
from tests.fakes_answer import (
    SAMPLE_CHUNKS,
    FakeGenerator,
    FakeQuestionEmbedder,
    FakeRetriever,
    StepClock,
    make_chunk,
    make_hit,
)
from tests.styles import SAMPLE_STYLE

Q = "How many days of annual leave do I get?"
STYLED = (
    "Conclusion: Annual leave is 15 working days per year.\nBasis: [hr/annual-leave.md]\n"
    "Note: Check the document for exceptions."
)
# The fake base model writes one label-less sentence: the answer line; the source line is written
# from the citations, and the fake has nothing to add after "Note:".
RAG_TEXT = (
    "Conclusion: Annual leave is 15 working days per year. See hr/annual-leave.md.\n"
    "Basis: [hr/annual-leave.md]\nNote:"
)


def AssistantOptions(**kw):  # noqa: N802 - the options of an assistant answering in the sample's style
    return pipeline.AssistantOptions(**{"style": SAMPLE_STYLE, **kw})


def make(tmp_path=None, *, adapter: bool = True, options: AssistantOptions | None = None, **kw) -> Assistant:
    store = CorrectionStore(tmp_path / "feedback.sqlite") if tmp_path is not None else None
    return Assistant(
        retriever=kw.pop("retriever", FakeRetriever()),
        generator=kw.pop("generator", FakeGenerator(adapter_loaded=adapter)),
        embed_fn=kw.pop("embed_fn", FakeQuestionEmbedder()),
        corrections=store,
        options=options or AssistantOptions(low_score_warning=0.6),
        adapter=AdapterState(
            active=adapter, label="v3" if adapter else None, gate_passed=True if adapter else None
        ),
        **kw,
    )


def test_auto_routes_to_tuned_rag_and_answers_with_citations() -> None:
    a = make(thresholds=RouterThresholds(dense_min=0.6))
    answer = a.answer(Q)
    assert answer.mode == Mode.TUNED_RAG
    assert answer.reason == "Tuned + RAG: top passage 0.67 from hr/annual-leave.md; adapter v3 active"
    assert answer.text == STYLED
    assert [h.chunk.chunk_id for h in answer.passages] == ["leave-1", "sick-1"]
    assert [(c.chunk_id, c.span) for c in answer.citations] == [
        ("leave-1", "Annual leave is 15 working days per year.")
    ]
    assert answer.warnings == [] and not answer.from_correction
    gen = a.generator
    assert isinstance(gen, FakeGenerator)
    assert [c["adapter"] for c in gen.calls] == [True, True]  # the answer line, then the note
    assert [c["prefill"] for c in gen.calls] == ["Conclusion:", STYLED.rsplit(" Check", 1)[0]]


def test_weak_evidence_routes_to_tuned_without_passages() -> None:
    a = make()  # default dense_min 0.82 > the fake's 0.67
    answer = a.answer(Q)
    assert (answer.mode, answer.passages, answer.citations) == (Mode.TUNED, [], [])
    assert answer.reason == "Tuned (adapter): best passage 0.67 is below 0.82; adapter v3 active"


class _NamingGenerator(FakeGenerator):
    """Answers from memory, naming ``source`` on its source line."""

    source = "hr/annual-leave-policy.pdf"

    def reply(self, messages: Sequence[Message], adapter: bool) -> str:  # noqa: ARG002
        return f"Conclusion: 14 days.\nBasis: [{self.source}]\nNote: Ask HR."


def test_a_mode_without_passages_reports_a_source_the_collection_does_not_hold() -> None:
    files = ("hr/annual-leave.md", "hr/sick-leave.md")
    made_up = make(generator=_NamingGenerator(), collection_files=files).answer(Q, "tuned")
    assert made_up.text.splitlines()[1] == "Basis: [hr/annual-leave-policy.pdf]"
    assert made_up.warnings == [
        "the source line names a file this collection does not hold (hr/annual-leave-policy.pdf); "
        "this mode read no documents"
    ]
    real = _NamingGenerator()
    real.source = "annual-leave.md"
    held = make(generator=real, collection_files=files).answer(Q, "tuned")
    assert held.text.splitlines()[1] == "Basis: [hr/annual-leave.md]" and held.warnings == []


def test_fixed_modes_and_adapter_on_off_give_different_answers() -> None:
    a = make()
    rag = a.answer(Q, "rag")
    tuned_rag = a.answer(Q, Mode.TUNED_RAG)
    assert rag.text == RAG_TEXT
    assert tuned_rag.text == STYLED
    assert rag.reason == "RAG: chosen by you; best passage 0.67 is below 0.82"
    gen = a.generator
    assert isinstance(gen, FakeGenerator)
    assert [c["adapter"] for c in gen.calls] == [False, False, True, True]
    # the same system prompt and passages (RAG reads them best last); the base model also sees
    # one worked exchange first
    base, tuned = gen.calls[0]["messages"], gen.calls[2]["messages"]
    assert base[0] == tuned[0]
    blocks = tuned[-1]["content"].split("\n\n")
    assert base[-1]["content"].split("\n\n") == [
        blocks[0],
        "Passages:\n" + blocks[2],
        blocks[1].removeprefix("Passages:\n"),
        blocks[3],
    ]
    assert [m["role"] for m in base[1:3]] == ["user", "assistant"]


def test_modes_without_retrieval_do_not_search() -> None:
    retriever = FakeRetriever()
    a = make(retriever=retriever)
    assert a.answer(Q, "prompt").text.startswith("Conclusion: I am not sure.\nBasis:")
    assert a.answer(Q, "tuned").text.startswith("Conclusion: I cannot answer that from memory.")
    assert retriever.queries == []


def test_stream_settles_route_and_passages_before_generating() -> None:
    gen = FakeGenerator()
    a = make(generator=gen)
    stream = a.stream(Q, "rag")
    assert stream.decision == RouteDecision(
        Mode.RAG, "RAG: chosen by you; best passage 0.67 is below 0.82", overridden=True
    )
    assert [h.chunk.chunk_id for h in stream.passages] == ["leave-1", "sick-1"]
    assert gen.calls == []
    pieces = list(stream.pieces)
    assert pieces[:3] == ["Conclusion: Annual ", "leave ", "is "]
    assert "".join(pieces) == stream.answer().text


def test_answer_stream_yields_pieces_then_the_answer() -> None:
    items = list(make().answer_stream(Q, "tuned_rag"))
    assert all(isinstance(p, str) for p in items[:-1])
    final = items[-1]
    assert isinstance(final, Answer)
    assert "".join(items[:-1]).strip() == final.text == STYLED


def test_timing_from_a_step_clock() -> None:
    a = make(clock=StepClock(0.5))
    answer = a.answer(Q, "tuned_rag")
    # clock readings: retrieval 0.5 → 1.0; generation starts at 1.5, first piece at 2.0, end at 2.5;
    # the fake tokenizer counts 20 words in the answer
    assert answer.timing == Timing(retrieval_s=0.5, first_token_s=0.5, total_s=1.0, tokens=20)
    assert answer.timing.tokens_per_s == 20 / 0.5


def test_low_best_score_warns() -> None:
    a = make(options=AssistantOptions(low_score_warning=0.8))
    answer = a.answer(Q, "rag")
    assert answer.warnings == [
        "best passage scores low (0.67 < 0.80): the documents may not cover this question"
    ]


def test_nothing_retrieved_warns() -> None:
    a = make(retriever=FakeRetriever(fixed=[]))
    assert a.answer("Anything?", "rag").warnings == [
        "nothing was retrieved — is the index built for these documents?"
    ]


def test_errors_the_user_can_fix() -> None:
    a = make(adapter=False)
    with pytest.raises(ConfigError, match="question is empty"):
        a.answer("   ")
    with pytest.raises(ConfigError, match="unknown mode 'fast'"):
        a.answer(Q, "fast")
    with pytest.raises(ConfigError, match="needs a LoRA adapter"):
        a.answer(Q, "tuned")
    with pytest.raises(ConfigError, match="no index is open"):
        make(retriever=None).answer(Q, "rag")


def test_auto_never_picks_the_adapter_when_none_is_loaded() -> None:
    assert make(adapter=False).answer(Q).mode == Mode.PROMPT


def test_compare_shares_one_retrieval_across_four_modes() -> None:
    retriever = FakeRetriever()
    gen = FakeGenerator()
    a = make(retriever=retriever, generator=gen)
    result = a.compare(Q)
    assert retriever.queries == [(Q, 5)]
    assert [x.mode for x in result.answers] == [Mode.PROMPT, Mode.RAG, Mode.TUNED, Mode.TUNED_RAG]
    assert result.decision.mode == Mode.TUNED
    # prompt and tuned write all three lines, rag and tuned + rag two (the source line is cited)
    assert [c["adapter"] for c in gen.calls] == [False] * 5 + [True] * 5
    rag, tuned_rag = result.answers[1], result.answers[3]
    assert rag.passages == tuned_rag.passages == result.passages
    assert result.answers[0].passages == []
    assert result.answers[2].reason == result.decision.reason
    assert result.answers[1].reason == "RAG: shown for comparison"


def test_compare_without_adapter_leaves_tuned_columns_empty() -> None:
    result = make(adapter=False).compare(Q)
    assert [x.text == "" for x in result.answers] == [False, False, True, True]
    assert result.answers[2].warnings == ["no adapter is loaded — train one with `hybrid train`"]


def test_correction_memory_answers_a_near_duplicate_at_once(tmp_path) -> None:
    gen = FakeGenerator()
    retriever = FakeRetriever()
    a = make(tmp_path, generator=gen, retriever=retriever)
    first = a.answer(Q, "rag")
    cid = a.correct(
        first, "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Unused days expire in March."
    )
    assert cid == 1
    calls, searches = len(gen.calls), len(retriever.queries)
    again = a.answer("how many days of annual leave do i get", "auto")
    assert again.from_correction
    assert (
        again.text == "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Unused days expire in March."
    )
    assert again.mode == Mode.RAG
    assert again.reason == "From correction #1 (similarity 1.00 to an earlier question)"
    assert [h.chunk.chunk_id for h in again.passages] == ["leave-1", "sick-1"]
    assert (len(gen.calls), len(retriever.queries)) == (calls, searches)  # no model, no search
    stream = a.stream("How many days of annual leave do I get ?!")
    assert list(stream.pieces) == [again.text] and stream.answer().from_correction


def test_correction_memory_ignores_other_languages_and_far_questions(tmp_path) -> None:
    a = make(tmp_path)
    a.correct(a.answer(Q, "rag"), "Fifteen days.")
    assert not a.answer("员工每年有几天年假？", "rag").from_correction
    assert not a.answer("What is the hotel cap per night?", "rag").from_correction
    assert not a.compare(Q).answers[1].from_correction  # compare always generates


def test_correct_without_store_is_a_config_error() -> None:
    a = make()
    with pytest.raises(ConfigError, match="no corrections store"):
        a.correct(a.answer(Q, "rag"), "better")


def test_hits_are_ordered_by_rank_before_prompting() -> None:
    fixed = [make_hit(SAMPLE_CHUNKS[1], 2, dense=0.7), make_hit(SAMPLE_CHUNKS[0], 1, dense=0.9)]
    answer = make(retriever=FakeRetriever(fixed=fixed)).answer(Q, "rag")
    assert [h.chunk.chunk_id for h in answer.passages] == ["leave-1", "sick-1"]


def test_an_abandoned_stream_says_so() -> None:
    from domain.errors import GenerationError

    stream = make().stream(Q, "rag")
    assert next(iter(stream.pieces)) == "Conclusion: Annual "
    stream.close()
    with pytest.raises(GenerationError, match="closed before it finished"):
        stream.answer()


def test_default_passage_layout_per_mode_and_one_request_per_line_the_model_writes() -> None:
    """Default options: RAG and tuned + RAG show passage [1] whole (focus_segments=3 would drop
    its canteen line, as whole_passages=0 shows), RAG lists it last and tuned + RAG first; the
    model is asked once per line it writes, its label the end of the prefill."""
    top = make_chunk(
        "leave-long",
        "hr/annual-leave.md",
        "Annual leave is 15 working days per year.\nLeave is booked in the HR portal.\n"
        "Unused days expire in March.\nThe canteen opens at noon.",
    )
    hits = [make_hit(top, 1, dense=0.9, bm25=3.0, score=1.0)]
    a = make(retriever=FakeRetriever(fixed=hits))
    for mode in (Mode.RAG, Mode.TUNED_RAG, Mode.PROMPT):
        a.answer(Q, mode)
    gen = a.generator
    assert isinstance(gen, FakeGenerator)
    for call in gen.calls[:4]:
        assert f"[1] hr/annual-leave.md\n{top.text}" in call["messages"][-1]["content"]
    labels = [c["prefill"].rsplit("\n", 1)[-1] for c in gen.calls]
    assert labels == ["Conclusion:", "Note:"] * 2 + ["Conclusion:", "Basis:", "Note:"]
    two = [hits[0], make_hit(make_chunk("sick", "hr/sick-leave.md", "Sick leave needs a note."), 2)]
    both = make(retriever=FakeRetriever(fixed=two))
    for mode in (Mode.RAG, Mode.TUNED_RAG):
        both.answer(Q, mode)
    rag_user, tuned_user = (c["messages"][-1]["content"] for c in both.generator.calls[::2])
    assert rag_user.index("[2] hr/sick-leave.md") < rag_user.index("[1] hr/annual-leave.md")  # best last
    assert tuned_user.index("[1] hr/annual-leave.md") < tuned_user.index("[2] hr/sick-leave.md")
    focused = make(retriever=FakeRetriever(fixed=hits), options=AssistantOptions(whole_passages=0))
    focused.answer(Q, Mode.RAG)
    user = focused.generator.calls[0]["messages"][-1]["content"]
    assert "canteen" not in user and "Annual leave is 15 working days" in user


class _RunOnGenerator(FakeGenerator):
    """Whatever it is asked, writes a sentence and then keeps copying passage lines; records
    whether the pipeline stopped it (the generator was closed) and how many pieces it produced."""

    LINES = (
        " Annual leave is 15 working days per year.",
        "\nUnused days expire in March.",
        "\nThe canteen.\n",
    )

    def __init__(self) -> None:
        super().__init__(adapter_loaded=False)
        self.closed = 0
        self.produced = 0

    def generate(self, messages, **kw):  # type: ignore[no-untyped-def]
        self.calls.append({"messages": [dict(m) for m in messages], **kw})
        try:
            for piece in self.LINES:
                self.produced += 1
                yield piece
        finally:
            self.closed += 1


def test_a_model_that_runs_on_is_stopped_at_the_end_of_each_line_it_writes() -> None:
    gen = _RunOnGenerator()
    answer = make(adapter=False, generator=gen).answer(Q, Mode.RAG)
    sentence = "Annual leave is 15 working days per year."
    assert answer.text == f"Conclusion: {sentence}\nBasis: [hr/annual-leave.md]\nNote: {sentence}"
    assert (gen.closed, gen.produced) == (2, 4)  # two lines, each stopped at its line break
    assert {c.span for c in answer.citations} == {sentence}


class _PastingGenerator(_RunOnGenerator):
    """Writes its line, then pastes a passage block from its prompt."""

    LINES = (" Annual leave is 15 working days per year.", "\n\n[2] hr/sick-leave.md | Sick leave\n", "x.\n")


def test_an_answer_that_pastes_a_passage_block_ends_before_it_and_cites_only_its_own_lines() -> None:
    gen = _PastingGenerator()
    answer = make(adapter=False, generator=gen).answer(Q, Mode.RAG)
    assert "[2]" not in answer.text and "Sick leave" not in answer.text
    assert gen.closed == 2
    assert {c.path for c in answer.citations} == {"hr/annual-leave.md"}


# ----------------------------------------------------------------------------- evidence first
def test_a_retrieval_mode_quotes_a_shown_sentence_first_and_cites_its_passage() -> None:
    a = make(options=AssistantOptions(low_score_warning=0.6, quote_evidence=True, focus_segments=0))
    answer = a.answer(Q, "rag")
    gen = a.generator
    assert isinstance(gen, FakeGenerator)
    (choice,) = gen.choices
    assert choice["prefill"] == "Evidence:" and choice["adapter"] is False
    assert choice["options"] == [
        " Annual leave is 15 working days per year.",
        " Unused days expire on 31 March.",
        " Sick leave needs a doctor's note after 3 days.",
        " Tell your manager on the first day.",
        " Not covered by the passages.",
    ]
    # The answer is written after the evidence line, which is not part of its text; the source
    # line names the quote's passage.
    assert gen.calls[0]["prefill"] == "Evidence: Annual leave is 15 working days per year.\nConclusion:"
    assert answer.evidence is not None and answer.evidence.path == "hr/annual-leave.md"
    assert [(c.path, c.span) for c in answer.citations] == [
        ("hr/annual-leave.md", "Annual leave is 15 working days per year.")
    ]
    assert answer.text == RAG_TEXT
    zh = a.answer("年假有几天？", "rag")
    assert zh.text.startswith("结论：") and not zh.text.startswith("结论： ")


def test_not_covered_gives_no_citation_and_modes_without_retrieval_never_quote() -> None:
    from tests.fakes_answer import make_hit

    unrelated = [make_hit(make_chunk("x", "misc/canteen.md", "Lunch is served at noon."), 1, dense=0.9)]
    a = make(
        options=AssistantOptions(low_score_warning=0.6, quote_evidence=True),
        retriever=FakeRetriever(fixed=unrelated),
    )
    answer = a.answer("Who approves overtime?", "tuned_rag")
    assert a.generator.choices[-1]["options"][-1] == " Not covered by the passages."
    assert answer.evidence is None and answer.citations == []
    assert a.generator.calls[0]["prefill"] == "Evidence: Not covered by the passages.\nConclusion:"
    assert answer.text.splitlines()[1] == "Basis: [misc/canteen.md]"  # nothing cited: the model's line
    a.answer(Q, "tuned")
    a.answer(Q, "prompt")
    assert len(a.generator.choices) == 1


def test_a_chinese_question_quotes_with_the_chinese_label() -> None:
    a = make(options=AssistantOptions(low_score_warning=0.0, quote_evidence=True))
    a.answer("年假有几天？", "rag")
    choice = a.generator.choices[-1]
    assert choice["prefill"] == "证据："
    assert choice["options"][-1] == "资料中没有相关内容。"
    assert all(not o.startswith(" ") for o in choice["options"])


def test_an_answer_with_evidence_survives_its_json_round_trip() -> None:
    from domain.serialize import answer_from_json, answer_to_json

    a = make(options=AssistantOptions(low_score_warning=0.6, quote_evidence=True, focus_segments=0))
    answer = a.answer(Q, "rag")
    again = answer_from_json(answer_to_json(answer))
    assert again.evidence == answer.evidence and again.evidence is not None
    assert answer_from_json({**answer_to_json(answer), "evidence": None}).evidence is None


def test_a_scorer_narrows_the_quote_to_its_best_sentences_alone_or_in_pairs_cited_per_passage() -> None:
    """With a sentence scorer and evidence_candidates=2, the options are the two best-scored shown
    sentences (in passage order), then the pair, then "not covered"; a pair drawn from two
    passages cites both, each with its own sentence as the span."""

    def score(question: str, texts):
        assert question == Q
        return [("15 working days" in t) * 2 + ("manager" in t) for t in texts]

    a = make(
        options=AssistantOptions(
            low_score_warning=0.6, quote_evidence=True, focus_segments=0, evidence_candidates=2
        ),
        sentence_scorer=score,
    )
    a.answer(Q, "rag")
    options = a.generator.choices[-1]["options"]
    pair = " Annual leave is 15 working days per year. Tell your manager on the first day."
    assert options == [
        " Annual leave is 15 working days per year.",
        " Tell your manager on the first day.",
        pair,
        " Not covered by the passages.",
    ]

    class _PairPicker(FakeGenerator):
        def choose(self, messages, options, **kw):
            super().choose(messages, options, **kw)
            return options[2]

    b = make(
        options=AssistantOptions(
            low_score_warning=0.6, quote_evidence=True, focus_segments=0, evidence_candidates=2
        ),
        sentence_scorer=score,
        generator=_PairPicker(adapter_loaded=True),
    )
    answer = b.answer(Q, "rag")
    assert [(c.path, c.span, c.sentence) for c in answer.citations] == [
        ("hr/annual-leave.md", "Annual leave is 15 working days per year.", pair.strip()),
        ("hr/sick-leave.md", "Tell your manager on the first day.", pair.strip()),
    ]
    assert answer.evidence == answer.citations[0]


def test_an_answer_says_what_its_question_was_searched_as() -> None:
    from domain.crosslingual import TranslatingRetriever

    class Translatable(FakeRetriever):
        def search(self, query, *, k=5, translations=None):  # noqa: ANN001
            self.asked_with = translations
            return super().search(translations.get("en", query) if translations else query, k=k)

        def search_languages(self) -> list[str]:
            return ["en"]

    inner = Translatable()
    translated = TranslatingRetriever(inner, lambda _q, _lang: "How long is annual leave?")
    a = make(retriever=translated)
    answer = a.answer("年假有多长？", "rag")
    assert inner.asked_with == {"en": "How long is annual leave?"}
    assert answer.searched_as == {"en": "How long is annual leave?"}
    assert answer.passages and answer.passages[0].chunk.path == "hr/annual-leave.md"
    assert a.answer("年假有多长？", "prompt").searched_as == {}  # no search, no translation shown


def test_auto_judges_passages_found_by_a_translation_as_that_languages_matches() -> None:
    from domain.crosslingual import TranslatingRetriever

    english = "How long is annual leave?"
    found = [make_hit(SAMPLE_CHUNKS[0], 1, dense=0.85, bm25=2.0)]

    class Translatable(FakeRetriever):
        def search(self, query, *, k=5, translations=None):  # noqa: ANN001, ARG002
            return list(found)

        def search_languages(self) -> list[str]:
            return ["en"]

    plain = make(retriever=Translatable())
    translated = make(retriever=TranslatingRetriever(Translatable(), lambda _q, _lang: english))
    question = "年假有多长？"
    # the same English passage at 0.85: under the Chinese question's bar (0.89) when the Chinese
    # question itself was compared with it, over the English bar (0.82) when its translation was
    assert plain.answer(question).mode == Mode.TUNED  # the adapter alone, no retrieval
    answer = translated.answer(question)
    assert answer.mode == Mode.TUNED_RAG
    assert answer.reason.startswith(
        "Tuned + RAG: top passage 0.85 from hr/annual-leave.md under the question's English translation;"
    )


def test_a_larger_model_answers_when_the_best_passage_is_in_another_language() -> None:
    english = [make_hit(SAMPLE_CHUNKS[0], 1, dense=0.9, bm25=3.0)]
    main, larger = FakeGenerator(adapter_loaded=True), FakeGenerator(adapter_loaded=True)
    a = make(
        retriever=FakeRetriever(fixed=english),
        generator=main,
        other_language_generator=larger,
        other_language_label="Qwen 1.5B",
        other_language_adapter="d15-v1",
    )
    answer = a.answer("年假有多长？", "rag")
    assert larger.calls and not main.calls and answer.answered_by == "Qwen 1.5B"
    assert answer.reason.endswith(
        "; answered by Qwen 1.5B: the question is in Chinese, its best passage in English"
    )
    tuned = a.answer("年假有多长？", "tuned_rag")
    assert tuned.reason.endswith("its best passage in English")
    assert tuned.answered_by == "Qwen 1.5B with adapter d15-v1"  # its own adapter, not the 0.5B's
    larger.calls.clear()
    same = a.answer(Q, "rag")  # an English question over the English passage: the answering model
    assert main.calls and not larger.calls and "answered by" not in same.reason and not same.answered_by
    main.calls.clear()
    assert a.answer("年假有多长？", "prompt").mode == Mode.PROMPT and main.calls and not larger.calls


def test_without_its_own_adapter_the_larger_model_does_not_answer_the_tuned_modes() -> None:
    english = [make_hit(SAMPLE_CHUNKS[0], 1, dense=0.9, bm25=3.0)]
    main, larger = FakeGenerator(adapter_loaded=True), FakeGenerator(adapter_loaded=False)
    a = make(retriever=FakeRetriever(fixed=english), generator=main, other_language_generator=larger)
    answer = a.answer("年假有多长？", "tuned_rag")
    assert main.calls and not larger.calls and "answered by" not in answer.reason
    assert "answered by fake-generator" in a.answer("年假有多长？", "rag").reason  # its name, no label given
