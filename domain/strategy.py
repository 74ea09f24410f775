"""The decision guide the product makes measurable: when prompting, RAG, fine-tuning or both fit.

Owns the guide's content (the table, the five-question self-test, the decision flow) as plain data
and two pure functions that turn a user's answers into a recommendation. The Strategy page shows
them next to the measured scoreboard; nothing here knows about models.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuideRow:
    need: str
    recommended: str
    fine_tune: str
    why: str


DECISION_GUIDE: tuple[GuideRow, ...] = (
    GuideRow("General Q&A, chit-chat", "Prompting", "no", "A general model already does this well."),
    GuideRow(
        "Internal knowledge / document assistant",
        "RAG",
        "no",
        "Knowledge changes often; an index is easier to keep current than weights.",
    ),
    GuideRow(
        "Fixed output format (report, SQL, JSON)",
        "Prompt template + few-shot examples",
        "usually no",
        "A prompt constrains structure cheaply; fine-tune only if it does not hold.",
    ),
    GuideRow(
        "A distinctive voice or writing style",
        "Fine-tune + templates",
        "yes",
        "Style is learned best in the weights.",
    ),
    GuideRow(
        "Specialised professional work (medical, legal)",
        "Fine-tune + RAG",
        "yes",
        "Structured answers and professional language from the adapter, facts from retrieval.",
    ),
    GuideRow(
        "Cost or private deployment",
        "Fine-tune or distil a small local model",
        "yes",
        "A small local model is cheap to run and keeps data in-house.",
    ),
    GuideRow(
        "Only about 200 examples", "Prompting + few-shot", "no", "Too little data: a fine-tune would overfit."
    ),
    GuideRow(
        "Millisecond latency, high concurrency",
        "Fine-tuned small model on an optimised runtime",
        "yes",
        "Small tuned models deploy at the edge.",
    ),
)

SELF_TEST: tuple[tuple[str, str], ...] = (
    ("examples", "Do you have more than about 5,000 good examples of the task?"),
    ("structure", "Do the task's inputs and outputs have a clear structure?"),
    ("prompt_fails", "Do prompts fail to hold the format or tone stably?"),
    ("private", "Do you need local or private deployment?"),
    ("evolving", "Does the behaviour need continuous updates?"),
)
SELF_TEST_THRESHOLD = 3


@dataclass(frozen=True)
class Recommendation:
    mode: str  # one of "prompt", "rag", "tuned", "tuned_rag"
    headline: str
    reason: str


def recommend_from_self_test(answers: dict[str, bool]) -> Recommendation:
    """Three or more "yes" answers to the self-test point to fine-tuning.

    >>> recommend_from_self_test({"examples": True, "structure": True, "private": True}).mode
    'tuned_rag'
    >>> recommend_from_self_test({"structure": True}).mode
    'rag'
    """
    unknown = set(answers) - {key for key, _ in SELF_TEST}
    if unknown:
        raise ValueError(f"unknown self-test questions: {sorted(unknown)}")
    yes = sum(1 for key, _ in SELF_TEST if answers.get(key, False))
    if yes >= SELF_TEST_THRESHOLD:
        return Recommendation(
            "tuned_rag",
            f"{yes} of 5 yes: consider fine-tuning",
            "Enough signal for a LoRA adapter; keep retrieval for facts that change.",
        )
    return Recommendation(
        "rag",
        f"{yes} of 5 yes: do not fine-tune yet",
        "Start with careful prompts and retrieval; fine-tune only when they demonstrably fail.",
    )


def recommend_from_flow(
    *,
    needs_stable_structure: bool,
    template_holds: bool,
    specific_style: bool,
    plenty_of_data: bool,
    private_knowledge: bool = True,
) -> Recommendation:
    """Walk the decision flow: structure → template → style → data.

    >>> recommend_from_flow(needs_stable_structure=True, template_holds=True,
    ...                     specific_style=False, plenty_of_data=False).mode
    'rag'
    >>> recommend_from_flow(needs_stable_structure=True, template_holds=False,
    ...                     specific_style=True, plenty_of_data=True).mode
    'tuned_rag'
    """
    knowledge = "rag" if private_knowledge else "prompt"
    if needs_stable_structure and template_holds:
        return Recommendation(
            knowledge,
            "A prompt template holds the structure: no fine-tuning",
            "Keep the format in the prompt; add retrieval for private facts.",
        )
    if not specific_style:
        return Recommendation(
            knowledge,
            "No particular tone or style: RAG or a plain model",
            "Fine-tuning would buy nothing a prompt cannot.",
        )
    if plenty_of_data:
        mode = "tuned_rag" if private_knowledge else "tuned"
        return Recommendation(
            mode,
            "A specific style and plenty of data: fine-tune",
            "Train a LoRA adapter for the style; retrieval still supplies the facts.",
        )
    return Recommendation(
        knowledge,
        "A specific style but little data: prompt + RAG",
        "Too few examples to fine-tune safely; use few-shot examples in the prompt.",
    )
