"""Ask page: one question, a mode (auto or one of the four), the router's reason as a badge, the
answer streamed, its sources with the matched span marked, and "correct this answer".
Works through ``get_assistant()`` — the same pipeline calls as ``hybrid ask``."""

from __future__ import annotations

import streamlit as st

from app.views.answer_parts import (
    answer_facts,
    correction_editor,
    route_badge,
    show_answer_body,
    show_citations,
    show_passages,
    stream_answer,
)
from app.views.common import collection_caption, shown_errors
from app.views.services import get_assistant
from app.views.text import md_escape
from domain.router import MODE_CHOICES, MODE_LABELS
from domain.style import detect_lang

st.title("Ask")
collection_caption()
assistant = get_assistant()
with shown_errors():
    facts = assistant.status()
    st.caption(
        md_escape(
            f"Index: {facts.get('index') or 'none'} · style: {facts.get('style') or '?'} · "
            f"adapter: {facts.get('adapter') or 'none'} · backend: {facts.get('backend', '?')}"
        )
    )

with st.form("ask_form", border=False):
    question = st.text_area(
        "Your question",
        key="ask_question",
        height=90,
        placeholder="e.g. How many days of annual leave do new employees get?",
    )
    mode = st.segmented_control(
        "Mode",
        MODE_CHOICES,
        format_func=MODE_LABELS.get,
        default="auto",
        key="ask_mode",
        help="Auto lets the router pick; any other choice overrides it.",
    )
    asked = st.form_submit_button("Ask", type="primary")

if asked:
    st.session_state.pop("ask_last", None)
    st.session_state.pop("ask_correct_saved", None)
    st.session_state["ask_correct_open"] = False
    if not question.strip():
        st.warning("Type a question first.")
    else:
        with shown_errors():
            with st.spinner("Retrieving and routing… (the first question also loads the models)"):
                stream = assistant.stream(question.strip(), mode or "auto")
            route_badge(stream.decision)
            with st.chat_message("assistant"):
                answer = stream_answer(stream)
            st.session_state["ask_last"] = {
                "answer": answer,
                "decision": stream.decision,
                "passages": list(stream.passages),
            }
            st.rerun()  # redraw through the one code path below (notes, sources, editor)

last = st.session_state.get("ask_last")
if last:
    answer = last["answer"]
    route_badge(last["decision"], from_memory=answer.from_correction)
    with st.chat_message("assistant"):
        show_answer_body(answer)
        st.caption(answer_facts(answer))
    show_citations(answer)
    passages = answer.passages or ([] if not answer.mode.uses_retrieval else last["passages"])
    show_passages(passages, answer=answer, question=answer.question)
    own = detect_lang(answer.question)
    if facts.get("translate_hint") and not answer.searched_as and any(h.chunk.lang != own for h in passages):
        st.info(md_escape(f"Tip: {facts['translate_hint']}."))
    correction_editor(assistant, answer, key="ask_correct")
