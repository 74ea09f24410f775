"""Strategy page: the decision guide (table, five-question self-test, flow) beside the selected
collection's measured scoreboard and per-kind chart. Reads the collection's eval reports (or the
scoreboard its bundle ships); loads no model."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.views.common import (
    collection_caption,
    latest_eval_report,
    read_eval_report,
    report_profile,
    settings,
)
from app.views.text import md_escape
from app.wiring.collections import get_collection
from app.wiring.models import profile_key, profile_labels
from domain.router import ALL_MODES, MODE_LABELS
from domain.strategy import DECISION_GUIDE, SELF_TEST, recommend_from_flow, recommend_from_self_test

st.title("Strategy: prompt, RAG, fine-tune, or both?")
collection_caption()
st.caption(
    "The guide below is the argument; the scoreboard on the right is what your own documents say. "
    "Where they disagree, trust the measurement."
)

left, right = st.columns([3, 2], gap="large")

with left:
    st.subheader("When each approach fits")
    st.table(  # a static table wraps long cells, so every column stays visible
        [
            {"Need": r.need, "Recommended": r.recommended, "Fine-tune?": r.fine_tune, "Why": r.why}
            for r in DECISION_GUIDE
        ],
        hide_index=True,
    )

    st.subheader("Self-test: five questions")
    answers = {key: st.checkbox(text, key=f"selftest_{key}") for key, text in SELF_TEST}
    rec = recommend_from_self_test(answers)
    st.markdown(f"**{rec.headline}** → suggested mode: `{rec.mode}`")
    st.caption(rec.reason)

    st.subheader("Decision flow")
    c1, c2 = st.columns(2)
    with c1:
        structure = st.toggle("Answers need a stable structure", value=True, key="flow_structure")
        template = st.toggle(
            "A prompt template holds that structure", value=False, key="flow_template", disabled=not structure
        )
    with c2:
        style = st.toggle("A specific tone or style is required", value=True, key="flow_style")
        data = st.toggle("Plenty of domain examples (hundreds+ clean rows)", value=True, key="flow_data")
        private = st.toggle("Answers depend on private documents", value=True, key="flow_private")
    flow = recommend_from_flow(
        needs_stable_structure=structure,
        template_holds=template and structure,
        specific_style=style,
        plenty_of_data=data,
        private_knowledge=private,
    )
    st.markdown(f"**{flow.headline}** → suggested mode: `{flow.mode}`")
    st.caption(flow.reason)


def _all_modes(report: dict[str, Any] | None) -> bool:
    return bool(report) and {m.value for m in ALL_MODES} <= set((report or {}).get("modes") or {})


with right:
    st.subheader("Measured on this collection")
    collection = get_collection(settings())
    profile = profile_key(settings())
    model_label = profile_labels().get(profile, profile)
    report, path = latest_eval_report(collection.paths.evals, profile)
    shipped = collection.scoreboards().get(profile)
    bundled = False
    if not _all_modes(report) and shipped is not None:
        # a run of one mode or kind of your own does not hide the bundle's full scoreboard
        ship_report = read_eval_report(shipped)
        if _all_modes(ship_report) or report is None:
            report, path, bundled = ship_report, shipped, ship_report is not None
    if report is None or path is None:
        st.info(
            f"No evaluation of this collection with {model_label} yet. Build its evaluation set on the "
            f"Datasets page (or `hybrid dataset build --collection {collection.name}`), then run "
            f"`hybrid eval --collection {collection.name}`; the report shows up here."
        )
    else:
        model = report.get("model") if isinstance(report.get("model"), dict) else {}
        measured_with = str(model.get("base") or profile_labels().get(report_profile(report), model_label))
        st.caption(
            md_escape(f"From {path.name} · {report.get('n_rows', '?')} questions · model: {measured_with}")
        )
        if bundled:
            st.caption(
                "Measured by us with the bundled default adapter. "
                "Run `hybrid eval --modes prompt,rag,tuned,tuned_rag,auto` to measure it yourself; "
                "your report then replaces this one."
            )

        def two(value: Any) -> str:
            return f"{value:.2f}" if isinstance(value, int | float) else "—"

        # A static table with short headers, as the guide beside it: every column stays visible in
        # the narrow column (ROUGE-L and the rest stay in the report file named above).
        st.table(
            [
                {
                    "mode": MODE_LABELS.get(mode, mode),
                    "combined": two(m.get("combined")),
                    "fact": two(m.get("fact_recall")),
                    "format": two(m.get("format")),
                    "citation": two(m.get("citation_precision")),
                }
                for mode, m in report.get("modes", {}).items()
            ]
        )
        st.caption(
            "Prompt only and RAG get the collection's style prompt plus one worked example "
            "(template + few-shot, the cheap way to a fixed format); the tuned modes get the system "
            "prompt alone, as in training. Combined = mean of fact recall and format."
        )
        router = report.get("router") or {}
        if router:
            st.metric("Router agreement with the hindsight-best modes", f"{router.get('agreement', 0):.2f}")
        by_kind = report.get("by_kind") or {}
        chart = []
        for kind, modes in by_kind.items():
            for mode, m in modes.items():
                if isinstance(m, dict) and "combined" in m:
                    chart.append(
                        {"kind": kind, "mode": MODE_LABELS.get(mode, mode), "combined": m["combined"]}
                    )
        if chart:
            st.markdown("**Combined score by question kind**")
            st.bar_chart(chart, x="kind", y="combined", color="mode", stack=False)
