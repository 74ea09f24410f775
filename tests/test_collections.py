"""Collections: every command and page reads and writes the selected collection's index, style,
datasets, adapters, router and corrections, and nothing leaks into another collection; an older
workspace is taken over without re-embedding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from adapters import registry
from app.cli import main
from app.settings import Settings
from app.views import common as page_common
from app.views import services as page_services
from app.wiring.collections import (
    create_collection,
    get_collection,
    save_style,
    with_collection,
)
from app.wiring.take_over import forget_take_over
from domain.corrections import CorrectionStore
from domain.errors import ConfigError, DataError
from domain.pipeline import Assistant, AssistantOptions
from domain.router import AdapterState, RouterThresholds
from domain.style import NEUTRAL
from tests.fakes_answer import FakeGenerator, FakeQuestionEmbedder, FakeRetriever
from tests.fakes_app import FakeAssistant, FakeExporter, FakeIndexer, FakeTrainer
from tests.fakes_app_jobs import FakeDatasets
from tests.styles import SAMPLE_STYLE
from tests.test_registry import _make

ROOT = Path(__file__).resolve().parents[1]


def _docs(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(f"# Guide\n\n{text}\n", encoding="utf-8")
    return folder


def test_each_collection_searches_its_own_index(cli_env: Path, capsys) -> None:
    a = _docs(cli_env / "a", "Backups are kept for fourteen days on the archive server.")
    b = _docs(cli_env / "b", "Printers need a badge before colour jobs are released.")
    assert main(["index", str(a), "--collection", "alpha"]) == 0
    assert main(["index", str(b), "--name", "beta"]) == 0  # --name stays an alias
    capsys.readouterr()
    assert main(["search", "how long are backups kept", "--collection", "alpha", "--json"]) == 0
    hits_a = json.loads(capsys.readouterr().out)["hits"]
    assert main(["search", "how long are backups kept", "--index", "beta", "--json"]) == 0
    hits_b = json.loads(capsys.readouterr().out)["hits"]
    assert "fourteen days" in hits_a[0]["text"] and all("fourteen" not in h["text"] for h in hits_b)
    settings = Settings(workspace=cli_env / "ws")
    assert get_collection(settings, "alpha").docs == a.resolve()
    assert (cli_env / "ws" / "collections" / "beta" / "index" / "CURRENT").is_file()


def test_a_new_collection_has_the_neutral_style_its_own_datasets_and_no_adapter(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    mine = create_collection(settings, "manual", _docs(tmp_path / "docs", "x"))
    assert mine.style() == NEUTRAL and mine.default_adapters() == {}
    assert mine.eval_set == mine.paths.eval_set and not mine.eval_set.exists()
    sample = get_collection(settings, "sample")
    assert sample.style().labels == SAMPLE_STYLE.labels
    assert sample.eval_set == ROOT / "corpus" / "eval.jsonl" and sample.train_set.is_file()
    assert sample.default_adapters()["qwen"] == ROOT / "corpus" / "default_adapter"
    assert set(sample.scoreboards()) == {"qwen", "qwen-1.5b"} and mine.scoreboards() == {}
    assert all(path.is_file() for path in sample.scoreboards().values())
    from app.wiring.active_adapter import current_adapter
    from app.wiring.training_data import train_files

    assert current_adapter(with_collection(settings, "manual")) == (None, None)
    with pytest.raises(DataError, match="dataset build --collection manual"):
        train_files(with_collection(settings, "manual"))
    with pytest.raises(ConfigError, match="collection name"):
        create_collection(settings, "../evil")


def test_a_saved_style_is_the_collections_own(tmp_path: Path) -> None:
    from app.wiring.answer import assistant_options

    settings = Settings(workspace=tmp_path / "ws")
    create_collection(settings, "manual")
    three = SAMPLE_STYLE.with_changes(name="three-lines")
    save_style(settings, "manual", three)
    assert assistant_options(with_collection(settings, "manual")).style == three
    assert assistant_options(with_collection(settings, "other")).style == NEUTRAL
    (tmp_path / "ws" / "collections" / "manual" / "style.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="style.json"):
        get_collection(settings, "manual").style()


def test_adapters_router_and_reports_are_per_collection(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    settings = Settings(workspace=tmp_path / "ws")
    root = get_collection(settings, "manual").paths.adapters
    registry.activate(root, _make(root))
    assert main(["adapters", "list", "--collection", "manual", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["in_use"] == "v1"
    assert main(["adapters", "list", "--json"]) == 0  # the sample: its bundled default adapter
    assert json.loads(capsys.readouterr().out)["in_use"] == "default"
    from app.wiring.answer import feedback_db, router_path

    paths = {
        name: (router_path(with_collection(settings, name)), feedback_db(with_collection(settings, name)))
        for name in ("sample", "manual")
    }
    assert paths["sample"][0] != paths["manual"][0] and paths["sample"][1] != paths["manual"][1]
    assert all(p.is_relative_to(tmp_path / "ws" / "collections" / "manual") for p in paths["manual"])


@pytest.fixture()
def fake_assistants(tmp_path, monkeypatch):
    """`build_assistant` replaced by one that answers from fakes but keeps each collection's own
    correction memory, router and style, as the real wiring does."""
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path))
    built: list[str] = []

    def fake_build(settings, *, index=None, adapter_dir=None, use_corrections=True):  # noqa: ARG001
        from app.wiring.answer import feedback_db, router_path

        built.append(settings.collection)
        return Assistant(
            retriever=FakeRetriever(),
            generator=FakeGenerator(),
            embed_fn=FakeQuestionEmbedder() if use_corrections else None,
            corrections=CorrectionStore(feedback_db(settings)) if use_corrections else None,
            options=AssistantOptions(low_score_warning=0.6, style=get_collection(settings).style()),
            thresholds=RouterThresholds.load(router_path(settings)),
            adapter=AdapterState(active=True, label="v1", gate_passed=True),
        )

    monkeypatch.setattr("app.wiring.answer.build_assistant", fake_build)
    return built


def test_a_correction_answers_only_in_its_own_collection(fake_assistants, capsys) -> None:
    question = "How many days of annual leave do I get?"
    assert main(["ask", question, "--mode", "rag", "--collection", "manual"]) == 0
    assert main(["correct", "--corrected", "Answer: 20 days.\nSource: [hr/annual-leave.md]"]) == 0
    assert "stored correction #1" in capsys.readouterr().out  # into the collection that answered
    assert main(["ask", question, "--collection", "manual", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["from_correction"] is True
    for other in ("sample", "another"):
        assert main(["ask", question, "--collection", other, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["from_correction"] is False and "20 days" not in data["text"]
    assert fake_assistants == ["manual", "manual", "sample", "another"]

    # it is an evaluation row of its own collection only, scored on what the correction says
    from app.evaluation.modes import correction_rows
    from app.settings import load_settings
    from app.wiring.collections import with_collection

    base = load_settings()
    rows = correction_rows(get_collection(with_collection(base, "manual")))
    assert [(r["question"], r["key_facts"], r["split"]) for r in rows] == [
        (question, ["20 days."], "correction")
    ]
    assert correction_rows(get_collection(with_collection(base, "another"))) == []
    assert (
        main(["eval", "--collection", "manual", "--modes", "rag", "--kinds", "correction", "--json", "-"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["n_rows"] == 1 and report["by_kind"]["correction"]["rag"]["n"] == 1

    # and a training row of its own collection only, beside the training set
    from adapters.train_params import TrainingParams
    from app.wiring.training_data import prepare_examples

    train = Path(os.environ["HYBRID_WORKSPACE"]) / "train.jsonl"
    train.write_text(
        json.dumps({"id": "t1", "lang": "en", "question": "Who approves leave?", "answer": "Answer: HR."})
        + "\n",
        encoding="utf-8",
    )
    spec = {"params": TrainingParams(rag_share=0.0).to_json(), "data": {"files": [str(train)]}}
    for name, corrections in (("manual", 1), ("another", 0)):
        _, made = prepare_examples(with_collection(base, name), spec)
        assert (made["rows"], made["corrections"]) == (1 + corrections, corrections)


def test_an_older_workspace_is_taken_over_without_reembedding(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    old = ws / "index" / "default" / "gen-000001"
    old.mkdir(parents=True)
    (old / "vectors.npy").write_bytes(b"vectors")
    (ws / "index" / "default" / "CURRENT").write_text("gen-000001\n", encoding="utf-8")
    (ws / "index" / "manual").mkdir(parents=True)
    _make(ws / "adapters")
    (ws / "feedback.sqlite").write_bytes(b"corrections")
    (ws / "router.json").write_text("{}", encoding="utf-8")
    inode = os.stat(old / "vectors.npy").st_ino
    forget_take_over()
    settings = Settings(workspace=ws)
    sample = get_collection(settings, "sample").paths
    moved = sample.index / "gen-000001" / "vectors.npy"
    assert moved.read_bytes() == b"vectors" and os.stat(moved).st_ino == inode  # moved, not rebuilt
    assert registry.list_versions(sample.adapters)[0].version == "v1"
    assert sample.feedback_db.read_bytes() == b"corrections" and sample.router.is_file()
    assert get_collection(settings, "manual").paths.index.is_dir()
    assert not (ws / "index").exists() and not (ws / "adapters").exists()


def test_jobs_start_in_the_collection_they_were_started_for(tmp_path: Path) -> None:
    from adapters import jobs
    from app.views.backends.training import RealTrainingBackend

    settings = Settings(workspace=tmp_path / "ws")
    for name in ("sample", "manual"):
        jobs.new_job(settings.ws.jobs, "train", {"collection": name, "params": {}})
    jobs.new_job(settings.ws.jobs, "train", {"params": {}})  # from before collections: the sample's
    mine = RealTrainingBackend(with_collection(settings, "manual")).jobs()
    theirs = RealTrainingBackend(settings).jobs()
    assert len(mine) == 1 and len(theirs) == 2


# ----------------------------------------------------------------------------- pages
@pytest.fixture()
def per_collection_fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    page_common.base_settings.clear()
    made: dict[str, dict[str, object]] = {}

    def factory(kind: str):
        def build(collection: str):
            found = made.setdefault(collection, {})
            if kind not in found:
                found[kind] = {
                    "assistant": FakeAssistant,
                    "indexer": lambda: FakeIndexer(tmp_path / collection),
                    "trainer": FakeTrainer,
                    "exporter": lambda: FakeExporter(tmp_path / collection),
                    "datasets": FakeDatasets,
                }[kind]()
            return found[kind]

        return page_services.per_collection(build)

    page_services.override(**{k: factory(k) for k in page_services.BACKENDS})
    yield made
    page_services.clear_overrides()
    page_common.base_settings.clear()


@pytest.mark.usefixtures("loopback_option")
def test_the_sidebar_selector_switches_every_page_to_the_collection(per_collection_fakes, tmp_path) -> None:
    create_collection(Settings(workspace=tmp_path / "ws"), "manual")
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30).run()
    selector = at.sidebar.selectbox(key="collection")
    assert selector.options == ["sample", "manual"] and selector.value == "sample"
    assert any("Collection **sample**" in c.value for c in at.caption)
    selector.select("manual").run()
    for name in ("ask", "compare", "index_page", "style", "datasets", "train", "deploy", "strategy"):
        at.switch_page(f"views/{name}.py").run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert any("Collection **manual**" in c.value for c in at.caption), name
        assert at.sidebar.selectbox(key="collection").value == "manual"  # kept across pages
    assert set(per_collection_fakes["manual"]) == {"assistant", "indexer", "trainer", "exporter", "datasets"}
    at.switch_page("views/ask.py").run()
    at.text_area(key="ask_question").input("How long is annual leave?")
    at.button[0].click().run()
    assert per_collection_fakes["manual"]["assistant"].asked == [("How long is annual leave?", "auto")]
    assert "assistant" not in per_collection_fakes.get("sample", {}) or not (
        per_collection_fakes["sample"]["assistant"].asked
    )


@pytest.mark.usefixtures("loopback_option")
def test_a_new_collection_is_one_step_on_the_index_page(per_collection_fakes, tmp_path) -> None:
    docs = _docs(tmp_path / "docs", "Backups are kept for fourteen days.")
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30).run()
    at.switch_page("views/index_page.py").run()
    at.text_input(key="new_collection_name").input("manual")
    at.text_input(key="new_collection_folder").input(str(docs))
    at.button(key="FormSubmitter:new_collection_form-Create and index").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert per_collection_fakes["manual"]["indexer"].syncs == ["manual"]
    assert at.sidebar.selectbox(key="collection").value == "manual"
    assert any("Collection **manual**" in c.value for c in at.caption)


@pytest.mark.usefixtures("per_collection_fakes")
def test_the_style_page_edits_the_selected_collections_profile(tmp_path) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    create_collection(settings, "manual")
    at = AppTest.from_file(str(ROOT / "app" / "views" / "style.py"), default_timeout=30)
    at.session_state["collection"] = "manual"
    at.run()
    assert not at.exception and any("Profile" in c.value and "neutral" in c.value for c in at.caption)
    at.text_area(key="style_manual_labels_en").input("Answer:\nSource:\nTip:")
    at.text_area(key="style_manual_labels_zh").input("答案：\n来源：\n提示：")
    at.button(key="FormSubmitter:style_manual_form-Save style").click().run()
    assert at.error and "does not follow this style" in at.error[0].value  # the examples have two lines
    assert not (tmp_path / "ws" / "collections" / "manual" / "style.json").exists()
    at.text_area(key="style_manual_a_en").input("Answer: 14 days.\nSource: [admin/backups.md]\nTip: Ask ops.")
    at.text_area(key="style_manual_a_zh").input("答案：14 天。\n来源：【admin/backups.md】\n提示：问运维。")
    at.button(key="FormSubmitter:style_manual_form-Save style").click().run()
    assert not at.error, [e.value for e in at.error]
    saved = get_collection(settings, "manual").style()
    assert saved.labels_for("en") == ("Answer:", "Source:", "Tip:") and saved.n_lines == 3
    assert get_collection(settings, "sample").style().labels == SAMPLE_STYLE.labels  # untouched
    at.button(key="style_manual_reset").click().run()
    assert get_collection(settings, "manual").style() == NEUTRAL


def test_an_import_with_malformed_lines_names_them_and_keeps_the_stored_set(tmp_path, monkeypatch) -> None:
    from app.views.backends.datasets import RealDatasetBackend

    settings = Settings(workspace=tmp_path / "ws")
    coll = create_collection(settings, "manual")
    row = {
        "id": "e-1",
        "lang": "en",
        "kind": "fact",
        "question": "How long are backups kept?",
        "reference": "Answer: 14 days.\nSource: [admin/backups.md]",
        "key_facts": ["14 days"],
        "source": "admin/backups.md",
        "split": "tune",
    }
    coll.paths.eval_set.write_text(json.dumps(row) + "\n", encoding="utf-8")
    before = coll.paths.eval_set.read_bytes()
    page_common.base_settings.clear()
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    try:
        page_services.override(datasets=RealDatasetBackend(with_collection(settings, "manual")))
        at = AppTest.from_file(str(ROOT / "app" / "views" / "datasets.py"), default_timeout=30)
        at.session_state["collection"] = "manual"
        at.run()
        assert list(at.dataframe[0].value["id"]) == ["e-1"]
        assert any("No indexed passage" in c.value for c in at.caption)  # not indexed yet: said, no error
        assert not at.error
        bad = b'{"id": "e-2", "lang": "en"}\nnot json\n' + json.dumps({**row, "id": "e-3"}).encode() + b"\n"
        at.get("file_uploader")[0].upload("rows.jsonl", bad, "application/jsonl").run()
        at.button(key="dataset_import_go").click().run()
        assert at.error, "the malformed lines are reported"
        message = at.error[0].value
        assert "line 1" in message and "line 2" in message and "line 3" not in message
        assert coll.paths.eval_set.read_bytes() == before  # nothing stored was lost
    finally:
        page_services.clear_overrides()
        page_common.base_settings.clear()


@pytest.mark.usefixtures("loopback_option", "per_collection_fakes")
def test_the_address_opens_the_collection_it_names(tmp_path) -> None:
    create_collection(Settings(workspace=tmp_path / "ws"), "manual")
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30)
    at.query_params["collection"] = "manual"
    at.run()
    assert at.sidebar.selectbox(key="collection").value == "manual"
    at.sidebar.selectbox(key="collection").select("sample").run()
    assert at.query_params["collection"] in ("sample", ["sample"])
