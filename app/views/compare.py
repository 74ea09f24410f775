"""Compare page: one question answered in all four modes over one shared retrieval (shown once),
side by side with latency, tokens/s and format score, the router's pick marked, and a correct
button per column. Uses the pipeline's own compare steps (one ``retrieve``, the router's ``decide``,
then ``stream_with`` per mode) so each column streams as it is generated."""

from __future__ import annotations

import streamlit as st

from app.views.answer_parts import (
    correction_editor,
    route_badge,
    show_answer_body,
    show_citations,
    show_passages,
    stream_answer,
)
from app.views.common import collection_caption, collection_style, shown_errors
from app.views.services import get_assistant
from app.views.text import md_escape, seconds
from domain.errors import HybridError
from domain.router import MODE_LABELS
from domain.style import format_score
from domain.types import ALL_MODES, Answer, Mode

st.title("Compare the four modes")
collection_caption()
st.caption(
    "Prompt only · RAG · Tuned · Tuned + RAG for the same question. Retrieval runs once and the "
    "two RAG columns share its passages."
)
assistant = get_assistant()

with st.form("compare_form", border=False):
    question = st.text_area(
        "Question", key="compare_question", height=80, placeholder="e.g. 年假可以结转到下一年吗？"
    )
    go = st.form_submit_button("Compare", type="primary")


def _title(mode: Mode, picked: Mode) -> str:
    return MODE_LABELS.get(mode.value, mode.value) + (" ★" if mode == picked else "")


def _stream_all(question: str) -> None:
    """Retrieve once, then stream the four modes one after another into their columns."""
    with st.spinner("Retrieving once for all four modes… (the first question also loads the models)"):
        run = assistant.compare(question)
    route_badge(run.decision)
    answers = []
    for col, mode in zip(st.columns(len(ALL_MODES), gap="medium"), ALL_MODES, strict=True):
        with col:
            st.subheader(_title(mode, run.decision.mode))
            try:
                answers.append(stream_answer(run.start(mode)))
            except HybridError as e:  # e.g. a tuned mode with no adapter: the other columns still run
                st.warning(md_escape(str(e)))
                if mode.uses_adapter:
                    st.caption("Train an adapter on the Train page to fill this column.")
                answers.append(Answer(question, mode, "", warnings=[str(e)]))
    st.session_state["compare_last"] = {
        "question": run.question,
        "decision": run.decision,
        "passages": list(run.passages),
        "answers": answers,
    }


if go:
    for k in [k for k in st.session_state if str(k).startswith("compare_fix_")]:
        del st.session_state[k]
    st.session_state.pop("compare_last", None)
    if not question.strip():
        st.warning("Type a question first.")
    else:
        with shown_errors():
            _stream_all(question.strip())
            st.rerun()  # redraw through the one code path below (metrics, citations, editors)

result = st.session_state.get("compare_last")
if result:
    picked = result["decision"].mode
    route_badge(result["decision"])
    cols = st.columns(len(result["answers"]), gap="medium")
    for col, answer in zip(cols, result["answers"], strict=True):
        with col:
            st.subheader(_title(answer.mode, picked))
            if answer.mode == picked:
                st.caption("The router's pick for this question.")
            if not answer.text:
                for w in answer.warnings:
                    st.warning(md_escape(w))
                if answer.mode.uses_adapter:
                    st.caption("Train an adapter on the Train page to fill this column.")
                continue
            t = answer.timing
            st.markdown(
                f"latency **{seconds(t.total_s)}** · **{t.tokens_per_s:.1f}** tokens/s · "
                f"format **{format_score(answer.text, style=collection_style()):.2f}**",
                help=f"first token after {seconds(t.first_token_s)}; format = share of house-style checks passed",
            )
            with st.container(border=True):
                show_answer_body(answer)
            show_citations(answer)
            correction_editor(assistant, answer, key=f"compare_fix_{answer.mode.value}")
    st.divider()
    st.subheader("Shared retrieval")
    st.caption("Retrieval ran once; both RAG columns answered from these passages.")
    searched_as = next((a.searched_as for a in result["answers"] if a.searched_as), {})
    show_passages(result["passages"], answer=None, question=result["question"], searched_as=searched_as)
