"""Ask page (placeholder until the answering pipeline lands)."""

from __future__ import annotations

import streamlit as st

st.title("Ask")
st.text_input("Your question", key="question")
st.info("Answering is not wired yet.")
