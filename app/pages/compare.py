"""Compare page: one question answered in all four modes over one shared retrieval (shown once),
side by side with latency, tokens/s and format score, the router's pick marked, and a correct
button per column. Works through ``get_assistant().compare`` — the same call as ``hybrid compare``."""

from __future__ import annotations

import streamlit as st

from app.page_answer import (
    MODE_LABELS,
    correction_editor,
    route_badge,
    show_answer_body,
    show_citations,
    show_passages,
)
from app.page_common import shown_errors
from app.page_services import get_assistant
from app.page_text import seconds
from domain.style import format_score

st.title("Compare the four modes")
st.caption("Prompt only · RAG · Tuned · Tuned + RAG for the same question. Retrieval runs once and the "
           "two RAG columns share its passages.")
assistant = get_assistant()

with st.form("compare_form", border=False):
    question = st.text_area("Question", key="compare_question", height=80,
                            placeholder="e.g. 年假可以结转到下一年吗？")
    go = st.form_submit_button("Compare", type="primary")

if go:
    for k in [k for k in st.session_state if str(k).startswith("compare_fix_")]:
        del st.session_state[k]
    if not question.strip():
        st.warning("Type a question first.")
    else:
        with shown_errors(), st.spinner("Answering in four modes (one retrieval, four generations)…"):
            st.session_state["compare_last"] = assistant.compare(question.strip())

result = st.session_state.get("compare_last")
if result:
    picked = result.decision.mode
    route_badge(result.decision)
    cols = st.columns(len(result.answers), gap="medium")
    for col, answer in zip(cols, result.answers, strict=True):
        with col:
            star = " ★" if answer.mode == picked else ""
            st.subheader(MODE_LABELS.get(answer.mode.value, answer.mode.value) + star)
            if answer.mode == picked:
                st.caption("The router's pick for this question.")
            t = answer.timing
            m1, m2, m3 = st.columns(3)
            m1.metric("Latency", seconds(t.total_s), help=f"first token after {seconds(t.first_token_s)}")
            m2.metric("Tokens/s", f"{t.tokens_per_s:.1f}")
            m3.metric("Format", f"{format_score(answer.text):.2f}")
            with st.container(border=True):
                show_answer_body(answer)
            show_citations(answer)
            correction_editor(assistant, answer, key=f"compare_fix_{answer.mode.value}")
    st.divider()
    st.subheader("Shared retrieval")
    st.caption("Both RAG columns answered from these passages.")
    show_passages(result.passages, answer=None, question=result.question)
