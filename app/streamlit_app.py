"""The Streamlit entry point: page navigation only. Each page lives in ``app/pages``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` from any folder
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Hybrid Assistant", page_icon="🧭", layout="wide")

PAGES = [
    st.Page(str(ROOT / "app" / "pages" / "ask.py"), title="Ask", icon="💬", default=True),
    st.Page(str(ROOT / "app" / "pages" / "strategy.py"), title="Strategy", icon="🧭"),
]

st.navigation(PAGES).run()
