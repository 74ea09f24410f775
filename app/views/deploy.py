"""Deploy page: export the active adapter merged into the base model as a quantized GGUF (a
background job with progress), the table of exported files (size, tokens/s, perplexity, parity
with transformers), download buttons, and ready command lines for llama.cpp and Ollama.
Works through ``get_exporter()`` (the same export as ``hybrid export``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import streamlit as st

from app.views.common import ACTIVE_STATES, POLL_S, collection_caption, settings, shown_errors
from app.views.services import get_exporter
from app.views.text import duration, md_escape, parity, size

QUANT_HELP = {
    "q8_0": "8-bit: near-lossless, about half the f16 size",
    "q4_k_m": "4-bit K-quant: smallest and fastest, small quality loss",
    "f16": "16-bit: the reference, largest",
}

st.title("Deploy")
collection_caption()
st.caption(
    "Merge the adapter into the base model, convert it to GGUF, quantize it, and check the result "
    "against transformers before you ship it to llama.cpp or Ollama."
)
exporter = get_exporter()

label = None
with shown_errors():
    label = exporter.source_label()
if label == "base":
    st.markdown(
        "No adapter yet: an export writes **the base model** itself as GGUF (train an adapter first to "
        "ship your house style)."
    )
elif label == "default":
    st.markdown("An export merges **the bundled default adapter** into the base model.")
elif label:
    st.markdown(f"An export merges adapter **{md_escape(label)}** (the one answers use) into the base model.")
with shown_errors():
    st.caption(md_escape("Before you start — " + exporter.estimate()))


def _current_job() -> str | None:
    if st.session_state.get("deploy_job"):
        return st.session_state["deploy_job"]
    jobs = exporter.jobs()
    return jobs[0]["id"] if jobs else None


job_id = None
job_active = False
with shown_errors():
    job_id = _current_job()
    if job_id:
        job_active = exporter.status(job_id).get("status") in ACTIVE_STATES

quants = list(exporter.quants())
with st.form("deploy_form"):
    quant = st.radio(
        "Quantization",
        quants,
        index=0,
        horizontal=True,
        key="deploy_quant",
        captions=[QUANT_HELP.get(q, "") for q in quants],
    )
    go = st.form_submit_button("Export", type="primary", disabled=job_active)
if go:
    with shown_errors():
        st.session_state["deploy_job"] = exporter.start(quant)
        st.rerun()


def _job_panel(job_id: str, was_active: bool) -> None:
    with shown_errors():
        s = exporter.status(job_id)
        state = s.get("status", "?")
        step, total = int(s.get("step") or 0), int(s.get("total") or 0)
        text = md_escape(str(s.get("message") or s.get("phase") or state))
        started = s.get("started_at")
        if started:  # stages take very different times, so elapsed time says more than an ETA
            end = s.get("finished_at") or (time.time() if state in ACTIVE_STATES else s.get("updated_at"))
            text += f" · {duration(float(end or started) - float(started))} elapsed"
        st.progress(min(1.0, step / total) if total else 0.0, text=text)
        if state in ACTIVE_STATES and st.button("Cancel export", key="deploy_cancel"):
            exporter.cancel(job_id)
            st.rerun()
        if state == "failed":
            st.error(md_escape(f"Export failed: {s.get('error') or 'see the job log'}"))
        elif state == "cancelled":
            st.info("Export cancelled.")
        if was_active and state not in ACTIVE_STATES:
            st.rerun()  # the job ended: show its report in the table below


if job_id:
    st.subheader("Export job")
    st.fragment(_job_panel, run_every=POLL_S if job_active else None)(job_id, job_active)

reports: list[dict[str, Any]] = []
with shown_errors():
    reports = exporter.reports()

st.subheader("Exported files")
if not reports:
    st.info(
        "Nothing exported yet. Pick a quantization and press Export (q8_0 takes a few minutes on a laptop CPU)."
    )
else:
    st.dataframe(
        [
            {
                "adapter": r.get("label"),
                "quant": r.get("quant"),
                "embeddings": r.get("embedding_type", r.get("quant")),
                "adapter weights": (r.get("adapter_tensors") or {}).get("type", r.get("quant")),
                "size": size(r.get("bytes")),
                "tokens/s": round(float(r.get("tokens_per_s") or 0), 1),
                "perplexity": (r.get("perplexity") or {}).get(r.get("quant", ""), None),
                "ppl vs f16": r.get("perplexity_ratio_vs_f16"),
                "base blocks": (r.get("base_blocks") or {}).get("tensors", 0),
                "served (base + LoRA) vs f16": (r.get("served") or {}).get("perplexity_ratio_vs_f16"),
                "parity": parity(r.get("golden") or {}),
                "served parity": (r.get("served") or {}).get("golden_identical"),
                "file": Path(str(r.get("path", ""))).name,
            }
            for r in reports
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Parity: greedy answers of the GGUF to five evaluation questions, asked as the tuned model "
        "answers them (over the collection's passages when it has an index), compared token by "
        "token with transformers + peft. Perplexity on held-out domain text; the ratio is against the f16 file. "
        "q8_0 keeps the token embedding and output matrix in f16 (better parity, about 250 MB more). "
        "q4_k_m is quantized with an importance matrix measured on the training text and keeps the "
        "weights the adapter changed at q8_0 (about 16 MB more): the base is already 4-bit, and "
        "rounding base + adapter to 4 bits again loses much of the adapter. Base blocks: the weights "
        "the adapter left alone, copied from the base GGUF as they are instead of rounded a second "
        "time. The served columns are the base GGUF with the adapter's GGUF LoRA applied at run "
        "time, as this app answers: the pair needs no merge at all."
    )

    names = [f"{r.get('label')} · {r.get('quant')}" for r in reports]
    pick = st.selectbox("File", range(len(reports)), format_func=lambda i: names[i], key="deploy_pick")
    rep = reports[pick]
    gguf = Path(str(rep.get("path", "")))
    modelfile = Path(str(rep.get("modelfile") or gguf.parent / f"Modelfile-{rep.get('quant')}"))
    threads = settings().generation.n_threads

    d1, d2, d3 = st.columns(3)
    if gguf.is_file():
        # deferred: the file is read only when the button is pressed, not on every rerun
        d1.download_button(
            f"Download {gguf.name} ({size(gguf.stat().st_size)})",
            data=gguf.read_bytes,
            file_name=gguf.name,
            mime="application/octet-stream",
            key="deploy_dl_gguf",
            on_click="ignore",
        )
    if modelfile.is_file():
        d2.download_button(
            "Download Modelfile",
            data=modelfile.read_text(encoding="utf-8"),
            file_name="Modelfile",
            mime="text/plain",
            key="deploy_dl_modelfile",
            on_click="ignore",
        )
    d3.download_button(
        "Download report (JSON)",
        data=json.dumps(rep, ensure_ascii=False, indent=2),
        file_name=f"export-{rep.get('quant')}.json",
        mime="application/json",
        key="deploy_dl_report",
        on_click="ignore",
    )

    st.subheader("Run it")
    commands = Path(str(rep.get("commands") or gguf.parent / f"run-{rep.get('quant')}.txt"))
    if commands.is_file():  # written by the export itself (the same text `hybrid export` points at)
        st.caption(md_escape(f"From {commands}"))
        st.code(
            f"cd {gguf.parent}\n\n" + commands.read_text(encoding="utf-8"), language="bash", wrap_lines=True
        )
    else:
        st.markdown("**llama.cpp** — chat in the terminal, or serve an OpenAI-compatible API on 127.0.0.1:")
        st.code(
            f"llama-cli -m {gguf} -cnv --chat-template chatml --temp 0 -t {threads} -c 4096\n"
            f"llama-server -m {gguf} --chat-template chatml --host 127.0.0.1 --port 8080 -t {threads} -c 4096",
            language="bash",
            wrap_lines=True,
        )
        st.markdown("**Ollama** — from the folder that holds the file and its Modelfile:")
        st.code(
            f"cd {gguf.parent}\nollama create hybrid-assistant -f {modelfile.name}\nollama run hybrid-assistant",
            language="bash",
            wrap_lines=True,
        )
    if modelfile.is_file():
        with st.expander("Modelfile"):
            st.code(modelfile.read_text(encoding="utf-8"), language=None)
