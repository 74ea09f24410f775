"""`hybrid adapters list|activate|rollback` and `hybrid train`'s early data check, through the real
argument parser on a temporary workspace (no model is loaded)."""

from __future__ import annotations

import json

import pytest

from adapters import registry
from app.cli import main
from tests.test_registry import _fill


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path))
    root = tmp_path / "collections" / "sample" / "adapters"
    for name in ("v1", "v2"):
        with registry.staged_version(root, name) as (stage, _):
            _fill(stage)
    return tmp_path


@pytest.mark.usefixtures("workspace")
def test_adapters_activate_list_and_rollback(capsys):
    assert main(["adapters", "activate", "v1"]) == 0
    assert main(["adapters", "activate", "v2"]) == 0
    capsys.readouterr()
    assert main(["adapters", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["active"]) for v in data["versions"]] == [("v1", False), ("v2", True)]
    assert data["in_use"] == "v2"
    assert main(["adapters", "rollback"]) == 0
    assert capsys.readouterr().out == "rolled back; active adapter: v1\n"
    assert main(["adapters", "rollback"]) == 2
    assert "nothing to roll back to from v1" in capsys.readouterr().err


def test_activating_an_unknown_version_is_one_clear_line(workspace, capsys):
    assert main(["adapters", "activate", "v7"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: adapter version 'v7' not found in {workspace / 'collections' / 'sample' / 'adapters'} — known versions: v1, v2\n"
    )


def test_train_reports_malformed_rows_before_starting_a_job(workspace, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "lang": "en", "question": "Q?", "answer": "A."}\n{"id": "b"}\n', encoding="utf-8"
    )
    assert main(["train", "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: field 'lang' is missing or not a non-empty string" in err
    assert not (workspace / "jobs").exists() or list((workspace / "jobs").iterdir()) == []


@pytest.mark.usefixtures("workspace")
def test_invalid_parameters_are_one_clear_line(capsys):
    assert main(["train", "--lr", "5"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: training parameter lr=5.0 is invalid: must be in (0, 0.1]"
    )


def test_training_from_corrections_holds_out_no_validation_rows_unless_told() -> None:
    from app.cli import build_parser
    from app.commands.train_cmd import _params

    parser = build_parser()
    assert _params(parser.parse_args(["train"])).val_share == 0.1
    assert _params(parser.parse_args(["train", "--from-corrections"])).val_share == 0.0
    told = parser.parse_args(
        ["train", "--from-corrections", "--val-share", "0.2", "--correction-repeats", "5"]
    )
    assert (_params(told).val_share, _params(told).correction_repeats) == (0.2, 5)
