"""The decision guide's self-test and flow give the recommendations the source documents argue for."""

from __future__ import annotations

import pytest

from domain.strategy import DECISION_GUIDE, SELF_TEST, recommend_from_flow, recommend_from_self_test


@pytest.mark.parametrize(
    ("yes_keys", "mode", "headline"),
    [
        ((), "rag", "0 of 5 yes: do not fine-tune yet"),
        (("examples", "structure"), "rag", "2 of 5 yes: do not fine-tune yet"),
        (("examples", "structure", "private"), "tuned_rag", "3 of 5 yes: consider fine-tuning"),
        (tuple(k for k, _ in SELF_TEST), "tuned_rag", "5 of 5 yes: consider fine-tuning"),
    ],
)
def test_self_test_threshold_is_three_yes(yes_keys, mode, headline) -> None:
    rec = recommend_from_self_test(dict.fromkeys(yes_keys, True))
    assert (rec.mode, rec.headline) == (mode, headline)


def test_self_test_rejects_unknown_question() -> None:
    with pytest.raises(ValueError, match="unknown self-test questions: \\['budget'\\]"):
        recommend_from_self_test({"budget": True})


@pytest.mark.parametrize(
    ("kwargs", "mode"),
    [
        (
            {
                "needs_stable_structure": True,
                "template_holds": True,
                "specific_style": True,
                "plenty_of_data": True,
            },
            "rag",
        ),
        (
            {
                "needs_stable_structure": False,
                "template_holds": False,
                "specific_style": False,
                "plenty_of_data": True,
            },
            "rag",
        ),
        (
            {
                "needs_stable_structure": True,
                "template_holds": False,
                "specific_style": True,
                "plenty_of_data": True,
            },
            "tuned_rag",
        ),
        (
            {
                "needs_stable_structure": True,
                "template_holds": False,
                "specific_style": True,
                "plenty_of_data": False,
            },
            "rag",
        ),
        (
            {
                "needs_stable_structure": False,
                "template_holds": False,
                "specific_style": True,
                "plenty_of_data": True,
                "private_knowledge": False,
            },
            "tuned",
        ),
        (
            {
                "needs_stable_structure": False,
                "template_holds": False,
                "specific_style": False,
                "plenty_of_data": False,
                "private_knowledge": False,
            },
            "prompt",
        ),
    ],
)
def test_flow(kwargs, mode) -> None:
    assert recommend_from_flow(**kwargs).mode == mode


def test_guide_has_the_eight_needs() -> None:
    assert len(DECISION_GUIDE) == 8
    assert [r.fine_tune for r in DECISION_GUIDE] == [
        "no",
        "no",
        "usually no",
        "yes",
        "yes",
        "yes",
        "no",
        "yes",
    ]
