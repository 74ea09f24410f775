"""The Streamlit entry point: page navigation only. Each page lives in ``app/views`` beside its
helpers and gets its backends from ``app.views.services``, so no model loads until a page action
needs one.

The folder is deliberately not called ``pages``: Streamlit treats a ``pages/`` folder beside the
main script as a legacy multipage app, and a first visit straight to ``/train`` would then run that
page alone, without this navigation or the page config.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch / llama_cpp load
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` from any folder
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.commands.app_cmd import is_loopback  # noqa: E402
from app.settings import load_settings  # noqa: E402

st.set_page_config(page_title="Hybrid Assistant", page_icon="🧭", layout="wide")

# Started as `streamlit run` from a folder without the project's config, Streamlit listens on every
# interface; then the app refuses to serve anything rather than expose the workspace.
_address = str(st.get_option("server.address") or "")
if not is_loopback(_address) and not load_settings().serve.allow_remote:
    st.error(
        f"This app listens on {_address or 'every network interface'} and has no login, so it will not "
        "run. Stop it and start it with `hybrid app` (127.0.0.1), or set HYBRID_SERVE__ALLOW_REMOTE=true."
    )
    st.stop()

from app.views.common import (  # noqa: E402
    COLLECTION_KEY,
    NEXT_COLLECTION_KEY,
    base_settings,
    shown_errors,
)


def collection_selector() -> None:
    """One collection selector for every page, in the sidebar. The choice is kept for the browser
    session (``app.views.common.settings`` reads it) and in the address (``?collection=NAME``), so a
    reload or a bookmark opens the same collection."""
    from app.wiring.collections import collection_names

    names: list[str] = []
    with shown_errors():
        names = collection_names(base_settings())
    pending = st.session_state.pop(NEXT_COLLECTION_KEY, None)
    if pending:
        st.session_state[COLLECTION_KEY] = pending
    elif COLLECTION_KEY not in st.session_state and st.query_params.get("collection") in names:
        st.session_state[COLLECTION_KEY] = st.query_params["collection"]
    current = st.session_state.get(COLLECTION_KEY) or base_settings().collection
    if current not in names:
        names.append(current)
    st.session_state[COLLECTION_KEY] = current
    st.sidebar.selectbox(
        "Collection",
        names,
        key=COLLECTION_KEY,
        help="A document folder with its own index, answer style, datasets, adapters and reports. "
        "Make a new one on the Index page.",
    )
    st.query_params["collection"] = st.session_state[COLLECTION_KEY]


def model_selector() -> None:
    """The model the selected collection answers with, under the collection selector: a profile
    chosen here is kept in the collection; a model named in settings is shown, not changed here."""
    from app.views.common import settings
    from app.wiring.collections import set_profile
    from app.wiring.models import describe_base, profile_key, profile_labels

    current = settings()
    fixed = "profile" in current.models.model_fields_set
    key = profile_key(current)
    labels = profile_labels()
    choice = st.sidebar.selectbox(
        "Model",
        list(labels),
        index=list(labels).index(key),
        format_func=lambda k: labels[k],
        disabled=fixed or current.models.base_gguf is not None,
        key=f"model_for_{current.collection}",
        help="The base model this collection answers and trains with (kept per collection); a larger "
        "one answers more slowly. An adapter is used only with the model it was trained on. "
        + ("Set by HYBRID_MODELS__PROFILE." if fixed else ""),
    )
    if choice != key and not fixed:
        with shown_errors():
            set_profile(current, current.collection, choice)
            st.rerun()
    from app.views.text import md_escape

    with shown_errors():
        st.sidebar.caption(f"Answers with: {md_escape(describe_base(current))}")


collection_selector()
model_selector()

PAGES_DIR = ROOT / "app" / "views"  # index_page.py: a file named index.py would shadow the `index` package
PAGES = {
    "Use": [
        st.Page(str(PAGES_DIR / "ask.py"), title="Ask", icon=":material/chat:", default=True),
        st.Page(str(PAGES_DIR / "compare.py"), title="Compare", icon=":material/view_column:"),
    ],
    "Build": [
        st.Page(
            str(PAGES_DIR / "index_page.py"), title="Index", icon=":material/folder_open:", url_path="index"
        ),
        st.Page(str(PAGES_DIR / "style.py"), title="Answer style", icon=":material/format_list_bulleted:"),
        st.Page(str(PAGES_DIR / "datasets.py"), title="Datasets", icon=":material/table_rows:"),
        st.Page(str(PAGES_DIR / "train.py"), title="Train", icon=":material/model_training:"),
        st.Page(str(PAGES_DIR / "deploy.py"), title="Deploy", icon=":material/rocket_launch:"),
    ],
    "Decide": [
        st.Page(str(PAGES_DIR / "strategy.py"), title="Strategy", icon=":material/explore:"),
    ],
}

st.navigation(PAGES).run()
