"""Datasets page: the selected collection's evaluation and training sets — build them from the
documents as a background job (progress, ETA, cancel, resume), review rows in a table (keep, edit
or drop; an evaluation row read beside the passage its key facts stand in), import a JSONL file
(malformed lines are named and nothing stored is lost) and download either set. Works through
``get_datasets()`` (as ``hybrid dataset``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from app.views.common import ACTIVE_STATES, POLL_S, collection_caption, selected_collection, shown_errors
from app.views.services import get_datasets
from app.views.text import duration, md_escape, short, where

KIND_LABELS = {"eval": "Evaluation set", "train": "Training set"}

st.title("Datasets")
collection_caption()
st.caption(
    "The evaluation set measures the four modes on this collection (Strategy page); the training "
    "set teaches the adapter its style (Train page). Both can be built from the documents: the base "
    "model writes a question per passage and key facts copied from it, then answers its own question "
    "again from the passage alone; a row is kept only when its facts stand word for word in the "
    "passage and that second answer says them too. The largest model set up on this machine writes "
    "them (its questions are answered by their facts more often); `HYBRID_DATASET__MODEL_GGUF` "
    "names another."
)
datasets = get_datasets()
name = selected_collection()

summary: dict[str, Any] = {}
with shown_errors():
    summary = datasets.summary()
if summary:
    ev, tr = summary.get("eval") or {}, summary.get("train") or {}
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Evaluation rows", ev.get("rows", 0))
    split = ev.get("by_split") or {}
    c2.metric("tune / held-out", f"{split.get('tune', 0)} / {split.get('heldout', 0)}")
    c3.metric("Training rows", tr.get("rows", 0))
    c4.metric("Languages", len(set(ev.get("by_lang") or {}) | set(tr.get("by_lang") or {})))
    for kind, part in (("eval", ev), ("train", tr)):
        if part.get("path"):
            whose = "this collection's own" if part.get("own") else "shipped with the bundle"
            st.caption(md_escape(f"{KIND_LABELS[kind]}: {part['path']} ({whose})"))

# --- build -------------------------------------------------------------------------------------
st.subheader("Build from the documents")
has_sets = bool(summary) and any((summary.get(k) or {}).get("own") for k in ("eval", "train"))
if summary.get("writer_hint"):
    st.info(md_escape(f"Tip: {summary['writer_hint']}."))
with st.form("dataset_build_form"):
    a, b = st.columns(2)
    n_eval = a.number_input("Evaluation rows", 0, 2000, 60, step=10, key="dataset_n_eval")
    n_train = b.number_input("Training rows", 0, 5000, 200, step=50, key="dataset_n_train")
    replace = st.checkbox(
        "Replace the existing sets (they are backed up)",
        value=False,
        key="dataset_replace",
        disabled=not has_sets,
    )
    check_train = st.checkbox(
        "Check training rows like evaluation rows (the question asked again over its passage; "
        "better rows, about half as long again)",
        value=False,
        key="dataset_check_train",
    )
    started = st.form_submit_button("Build in the background", type="primary")
if started:
    with shown_errors():
        st.session_state[f"dataset_job_{name}"] = datasets.start(
            int(n_eval), int(n_train), replace=replace, check_train=check_train
        )
        st.rerun()

job_id = st.session_state.get(f"dataset_job_{name}")
if not job_id:
    with shown_errors():
        job_id = datasets.last_job()


def _job_panel(job_id: str, was_active: bool) -> None:
    with shown_errors():
        s = datasets.status(job_id)
        state = s.get("status", "?")
        st.markdown(f"**Job** `{job_id}` — {md_escape(str(s.get('phase') or state))}")
        step, total = int(s.get("step") or 0), int(s.get("total") or 0)
        # ``total`` is the passages the build expects to read, from the share that made a row so
        # far (each wanted row may take a few); the message counts the rows kept.
        kept = str(s.get("message") or "").strip()
        st.progress(
            min(1.0, step / total) if total else 0.0,
            text=md_escape((f"{kept} · " if kept else "") + f"{step} of about {total} passages read")
            + (f" · ETA {duration(s.get('eta_s'))}" if state in ACTIVE_STATES else ""),
        )
        if state in ACTIVE_STATES:
            if st.button("Cancel the build", key="dataset_cancel"):
                datasets.cancel(job_id)
                st.toast("Cancel requested; rows made so far are kept and the build can be resumed.")
                st.rerun()
        elif state == "succeeded":
            result = s.get("result") or {}
            ev, tr = result.get("eval") or {}, result.get("train") or {}
            st.success(
                f"Finished: {ev.get('kept', '?')} evaluation and {tr.get('kept', '?')} training rows kept; "
                f"{ev.get('rejected', 0)} and {tr.get('rejected', 0)} passages rejected (reasons in the "
                "build's rejects file)."
                + (f" Written by {md_escape(str(result['model']))}." if result.get("model") else "")
            )
        elif state == "cancelled":
            st.info("Cancelled. The rows made so far are kept; resume to continue where it stopped.")
        elif state == "failed":
            st.error(md_escape(f"The build failed: {s.get('error') or 'see the job log'}"))
        if state in ("cancelled", "failed") and st.button("Resume the build", key="dataset_resume"):
            st.session_state[f"dataset_job_{name}"] = datasets.resume(job_id)
            st.rerun()
        if was_active and state not in ACTIVE_STATES:
            st.rerun()  # the build just ended: refresh the counts and the review table


if job_id:
    active = False
    with shown_errors():
        active = datasets.status(job_id).get("status") in ACTIVE_STATES
    st.fragment(_job_panel, run_every=POLL_S if active else None)(job_id, active)


def _passage_reader(rows: list[dict[str, Any]]) -> None:
    """One row's question beside the indexed passage its key facts stand in, the facts marked: is
    the question answerable from it alone, with those facts as the answer?"""
    with st.expander("Read a row beside its passage"):
        by_id = {str(r.get("id")): r for r in rows}
        pick = st.selectbox(
            "Row",
            list(by_id),
            format_func=lambda i: short(f"{i} — {by_id[i].get('question')}", 120),
            key=f"dataset_passage_{name}",
        )
        row = by_id.get(str(pick))
        if row is None:
            return
        st.markdown(md_escape(f"Question: {row.get('question')}"))
        st.caption(md_escape("Key facts: " + (" | ".join(row.get("key_facts") or []) or "none")))
        passage = None
        with shown_errors():
            passage = datasets.passage(row)
        if passage is None:
            st.caption(
                "No indexed passage of its source holds its key facts (a row without a source or "
                "written by hand, a file indexed again since, or no index yet)."
            )
            return
        st.caption(
            md_escape(
                f"{where(passage['path'], passage['heading'], passage['page'])} — key facts marked ⟦like this⟧"
            )
        )
        st.text(passage["marked"])


# --- review ------------------------------------------------------------------------------------
st.subheader("Review rows")
kind = (
    st.segmented_control(
        "Set", list(KIND_LABELS), format_func=KIND_LABELS.get, default="eval", key="dataset_kind"
    )
    or "eval"
)
rows: list[dict[str, Any]] = []
with shown_errors():
    rows = datasets.rows(kind)
answer_key = "reference" if kind == "eval" else "answer"
if not rows:
    st.info("No rows yet — build them above or import a JSONL file below.")
else:
    table = [
        {
            "keep": True,
            "id": r.get("id"),
            "lang": r.get("lang"),
            "question": r.get("question"),
            "key facts": " | ".join(r.get("key_facts") or []),
            answer_key: r.get(answer_key),
            "source": r.get("source") if isinstance(r.get("source"), str) else json.dumps(r.get("source")),
            "split": r.get("split", ""),
        }
        for r in rows
    ]
    edited = st.data_editor(
        table,
        hide_index=True,
        width="stretch",
        disabled=["id", "lang", "source", "split"],
        key=f"dataset_editor_{name}_{kind}",
        column_config={"keep": st.column_config.CheckboxColumn("keep", help="untick to drop the row")},
    )
    kept = [e for e in edited if e.get("keep")]
    st.caption(f"{len(kept)} of {len(rows)} rows kept.")
    if st.button("Save the reviewed rows", key=f"dataset_save_{kind}"):
        with shown_errors():
            by_id = {r["id"]: r for r in rows}
            out = []
            for e in kept:
                row = dict(by_id[e["id"]])
                row["question"] = str(e.get("question") or "").strip()
                row[answer_key] = str(e.get(answer_key) or "").strip()
                if kind == "eval":
                    row["key_facts"] = [
                        f.strip() for f in str(e.get("key facts") or "").split("|") if f.strip()
                    ]
                out.append(row)
            path = datasets.save(kind, out)
            st.success(md_escape(f"Saved {len(out)} rows to {path} (the previous file is backed up)."))

    if kind == "eval":
        _passage_reader(rows)

    st.download_button(
        f"Download the {KIND_LABELS[kind].lower()} (JSONL)",
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        file_name=f"{name}-{kind}.jsonl",
        mime="application/jsonl",
        key=f"dataset_download_{kind}",
    )

with st.expander("Import rows from a JSONL file"):
    upload = st.file_uploader("JSONL file", type=["jsonl", "json", "txt"], key="dataset_import_file")
    replace_all = st.checkbox("Replace the whole set instead of adding", key="dataset_import_replace")
    if st.button("Import", disabled=upload is None, key="dataset_import_go") and upload is not None:
        with shown_errors(), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "import.jsonl"
            path.write_bytes(upload.getvalue())
            done = datasets.import_file(kind, path, replace=replace_all)
            st.success(
                md_escape(f"Imported {done.get('imported')} rows; the set now has {done.get('rows')}.")
            )
