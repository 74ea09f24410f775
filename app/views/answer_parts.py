"""Pieces the Ask and Compare pages share: the mode labels, the router badge, passages with the
matched span marked in plain text, an answer's citations and timing, and the correction editor.
Every string that came from a document or a model is escaped or shown with ``st.text``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import streamlit as st

from app.views.common import collection_style, shown_errors
from app.views.text import best_sentence, escaped_stream, mark_span, md_escape, seconds, where
from domain.crosslingual import LANGUAGE_NAMES
from domain.router import MODE_LABELS
from domain.style import detect_lang, format_score

if TYPE_CHECKING:
    from app.views.services import AnswerStream, AskBackend
    from domain.types import Answer, Hit, RouteDecision


def route_badge(decision: RouteDecision, *, from_memory: bool = False) -> None:
    """The mode actually used as a badge, with the router's one-line reason beside it."""
    who = "correction memory" if from_memory else "you chose" if decision.overridden else "router"
    st.badge(
        f"{MODE_LABELS.get(decision.mode.value, decision.mode.value)} · {who}",
        icon=":material/alt_route:",
        color="blue",
    )
    if decision.reason:
        st.caption(md_escape(decision.reason))


def stream_answer(stream: AnswerStream) -> Answer:
    """Show ``stream``'s pieces as they come (escaped) and return the finished answer.

    If the run stops early (an error, or the user reruns the page mid-answer), the stream is
    closed at once so the generator stops and frees the model for the next question."""
    try:
        st.write_stream(escaped_stream(stream.pieces))
        return stream.answer()
    except BaseException:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        raise


def answer_facts(answer: Answer) -> str:
    """One caption line: timing, tokens/s and format score (our own string)."""
    if answer.from_correction:
        return (
            f"from correction memory · format score {format_score(answer.text, style=collection_style()):.2f}"
        )
    t = answer.timing
    parts = []
    if answer.mode.uses_retrieval:
        parts.append(f"retrieval {seconds(t.retrieval_s)}")
    parts += [f"first token {seconds(t.first_token_s)}", f"total {seconds(t.total_s)}"]
    if t.translate_s:
        parts.append(f"answer line translated in {seconds(t.translate_s)}")
    if t.tokens_per_s:
        parts.append(f"{t.tokens_per_s:.1f} tokens/s")
    parts.append(f"format score {format_score(answer.text, style=collection_style()):.2f}")
    return " · ".join(parts)


def show_answer_body(answer: Answer) -> None:
    """The answer text (escaped Markdown), with correction-memory and low-evidence notes."""
    if answer.from_correction:
        st.info(
            "Answered from your correction memory (a near-duplicate question was corrected before); "
            "no model was run.",
            icon=":material/history:",
        )
    if answer.evidence:
        e = answer.evidence
        st.caption(md_escape(f"Evidence, quoted word for word from {where(e.path, e.heading)}:"))
        st.code(e.sentence, language=None, wrap_lines=True)
    st.markdown(md_escape(answer.text))
    if answer.answered_by:
        st.caption(
            md_escape(
                f"Answered by {answer.answered_by}: the question and its best passage are in "
                "different languages."
            ),
            help="answer.other_language_model in settings",
        )
    if answer.translated_from:
        lang = LANGUAGE_NAMES.get(detect_lang(answer.question), "the question's language")
        st.caption(
            md_escape(f"Answer line translated into {lang} by a local model. As the model wrote it:"),
            help="answer.translate_answers in settings; citations come from the model's own line",
        )
        st.text(answer.translated_from)
    for w in answer.warnings:
        st.warning(md_escape(w))


def show_citations(answer: Answer) -> None:
    if not answer.citations:
        return
    st.markdown("**Citations**")
    for c in answer.citations:
        st.caption(md_escape(f"“{c.sentence}” → {where(c.path, c.heading)} ({c.score:.2f})"))


def span_for(hit: Hit, answer: Answer | None, question: str) -> str:
    """The part of ``hit`` to mark: a cited span when the answer cited it, else the sentence that
    shares most words with the question."""
    if answer is not None:
        for c in answer.citations:
            if c.chunk_id == hit.chunk.chunk_id and c.span:
                return c.span
    return best_sentence(hit.chunk.text, question)


def show_passages(
    hits: Sequence[Hit],
    *,
    answer: Answer | None,
    question: str,
    searched_as: Mapping[str, str] | None = None,
) -> None:
    """Passages as expanders: file and scores as the title, text with the span marked ⟦like this⟧;
    above them, the question as translated for searching other languages (``searched_as``, else
    the answer's)."""
    if not hits:
        st.caption("No passages were retrieved for this mode.")
        return
    st.markdown(f"**Sources** ({len(hits)} passages)")
    translated = searched_as if searched_as is not None else (answer.searched_as if answer else {})
    for lang, text in translated.items():
        name = LANGUAGE_NAMES.get(lang, lang)
        st.caption(md_escape(f"{name} passages were searched with the question translated: “{text}”"))
    for h in hits:
        dense = "" if h.dense_score is None else f" · dense {h.dense_score:.2f}"
        bm25 = "" if h.bm25_score is None else f" · BM25 {h.bm25_score:.1f}"
        title = f"{h.rank}. {where(h.chunk.path, h.chunk.heading, h.chunk.page)} · fused {h.score:.3f}{dense}{bm25}"
        with st.expander(md_escape(title), expanded=h.rank == 1):
            span = span_for(h, answer, question)
            text, found = mark_span(h.chunk.text, span)
            if found:
                st.caption("Matched span (marked ⟦like this⟧ in the passage below)")
                st.code(span, language=None, wrap_lines=True)
            st.text(text)


def correction_editor(assistant: AskBackend, answer: Answer, *, key: str) -> None:
    """A toggle that opens an editor pre-filled with the answer; saving stores the correction."""
    if not st.toggle("Correct this answer", key=f"{key}_open"):
        saved = st.session_state.get(f"{key}_saved")
        if saved:
            st.success(saved)
        return
    with st.form(f"{key}_form"):
        corrected = st.text_area("Corrected answer", value=answer.text, height=160, key=f"{key}_text")
        submitted = st.form_submit_button("Save correction", type="primary")
    if submitted:
        if not corrected.strip() or corrected.strip() == answer.text.strip():
            st.warning("Edit the answer first — the correction is empty or unchanged.")
            return
        with shown_errors():
            cid = assistant.save_correction(answer, corrected.strip())
            msg = (
                f"Saved correction #{cid}. The same question is now answered from it at once; "
                "retrain on the Train page to teach the adapter."
            )
            st.session_state[f"{key}_saved"] = msg
            st.success(msg)
