"""The README's settings table is the one the settings model generates, so no setting is missing,
stale or described differently there."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings, settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_settings_table_matches_the_settings_model() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- settings:start -->\n", "\n<!-- settings:end -->"
    assert start in text and end in text
    shown = text.split(start, 1)[1].split(end, 1)[0]
    assert shown == settings_table(), "regenerate it with `python -m app.settings`"


def test_every_setting_has_a_row_with_a_description() -> None:
    table = settings_table()
    for section in ("models", "index", "generation", "answer", "serve"):
        fields = type(getattr(Settings(), section)).model_fields
        for name, field in fields.items():
            assert f"`HYBRID_{section.upper()}__{name.upper()}`" in table
            assert field.description, f"{section}.{name} has no description"
