"""Train page: the dataset (base rows and corrections per language), LoRA parameters with the
documented defaults, a background training job with a live loss chart and ETA read from the job
file (so they survive a page reload), the versions table with activate and rollback, and the
per-mode scoreboard before and after. Works through ``get_trainer_jobs()`` (as ``hybrid train``)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.views.common import ACTIVE_STATES, POLL_S, collection_caption, shown_errors
from app.views.services import get_trainer_jobs
from app.views.text import duration, md_escape
from app.wiring.estimates import correction_rows

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

st.title("Train an adapter")
collection_caption()
trainer = get_trainer_jobs()

# --- dataset ---------------------------------------------------------------------------------
data: dict[str, Any] = {}
with shown_errors():
    data = trainer.dataset()
if data:
    st.subheader("Dataset")
    c1, c2, c3 = st.columns(3)
    c1.metric("Base training rows", data.get("base_rows", 0))
    c2.metric("Corrections", data.get("corrections", 0))
    c3.metric("Languages", len(data.get("by_lang", {})))
    st.dataframe(
        [
            {"language": lang, "base rows": v.get("base", 0), "corrections": v.get("corrections", 0)}
            for lang, v in sorted(data.get("by_lang", {}).items())
        ],
        hide_index=True,
    )
    if data.get("sources"):
        st.caption(md_escape("From " + ", ".join(str(s) for s in data["sources"])))
    if not data.get("base_rows"):
        st.info(
            "This collection has no training set yet. Build one from its documents on the Datasets "
            "page (or `hybrid dataset build`), then train here."
        )
    else:
        st.caption("Build, review or import rows on the Datasets page.")


def _current_job() -> str | None:
    """The job this page follows: the one started here, else the newest job in the workspace."""
    if st.session_state.get("train_job"):
        return st.session_state["train_job"]
    jobs = trainer.jobs()
    return jobs[0]["id"] if jobs else None


job_id = None
with shown_errors():
    job_id = _current_job()
job_active = False
if job_id:
    with shown_errors():
        job_active = trainer.status(job_id).get("status") in ACTIVE_STATES

# --- parameters and start ------------------------------------------------------------------------
st.subheader("Parameters")
defaults = trainer.default_params()
with st.form("train_form"):
    a, b, c = st.columns(3)
    r = a.number_input("LoRA rank r", 1, 256, int(defaults["r"]), key="train_r")
    alpha = b.number_input("alpha", 1, 512, int(defaults["alpha"]), key="train_alpha")
    dropout = c.number_input("dropout", 0.0, 0.9, float(defaults["dropout"]), step=0.01, key="train_dropout")
    modules = st.multiselect(
        "Target modules", MODULES, default=list(defaults["target_modules"]), key="train_modules"
    )
    a, b, c, d, e = st.columns(5)
    lr = a.number_input(
        "learning rate", 1e-6, 0.1, float(defaults["lr"]), step=1e-5, format="%.0e", key="train_lr"
    )
    epochs = b.number_input("epochs", 1, 50, int(defaults["epochs"]), key="train_epochs")
    batch = c.number_input("batch size", 1, 64, int(defaults["batch_size"]), key="train_batch")
    accum = d.number_input("grad. accumulation", 1, 64, int(defaults.get("grad_accum", 1)), key="train_accum")
    max_len = e.number_input(
        "max length (tokens)", 32, 8192, int(defaults["max_length"]), step=32, key="train_maxlen"
    )
    with st.expander("More"):
        m1, m2 = st.columns(2)
        max_rows = m1.number_input(
            "Use at most N training rows (0 = all; a small N makes a quick trial run)",
            0,
            100_000,
            int(defaults.get("max_rows", 0)),
            key="train_maxrows",
        )
        seed = m2.number_input("seed", 0, 2**31 - 1, int(defaults.get("seed", 1234)), key="train_seed")
    from_corr = st.checkbox(
        "Train from corrections (with a replay sample of the base rows)",
        value=bool(data.get("corrections")),
        key="train_from_corr",
    )
    start = st.form_submit_button("Start training", type="primary", disabled=job_active)
with shown_errors():
    planned = int(data.get("base_rows") or 0)
    if planned:
        st.caption(
            md_escape(
                f"Before you start — {planned} rows, {int(defaults['epochs'])} epoch(s) on "
                + trainer.estimate(planned, int(defaults["epochs"]))
            )
        )
    n_corr = int(data.get("corrections") or 0)
    if n_corr:
        corr_rows = correction_rows(defaults, n_corr)
        st.caption(
            md_escape(
                f"From corrections — {n_corr} corrections as {corr_rows} rows, "
                f"{int(defaults['epochs'])} epoch(s) on "
                + trainer.estimate(corr_rows, int(defaults["epochs"]))
            )
        )
if job_active:
    st.caption("A training job is running; cancel it or wait before starting another.")
if start:
    params = dict(
        defaults,
        r=int(r),
        alpha=int(alpha),
        dropout=float(dropout),
        target_modules=list(modules),
        lr=float(lr),
        epochs=int(epochs),
        batch_size=int(batch),
        grad_accum=int(accum),
        max_length=int(max_len),
        max_rows=int(max_rows),
        seed=int(seed),
    )
    with shown_errors():
        st.session_state["train_job"] = trainer.start(params, from_corrections=from_corr)
        st.rerun()


# --- the job (polled from its job file) ----------------------------------------------------------
def _job_panel(job_id: str, was_active: bool) -> None:
    with shown_errors():
        s = trainer.status(job_id)
        state = s.get("status", "?")
        st.markdown(f"**Job** `{job_id}` — {md_escape(str(s.get('phase') or state))}")  # ids are ours
        step, total = int(s.get("step") or 0), int(s.get("total") or 0)
        st.progress(
            min(1.0, step / total) if total else 0.0,
            text=f"step {step}/{total}"
            + (f" · ETA {duration(s.get('eta_s'))}" if state in ACTIVE_STATES else "")
            + (" before the gate" if state in ACTIVE_STATES and s.get("eta_before_gate") else ""),
        )
        history = s.get("loss_history") or []
        if history:
            rows = [
                {"step": h.get("step", i + 1), "series": key.replace("_", " "), "loss": h[key]}
                for i, h in enumerate(history)
                for key in ("loss", "val_loss")
                if h.get(key) is not None
            ]
            st.vega_lite_chart(
                rows,
                {
                    "mark": {"type": "line", "point": True, "tooltip": True},
                    "encoding": {
                        "x": {
                            "field": "step",
                            "type": "quantitative",
                            "axis": {"format": "d", "tickMinStep": 1},
                        },
                        "y": {"field": "loss", "type": "quantitative", "scale": {"zero": False}},
                        "color": {"field": "series", "type": "nominal", "title": None},
                    },
                    "height": 260,
                },
                width="stretch",
            )
            st.caption(f"last loss {history[-1].get('loss', float('nan')):.4f}")
        if state in ACTIVE_STATES:
            if st.button("Cancel training", key="train_cancel"):
                trainer.cancel(job_id)
                st.toast("Cancel requested; the job stops at the next batch and keeps no partial version.")
                st.rerun()
        elif state == "succeeded":
            result = s.get("result") or {}
            st.success(
                md_escape(
                    f"Finished: version {result.get('version', '?')}"
                    + (" (activated)" if result.get("activated") else " (not activated)")
                )
            )
            gate = (result.get("metrics") or {}).get("gate") or {}
            if gate.get("reason"):
                st.caption(md_escape("Gate: " + str(gate["reason"])))
        elif state == "cancelled":
            st.info("Cancelled. No version was written; the active adapter is unchanged.")
        elif state == "failed":
            st.error(md_escape(f"Training failed: {s.get('error') or 'see the job log'}"))
        if state in ("cancelled", "failed") and st.button(
            "Resume from the last checkpoint", key="train_resume"
        ):
            st.session_state["train_job"] = trainer.resume(job_id)
            st.rerun()
        if was_active and state not in ACTIVE_STATES:
            st.rerun()  # the job just ended: refresh the versions table, stop polling, re-enable Start


if job_id:
    st.subheader("Training job")
    st.fragment(_job_panel, run_every=POLL_S if job_active else None)(job_id, job_active)

# --- versions, activate, rollback, scoreboard -------------------------------------------------------
versions: list[dict[str, Any]] = []
with shown_errors():
    versions = trainer.versions()
st.subheader("Adapter versions")
in_use = trainer.in_use()
if not versions:
    st.info(
        "No adapter versions in this workspace yet. "
        + (
            "The bundled default adapter answers the tuned modes until you train one."
            if in_use == "default"
            else "The tuned modes need an adapter: train one above."
        )
    )
else:
    st.dataframe(
        [
            {
                "version": v["version"],
                "active": "●" if v.get("active") else "",
                "created": v.get("created_at", ""),
                "gate passed": v.get("gate_passed"),
                "best val loss": (v.get("metrics") or {}).get("best_val_loss"),
                "train tokens/s": (v.get("metrics") or {}).get("tokens_per_s"),
                "r": (v.get("params") or {}).get("r"),
                "epochs": (v.get("params") or {}).get("epochs"),
                "GGUF LoRA": v.get("has_gguf"),
            }
            for v in versions
        ],
        hide_index=True,
        width="stretch",
    )
    st.caption(
        md_escape(
            f"Answers use: {in_use or 'no adapter'}"
            + (" (the bundled default adapter)" if in_use == "default" else "")
        )
    )
    a, b = st.columns([3, 1])
    with a:
        names = [v["version"] for v in versions]
        chosen = st.selectbox("Version", names, index=len(names) - 1, key="train_version")
        if st.button("Activate", key="train_activate"):
            with shown_errors():
                trainer.activate(chosen)
                st.toast(md_escape(f"Activated {chosen}."))
                st.rerun()
    with b:
        st.write("")
        if st.button("Roll back", key="train_rollback", help="Re-activate the previously active version"):
            with shown_errors():
                info = trainer.rollback()
                st.toast(md_escape(f"Rolled back to {info.get('version')}."))
                st.rerun()

    st.subheader("Scoreboard before and after")
    newest = versions[-1]
    gate = (newest.get("metrics") or {}).get("gate") or {}
    before, after = gate.get("baseline_modes") or {}, gate.get("candidate_modes") or {}
    if after:
        rows = []
        for mode in sorted(set(before) | set(after)):
            b_, a_ = (before.get(mode) or {}).get("combined"), (after.get(mode) or {}).get("combined")
            rows.append(
                {
                    "mode": mode,
                    "before": b_,
                    f"after ({newest['version']})": a_,
                    "change": None if a_ is None or b_ is None else round(a_ - b_, 4),
                }
            )
        st.dataframe(rows, hide_index=True)
        if gate.get("reason"):
            st.caption(md_escape(f"Gate for {newest['version']}: {gate['reason']}"))
    else:
        st.caption("The newest version has no gate scores (it was trained without the evaluation gate).")
