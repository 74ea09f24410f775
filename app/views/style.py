"""Answer style page: the selected collection's style profile — the labelled lines an answer has,
which one answers and which names the source, the system prompt and passage instructions per
language, the worked example and the "not covered" phrases. Saving checks the profile and the
worked examples against it; the prompt builder, the format checker and the evaluation read it."""

from __future__ import annotations

import streamlit as st

from app.views.common import collection_caption, settings, shown_errors
from app.views.text import md_escape
from app.wiring.collections import get_collection, reset_style, save_style
from domain.errors import ConfigError
from domain.style import LANGS, Example, StyleProfile, check_format

st.title("Answer style")
collection_caption()
st.caption(
    "How this collection's answers look. The prompts ask for it, the format score checks it, and "
    "training rows are written in it. Changes apply to the next answer."
)

collection = get_collection(settings())
style: StyleProfile | None = None
with shown_errors():
    style = collection.style()
if style is None:
    st.stop()
where = collection.style_file()
st.caption(md_escape(f"Profile '{style.name}' · from {where if where else 'the built-in neutral style'}"))

key = f"style_{collection.name}_"


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


with st.form(key + "form", border=False):
    name = st.text_input("Profile name", value=style.name, key=key + "name")
    cols = st.columns(len(LANGS))
    labels: dict[str, tuple[str, ...]] = {}
    for col, lang in zip(cols, LANGS, strict=True):
        with col:
            labels[lang] = _lines(
                st.text_area(
                    f"Labels ({lang}), one per line, in answer order",
                    value="\n".join(style.labels_for(lang)),
                    key=key + f"labels_{lang}",
                    height=110,
                )
            )
    en_labels = labels["en"] or style.labels_for("en")
    c1, c2, c3 = st.columns(3)
    answer_line = c1.selectbox(
        "Line that answers",
        range(len(en_labels)),
        index=min(style.answer_line, len(en_labels) - 1),
        format_func=lambda i: en_labels[i],
        key=key + "answer_line",
    )
    source_line = c2.selectbox(
        "Line that names the source",
        range(len(en_labels)),
        index=min(style.source_line, len(en_labels) - 1),
        format_func=lambda i: en_labels[i],
        key=key + "source_line",
    )
    max_words = c3.number_input(
        "Longest answer line (English words)",
        min_value=1,
        value=int(style.max_answer.get("en", 60)),
        key=key + "max_en",
    )
    not_covered = _lines(
        st.text_area(
            "Phrases that say no document covers the question (one per line)",
            value="\n".join(style.not_covered),
            key=key + "not_covered",
            height=90,
        )
    )
    prompts: dict[str, str] = {}
    instructions: dict[str, str] = {}
    examples: list[Example] = []
    for lang in LANGS:
        st.markdown(f"**{ {'en': 'English', 'zh': 'Chinese'}[lang] }**")
        prompts[lang] = st.text_area(
            f"System prompt ({lang})", value=style.system(lang), key=key + f"system_{lang}", height=160
        )
        instructions[lang] = st.text_input(
            f"Instructions above the passages ({lang})",
            value=style.instructions(lang),
            key=key + f"instr_{lang}",
        )
        example = style.example(lang)
        with st.expander(f"Worked example ({lang})", expanded=False):
            question = st.text_input(
                "Question", value=example.question if example else "", key=key + f"q_{lang}"
            )
            passages = st.text_area(
                "Passages, one per line: path | heading | text",
                value="\n".join(" | ".join(p) for p in example.passages) if example else "",
                key=key + f"p_{lang}",
            )
            answer = st.text_area(
                "Answer from the passages", value=example.answer if example else "", key=key + f"a_{lang}"
            )
            plain = st.text_area(
                "Answer without passages",
                value=example.answer_without_passages if example else "",
                key=key + f"n_{lang}",
            )
        if question.strip() and answer.strip():
            parts = [tuple(x.strip() for x in line.split("|", 2)) for line in _lines(passages)]
            examples.append(
                Example(
                    lang=lang,
                    question=question.strip(),
                    passages=tuple((p + ("", "", ""))[:3] for p in parts),  # type: ignore[misc]
                    answer=answer.strip(),
                    answer_without_passages=plain.strip(),
                )
            )
    saved = st.form_submit_button("Save style", type="primary")

if saved:
    with shown_errors():
        if not all(labels.values()):
            raise ConfigError("every language needs at least one label — fill in both label lists")
        new = StyleProfile(
            name=name.strip() or "custom",
            labels=labels,
            system_prompt=prompts,
            rag_instructions=instructions,
            examples=tuple(examples),
            not_covered=not_covered,
            answer_line=int(answer_line),
            source_line=int(source_line),
            max_answer={"en": int(max_words), "zh": int(max_words) * 3 // 2},
        )
        bad = [f"{e.lang} example" for e in new.examples if check_format(e.answer, e.lang, new).score < 1.0]
        if bad:
            raise ConfigError(
                f"the {', '.join(bad)} answer does not follow this style — write it with these labels, "
                "one per line, in order"
            )
        path = save_style(settings(), collection.name, new)
        st.success(md_escape(f"Saved to {path}. The next answer uses it."))

with st.expander("Start over"):
    st.caption(
        "Drops this collection's own profile: it answers in the style its bundle ships, or the "
        "neutral style (a direct answer and its source)."
    )
    if st.button("Reset the style", key=key + "reset", disabled=not collection.paths.style.is_file()):
        with shown_errors():
            reset_style(settings(), collection.name)
            st.rerun()
