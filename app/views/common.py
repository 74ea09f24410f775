"""Helpers shared by the Streamlit pages: settings, error display, reading workspace reports.

Nothing here imports a heavy library; pages get models through ``app.wiring`` builders wrapped in
``st.cache_resource`` so they load once per process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from app.settings import ModelSettings, Settings, load_settings
from domain.errors import HybridError
from domain.style import StyleProfile
from domain.types import ALL_MODES

logger = logging.getLogger(__name__)


COLLECTION_KEY = "collection"  # the sidebar selector's session key, shared by every page
NEXT_COLLECTION_KEY = "collection_next"  # a page asks for another selection on the next run
ACTIVE_STATES = ("queued", "starting", "running")  # a background job's states while it may still run
POLL_S = 2.0  # how often a page polls a running job's status


@st.cache_resource
def base_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    from app.logs import setup_logging

    s = load_settings()
    setup_logging(s.log_level)
    return s


def selected_collection() -> str:
    """The collection this browser session shows (the sidebar's choice, else the settings')."""
    chosen = st.session_state.get(COLLECTION_KEY)
    return str(chosen) if chosen else base_settings().collection


def settings() -> Settings:
    """The settings with this browser session's collection selected."""
    from app.wiring.collections import with_collection

    return with_collection(base_settings(), selected_collection())


def select_collection_next_run(name: str) -> None:
    """Select collection ``name`` in the sidebar from the next run on (a widget's value cannot be
    changed in the run that drew it)."""
    st.session_state[NEXT_COLLECTION_KEY] = name


def collection_caption() -> None:
    """The line under a page's title that says which collection the page shows."""
    from app.views.text import md_escape

    st.caption(f"Collection **{md_escape(selected_collection())}** — switch it in the sidebar.")


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show a ``HybridError`` as ``st.error`` (message + next step); anything else with ``st.exception``."""
    try:
        yield
    except HybridError as e:
        st.error(str(e))
    except Exception as e:  # noqa: BLE001 - a page must never crash
        logger.exception("page error")
        st.exception(e)


def report_profile(report: dict[str, Any]) -> str:
    """The model profile an evaluation report was measured with (reports written before model
    profiles existed were all the default profile's)."""
    model = report.get("model")
    if isinstance(model, dict) and model.get("profile"):
        return str(model["profile"])
    return str(ModelSettings.model_fields["profile"].default)


def latest_eval_report(
    evals_dir: Path, profile: str | None = None
) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest evaluation report JSON in ``evals_dir`` that scores all four modes, else the
    newest that has a "modes" section at all (a run of one mode or kind does not hide a full one);
    with ``profile``, only reports measured with that model profile."""
    if not evals_dir.is_dir():
        return None, None
    fallback: tuple[dict[str, Any] | None, Path | None] = (None, None)
    for path in sorted(evals_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = read_eval_report(path)
        if data is None or (profile is not None and report_profile(data) != profile):
            continue
        if {m.value for m in ALL_MODES} <= set(data["modes"]):
            return data, path
        if fallback[0] is None:
            fallback = (data, path)
    return fallback


def read_eval_report(path: Path) -> dict[str, Any] | None:
    """The evaluation report JSON at ``path`` when it has a "modes" section, else None (an
    unreadable file is logged and skipped)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("skipping unreadable eval report %s", path)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("modes"), dict) else None


def collection_style() -> StyleProfile:
    """The selected collection's answer style (a small file, read on each call)."""
    from app.wiring.collections import get_collection

    return get_collection(settings()).style()
