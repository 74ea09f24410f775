"""Citations: sentence splitting in English and Chinese, n-gram matching against passages, the
matched span taken verbatim from the passage, the threshold, and the model's own tags ignored."""

from __future__ import annotations

from domain.citations import attach_citations, cited_paths, matched_span, overlap, split_sentences
from domain.types import Citation
from tests.fakes_answer import SAMPLE_CHUNKS, make_hit

LEAVE, SICK, TRAVEL, LEAVE_ZH = SAMPLE_CHUNKS
HITS = [make_hit(LEAVE, 1), make_hit(SICK, 2), make_hit(TRAVEL, 3)]


def test_split_sentences_english_and_chinese() -> None:
    text = "Conclusion: Leave is 15 days. Files like hr/leave.md stay whole!\n结论：年假十五天。须提前申请；逾期作废"
    assert split_sentences(text) == [
        "Conclusion: Leave is 15 days.",
        "Files like hr/leave.md stay whole!",
        "结论：年假十五天。",
        "须提前申请；",
        "逾期作废",
    ]


def test_house_style_answer_cites_each_supported_sentence() -> None:
    answer = (
        "Conclusion: Annual leave is 15 working days per year.\n"
        "Basis: [hr/annual-leave.md]\n"
        "Note: Sick leave needs a doctor's note after 3 days."
    )
    assert attach_citations(answer, HITS) == [
        Citation(
            sentence="Conclusion: Annual leave is 15 working days per year.",
            chunk_id="leave-1",
            path="hr/annual-leave.md",
            heading="Annual leave > Entitlement",
            span="Annual leave is 15 working days per year.",
            score=1.0,
        ),
        Citation(
            sentence="Note: Sick leave needs a doctor's note after 3 days.",
            chunk_id="sick-1",
            path="hr/sick-leave.md",
            heading="Sick leave",
            span="Sick leave needs a doctor's note after 3 days.",
            score=1.0,
        ),
    ]


def test_the_models_own_tags_are_not_trusted() -> None:
    cites = attach_citations("The hotel cap is 680 yuan per night [1]. See [hr/sick-leave.md].", HITS)
    assert [(c.chunk_id, c.span) for c in cites] == [
        ("travel-1", "The hotel cap is 680 yuan per night in tier-one cities.")
    ]


def test_unsupported_sentences_get_no_citation() -> None:
    assert attach_citations("The moon is made of cheese and jam.", HITS) == []
    # a bare fragment (here a heading echoed by the model) matches anything; it cites nothing
    assert attach_citations("年假。Hotels.", [make_hit(LEAVE_ZH, 1), make_hit(TRAVEL, 2)]) == []
    assert attach_citations("", HITS) == []
    assert attach_citations("Annual leave is 15 working days.", []) == []


def test_threshold() -> None:
    sentence = "Unused leave days expire in March."
    score = overlap(sentence, LEAVE.text)
    assert 0.4 < score < 0.9
    assert len(attach_citations(sentence, HITS, threshold=score)) == 1
    assert attach_citations(sentence, HITS, threshold=score + 0.01) == []


def test_chinese_answer_matches_by_character_bigrams() -> None:
    answer = (
        "结论：员工每年享有十五天年假。\n依据：【hr/annual-leave-zh.md】\n提示：结转年假须在三月底前休完。"
    )
    cites = attach_citations(answer, [make_hit(LEAVE, 1), make_hit(LEAVE_ZH, 2)])
    assert [(c.chunk_id, c.span, c.score) for c in cites] == [
        ("leave-zh", "员工每年享有十五天年假。", 1.0),
        # bigrams of 结转年假须在三月底前休完: 11, all but 在三 are in the passage
        ("leave-zh", "结转年假须在次年三月底前休完。", round(10 / 11, 4)),
    ]


def test_ties_go_to_the_better_ranked_passage() -> None:
    twin = make_hit(LEAVE, 1)
    other = make_hit(LEAVE.__class__(**{**LEAVE.__dict__, "chunk_id": "copy"}), 2)
    assert (
        attach_citations("Annual leave is 15 working days per year.", [other, twin])[0].chunk_id == "leave-1"
    )


def test_matched_span_is_verbatim_passage_text() -> None:
    span = matched_span("unused days expire 31 march", LEAVE.text)
    assert span == "Unused days expire on 31 March."
    assert span in LEAVE.text


def test_cited_paths_one_per_cited_passage() -> None:
    c = [
        Citation("s1", "a", "x.md", "", "", 1.0),
        Citation("s2", "a", "x.md", "", "", 1.0),
        Citation("s3", "b", "x.md", "", "", 1.0),
        Citation("s4", "c", "y.md", "", "", 1.0),
    ]
    assert cited_paths(c) == ["x.md", "x.md", "y.md"]
