"""The bundled sample's style profile (three labelled lines), for tests that check answers written
in it; domain code defaults to the neutral style."""

from __future__ import annotations

from pathlib import Path

from domain.style import load_style

SAMPLE_STYLE = load_style(Path(__file__).resolve().parents[1] / "corpus" / "style.json")
