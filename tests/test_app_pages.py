"""Every page under AppTest with fake backends (``tests/fakes_app.py``) and real interactions: ask,
switch mode, correct, compare, index a folder, train and cancel, export and download. Each test
ends with no exception on the page. A subprocess check proves pages render without loading torch
or any other heavy library, with the fakes and with the real (lazy) backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.views import common as page_common
from app.views import services as page_services
from tests.fakes_app import HOSTILE, FakeAssistant, FakeExporter, FakeIndexer, FakeTrainer
from tests.fakes_app_jobs import FakeDatasets

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "app" / "views"
PAGE_NAMES = ("ask", "compare", "index_page", "style", "datasets", "train", "deploy", "strategy")
HEAVY = ("torch", "transformers", "peft", "faiss", "sentence_transformers", "llama_cpp")


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))
    page_common.base_settings.clear()
    backends = {
        "assistant": FakeAssistant(),
        "indexer": FakeIndexer(tmp_path),
        "trainer": FakeTrainer(),
        "exporter": FakeExporter(tmp_path),
        "datasets": FakeDatasets(),
    }
    page_services.override(**backends)
    yield backends
    page_services.clear_overrides()
    page_common.base_settings.clear()


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=30)
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    for md in list(at.markdown) + list(at.caption):
        assert "<script>" not in md.value and "![pixel]" not in md.value, md.value


def texts(at: AppTest) -> str:
    return "\n".join(t.value for t in at.text)


@pytest.mark.usefixtures("fakes")
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_renders_with_fakes(name):
    at = page(name)
    assert_clean(at)
    assert at.title[0].value


def test_no_legacy_pages_folder_beside_the_main_script():
    """A ``pages/`` folder next to streamlit_app.py switches Streamlit to its legacy multipage mode
    for a first visit straight to a page URL (seen in Chromium: /train ran without navigation)."""
    assert not (ROOT / "app" / "pages").exists()


@pytest.mark.usefixtures("fakes", "loopback_option")
def test_navigation_lists_every_page():
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30).run()
    assert_clean(at)
    assert at.title[0].value == "Ask"
    for name in PAGE_NAMES[1:]:
        at.switch_page(f"views/{name}.py").run()
        assert_clean(at)


@pytest.mark.usefixtures("fakes", "loopback_option")
def test_the_sidebar_model_is_chosen_per_collection_and_named():
    from app.settings import load_settings
    from app.wiring.models import profile_key

    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=30).run()
    assert_clean(at)
    model = at.sidebar.selectbox(key="model_for_sample")
    assert model.value == "qwen" and "Qwen2.5-Coder-1.5B-Instruct Q4_K_M" in model.options
    assert any(c.value.startswith("Answers with: Qwen2\\.5\\-Coder\\-0\\.5B") for c in at.sidebar.caption)
    model.select("qwen-1.5b").run()
    assert_clean(at)
    assert profile_key(load_settings()) == "qwen-1.5b"  # kept in the collection, not the session
    assert any("1\\.5B" in c.value for c in at.sidebar.caption)


def test_ask_streams_an_answer_with_badge_sources_and_marked_span(fakes):
    at = page("ask")
    at.text_area(key="ask_question").input("How long is annual leave?")
    at.button[0].click().run()  # the form's Ask button
    assert_clean(at)
    assert fakes["assistant"].asked == [("How long is annual leave?", "auto")]
    body = "\n".join(m.value for m in at.markdown)
    assert "Conclusion" in body and "15 days \\(tuned\\_rag\\)" in body
    assert "router" in body or any("router" in c.value for c in at.caption)
    assert any("adapter v2 active" in c.value for c in at.caption)
    shown = texts(at)
    assert "⟦Annual leave is 15 working days per year.⟧" in shown
    assert HOSTILE in shown  # document text only ever through st.text
    assert any("quoted word for word from hr/leave\\-policy\\.md" in c.value for c in at.caption)
    assert "Annual leave is 15 working days per year." in [c.value for c in at.code]
    assert not at.get("html")


def test_ask_says_what_a_question_was_searched_as_in_another_language(fakes):  # noqa: ARG001 — the fake backends
    at = page("ask")
    at.text_area(key="ask_question").input("年假有几天？")
    at.button[0].click().run()
    assert_clean(at)
    captions = [c.value for c in at.caption]
    assert any("English passages were searched with the question translated" in c for c in captions)
    assert any("How long is annual leave?" in c for c in captions)
    # the answer line as the model wrote it, under the translation shown, as plain text
    assert any("Answer line translated into Simplified Chinese" in c for c in captions)
    # the model's name is escaped, never rendered as HTML
    assert any(
        "Answered by Qwen \\<i\\>1\\.5B\\</i\\>\\: the question and its best passage" in c for c in captions
    )
    assert "Annual leave is <b>15</b> days." in texts(at)
    assert not at.get("html")


def test_ask_tells_how_to_search_other_languages_when_no_model_translates(fakes):
    fakes["assistant"].translate_hint = "set up the larger model (`make install-1.5b`)"
    at = page("ask")
    at.text_area(key="ask_question").input("How long is annual leave?")  # English passages: no tip
    at.button[0].click().run()
    assert not [i for i in at.info if "Tip:" in i.value]
    at.text_area(key="ask_question").input("病假有几天？")  # English passages, not translated
    at.button[0].click().run()
    assert_clean(at)
    assert any("make install\\-1\\.5b" in i.value or "make install-1.5b" in i.value for i in at.info)


def test_switching_mode_overrides_the_router(fakes):
    at = page("ask")
    at.text_area(key="ask_question").input("How long is annual leave?")
    at.button_group(key="ask_mode").set_value("prompt")
    at.button[0].click().run()
    assert_clean(at)
    assert fakes["assistant"].asked[-1] == ("How long is annual leave?", "prompt")
    assert any("you chose" in b.proto.label for b in at.get("badge")) if at.get("badge") else True
    assert "Prompt only" in str(at.main)
    assert "No passages were retrieved" in "\n".join(c.value for c in at.caption)


def test_saving_a_correction_confirms_and_is_used_next_time(fakes):
    at = page("ask")
    at.text_area(key="ask_question").input("How long is annual leave?")
    at.button[0].click().run()
    at.toggle(key="ask_correct_open").set_value(True).run()
    at.text_area(key="ask_correct_text").input(
        "Conclusion: 20 days.\nBasis: [hr/leave-policy.md]\nNote: none."
    )
    at.button(key="FormSubmitter:ask_correct_form-Save correction").click().run()
    assert_clean(at)
    assert fakes["assistant"].corrections == [
        {
            "question": "How long is annual leave?",
            "mode": "tuned_rag",
            "original": fakes["assistant"].stream("x", "auto").text,
            "corrected": "Conclusion: 20 days.\nBasis: [hr/leave-policy.md]\nNote: none.",
        }
    ]
    assert "Saved correction #1" in at.success[0].value
    at.button[0].click().run()  # ask the same question again
    assert_clean(at)
    assert any("correction memory" in i.value for i in at.info)
    assert "correction memory" in at.markdown[0].value  # the badge
    assert any(c.value.startswith("from correction memory · format score") for c in at.caption)


def test_a_generation_error_mid_answer_is_shown_and_the_stream_closed(fakes):
    fakes["assistant"].fail_after = 3
    at = page("ask")
    at.text_area(key="ask_question").input("How long is annual leave?")
    at.button[0].click().run()
    assert not at.exception
    assert at.error[0].value == "llama.cpp stopped mid-answer — ask again"
    assert fakes["assistant"].last_stream.closed is True
    assert "ask_last" not in at.session_state


def test_empty_question_warns_instead_of_asking(fakes):
    at = page("ask")
    at.button[0].click().run()
    assert_clean(at)
    assert at.warning[0].value == "Type a question first."
    assert fakes["assistant"].asked == []


def test_compare_shows_four_columns_one_retrieval_and_the_routers_pick(fakes):
    at = page("compare")
    at.text_area(key="compare_question").input("How long is annual leave?")
    at.button[0].click().run()
    assert_clean(at)
    assert fakes["assistant"].retrievals == 1
    assert [m.value for m in fakes["assistant"].last_compare.started] == [
        "prompt",
        "rag",
        "tuned",
        "tuned_rag",
    ]
    heads = [s.value for s in at.subheader]
    assert heads[:4] == ["Prompt only", "RAG", "Tuned (adapter)", "Tuned + RAG ★"]
    assert "Shared retrieval" in heads
    facts = [m.value for m in at.markdown if m.value.startswith("latency ")]
    assert facts == [
        f"latency **{s:.1f} s** · **{n / (s - f):.1f}** tokens/s · format **1.00**"
        for s, f, n in ((1.2, 0.2, 20),) * 4
    ]
    at.toggle(key="compare_fix_rag_open").set_value(True).run()
    at.text_area(key="compare_fix_rag_text").input("Conclusion: fixed.\nBasis: [a.md]\nNote: none.")
    at.button(key="FormSubmitter:compare_fix_rag_form-Save correction").click().run()
    assert_clean(at)
    assert fakes["assistant"].corrections[0]["mode"] == "rag"


def test_compare_without_an_adapter_still_answers_the_other_modes(fakes):
    fakes["assistant"].has_adapter = False
    at = page("compare")
    at.text_area(key="compare_question").input("How long is annual leave?")
    at.button[0].click().run()
    assert not at.exception
    assert [m.value for m in fakes["assistant"].last_compare.started] == ["prompt", "rag"]
    warned = [w.value for w in at.warning]
    assert len(warned) == 2 and all("needs a LoRA adapter" in w for w in warned)
    assert len([m for m in at.markdown if m.value.startswith("latency ")]) == 2
    assert [c.value for c in at.caption].count("Train an adapter on the Train page to fill this column.") == 2


def test_index_a_folder_lists_documents_and_previews_chunks(fakes, tmp_path):
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "leave.md").write_text(
        "# Leave\n\nAnnual leave is 15 days.\n\n" + HOSTILE + "\n", encoding="utf-8"
    )
    (docs / "pay.txt").write_text("Salaries are paid monthly.\n", encoding="utf-8")
    at = page("index_page")
    assert any("Collection 'sample' has no index yet" in i.value.replace("\\", "") for i in at.info)
    at.text_input(key="index_folder_sample").input(str(docs))
    at.button(key="index_go").click().run()
    assert_clean(at)
    indexer = fakes["indexer"]
    assert indexer.syncs == ["sample"]
    assert indexer.progress == [(0, 2, "hr/leave.md"), (1, 2, "pay.txt")]
    assert "Collection 'sample' updated: 2 files, 4 chunks" in at.success[0].value
    table = at.dataframe[0].value
    assert list(table["file"]) == ["hr/leave.md", "pay.txt", "image.png"]
    assert list(table["status"]) == ["indexed", "indexed", "skipped"]
    assert HOSTILE in texts(at)  # chunk preview of the first document, as plain text
    at.selectbox(key="index_preview_doc").select("pay.txt").run()
    assert "Salaries are paid monthly." in texts(at)
    at.text_input(key="index_query").input("annual leave")
    at.button(key="FormSubmitter:index_search_form-Search").click().run()
    assert_clean(at)
    assert "⟦Annual leave is 15 days.⟧" in texts(at)


def test_index_resync_and_delete(fakes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Alpha.\n", encoding="utf-8")
    indexer = fakes["indexer"]
    indexer.sync(docs, name="sample")
    at = page("index_page")
    at.button(key="index_resync").click().run()
    assert_clean(at)
    assert indexer.syncs == ["sample", "sample"]
    at.checkbox(key="index_delete_sure").check().run()
    at.button(key="index_delete").click().run()
    assert_clean(at)
    assert indexer.deleted == ["sample"]
    assert any("Collection 'sample' has no index yet" in i.value.replace("\\", "") for i in at.info)


def test_index_vectors_switch_to_int8_rebuilds_and_resync_keeps_it(fakes, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Alpha.\n", encoding="utf-8")
    indexer = fakes["indexer"]
    indexer.sync(docs, name="sample")
    at = page("index_page")
    assert any("fp32 vectors" in c.value for c in at.caption)
    at.text_input(key="index_folder_sample").input(str(docs))
    at.radio(key="index_precision_sample").set_value("int8").run()
    assert any("embeds every document again" in i.value for i in at.info)
    at.button(key="index_go").click().run()
    assert_clean(at)
    assert (indexer.rebuilds[-1], indexer.precisions["sample"]) == (True, "int8")
    assert any("int8 vectors" in c.value for c in at.caption)
    at.button(key="index_resync").click().run()
    assert (indexer.rebuilds[-1], indexer.precisions["sample"]) == (False, "int8")


@pytest.mark.usefixtures("fakes")
def test_index_bad_folder_shows_the_next_step(tmp_path):
    at = page("index_page")
    at.text_input(key="index_folder_sample").input(str(tmp_path / "missing"))
    at.button(key="index_go").click().run()
    assert not at.exception
    assert at.error[0].value.endswith("is not a folder — pass the folder that holds your documents")


def test_index_upload_saves_files_into_the_workspace_and_indexes_them(fakes, tmp_path):
    at = page("index_page")
    at.file_uploader(key="index_upload").upload("notes.md", b"Uploaded notes.\n", "text/markdown").run()
    at.button(key="index_upload_go").click().run()
    assert_clean(at)
    target = tmp_path / "uploads" / "sample"
    assert (target / "notes.md").read_bytes() == b"Uploaded notes.\n"
    assert fakes["indexer"].roots["sample"] == str(target.resolve())


def test_train_start_shows_loss_and_eta_then_cancel(fakes):
    at = page("train")
    assert [m.value for m in at.metric][:2] == ["120", "3"]
    # time and memory are said before the job starts, for the model that will train
    assert any(
        c.value.replace("\\", "").startswith(
            "Before you start — 120 rows, 3 epoch(s) on Fake 1B: about 36 min"
        )
        for c in at.caption
    )
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_maxrows").set_value(40)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert_clean(at)
    trainer = fakes["trainer"]
    assert len(trainer.started) == 1
    started = trainer.started[0]
    assert started["from_corrections"] is True
    assert started["params"]["epochs"] == 2 and started["params"]["lr"] == 2e-4
    assert started["params"]["max_rows"] == 40 and started["params"]["seed"] == 1234
    assert started["params"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert "ETA" in at.get("progress")[0].proto.text
    assert len(at.get("vega_lite_chart")) == 1
    at.button(key="train_cancel").click().run()
    assert_clean(at)
    assert trainer.cancelled == ["train-1"]
    assert any("Cancelled" in i.value for i in at.info)
    at.button(key="train_resume").click().run()
    assert_clean(at)
    assert trainer.resumed == ["train-1"]
    assert at.button(key="train_cancel")


def test_train_job_runs_to_a_new_active_version(fakes):
    at = page("train")
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    for _ in range(10):  # each run polls the fake job (one step per status read)
        if at.success:
            break
        at.run()
    assert_clean(at)
    assert at.success[0].value == "Finished\\: version v3 \\(activated\\)"
    assert "Gate\\: combined 0\\.81 ≥ 0\\.80 \\(v1\\)" in [c.value for c in at.caption]
    chart = at.get("vega_lite_chart")[0]
    assert json.loads(chart.proto.spec)["encoding"]["color"]["field"] == "series"
    assert fakes["trainer"].active == "v3"
    at.run()
    assert list(at.dataframe[1].value["version"]) == ["v1", "v2", "v3"]


def test_train_job_is_found_again_after_a_reload(fakes):
    trainer = fakes["trainer"]
    trainer.start(dict(trainer.default_params()), from_corrections=False)
    at = page("train")  # a fresh session: nothing in session_state
    assert_clean(at)
    assert "train-1" in "\n".join(m.value for m in at.markdown)
    assert at.button(key="train_cancel")


def test_train_versions_activate_rollback_and_scoreboard(fakes):
    at = page("train")
    table = at.dataframe[1].value
    assert list(table["version"]) == ["v1", "v2"] and list(table["active"]) == ["●", ""]
    at.selectbox(key="train_version").select("v2")
    at.button(key="train_activate").click().run()
    assert_clean(at)
    assert fakes["trainer"].active == "v2"
    at.button(key="train_rollback").click().run()
    assert_clean(at)
    assert fakes["trainer"].active == "v1"
    board = at.dataframe[2].value
    assert list(board["mode"]) == ["tuned", "tuned_rag"]
    assert [round(x, 4) for x in board["change"]] == [0.2, 0.05]


def test_train_rollback_error_is_shown_with_next_step(fakes):
    fakes["trainer"].history = ["v1"]
    at = page("train")
    at.button(key="train_rollback").click().run()
    assert not at.exception
    assert at.error[0].value == "nothing to roll back to — activate a version"


def test_deploy_exports_and_offers_downloads_and_commands(fakes, tmp_path):
    at = page("deploy")
    assert any("Nothing exported yet" in i.value for i in at.info)
    assert any(
        c.value.replace("\\", "")
        == "Before you start — Fake 1B: peak memory about 6 GB, about 1.6 GB of disk"
        for c in at.caption
    )
    at.radio(key="deploy_quant").set_value("q4_k_m")
    at.button(key="FormSubmitter:deploy_form-Export").click().run()
    assert_clean(at)
    exporter = fakes["exporter"]
    assert [j["quant"] for j in exporter.jobs_by_id.values()] == ["q4_k_m"]
    table = at.dataframe[0].value
    assert list(table["quant"]) == ["q4_k_m"] and list(table["parity"]) == ["5/5 identical (tuned_rag)"]
    assert list(table["tokens/s"]) == [42.5]
    assert list(table["base blocks"]) == [86] and list(table["served parity"]) == [3]
    assert "adapter **v2**" in at.markdown[0].value
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download model-q4_k_m.gguf (64 B)", "Download Modelfile", "Download report (JSON)"]
    out = tmp_path / "exports" / "v2"
    assert at.code[0].value == (
        f"cd {out}\n\nllama-cli -m {out / 'model-q4_k_m.gguf'} -cnv --temp 0\n"
        "ollama create hybrid-assistant -f Modelfile-q4_k_m"
    )
    (out / "run-q4_k_m.txt").unlink()  # an export without its command file: the page writes its own
    at.run()
    assert_clean(at)
    code = "\n".join(c.value for c in at.code)
    assert f"llama-cli -m {out / 'model-q4_k_m.gguf'} -cnv --chat-template chatml" in code
    assert f"cd {out}\nollama create hybrid-assistant -f Modelfile-q4_k_m" in code


@pytest.mark.usefixtures("fakes")
def test_strategy_page_shows_our_sample_corpus_scoreboard_until_the_workspace_has_one():
    at = page("strategy")  # the fake workspace has no evals folder
    assert_clean(at)
    assert any("Measured by us with the bundled default adapter" in c.value for c in at.caption)
    board = at.table[-1].value  # the scoreboard, after the guide's table
    assert set(board["mode"]) >= {"Prompt only", "RAG", "Tuned (adapter)", "Tuned + RAG"}


@pytest.mark.usefixtures("fakes")
def test_strategy_page_keeps_the_bundled_scoreboard_over_a_partial_run_of_ones_own(tmp_path):
    evals = tmp_path / "ws" / "collections" / "sample" / "evals"
    evals.mkdir(parents=True)
    rag = {"combined": 0.5, "fact_recall": 0.4, "format": 1.0, "rouge_l": 0.5, "citation_precision": 0.9}
    (evals / "modes-1.json").write_text(json.dumps({"n_rows": 3, "modes": {"rag": rag}}), encoding="utf-8")
    at = page("strategy")
    assert_clean(at)
    assert any("Measured by us with the bundled default adapter" in c.value for c in at.caption)
    assert set(at.table[-1].value["mode"]) >= {"Prompt only", "RAG", "Tuned (adapter)", "Tuned + RAG"}


@pytest.mark.usefixtures("fakes")
def test_strategy_page_shows_the_newest_scoreboard_and_chart(tmp_path):
    evals = tmp_path / "ws" / "collections" / "sample" / "evals"  # the selected collection's reports
    evals.mkdir(parents=True)
    modes = {
        m: {"combined": c, "fact_recall": c, "format": 1.0, "rouge_l": 0.5, "citation_precision": 0.9}
        for m, c in (("prompt", 0.2), ("rag", 0.7), ("tuned", 0.4), ("tuned_rag", 0.8))
    }
    report = {
        "n_rows": 12,
        "modes": modes,
        "router": {"agreement": 0.83, "combined": 0.79},
        "by_kind": {"fact": {m: {"combined": v["combined"]} for m, v in modes.items()}},
    }
    (evals / "modes-1.json").write_text(json.dumps(report), encoding="utf-8")
    # a newer run of one mode on a few rows does not hide the full scoreboard
    partial = {"n_rows": 3, "modes": {"rag": modes["rag"]}}
    newer = evals / "modes-2.json"
    newer.write_text(json.dumps(partial), encoding="utf-8")
    os.utime(newer, (time.time() + 5, time.time() + 5))
    at = page("strategy")
    assert_clean(at)
    board = at.table[-1].value
    assert list(board["mode"]) == ["Prompt only", "RAG", "Tuned (adapter)", "Tuned + RAG"]
    assert list(board["combined"]) == ["0.20", "0.70", "0.40", "0.80"]
    assert at.metric[0].value == "0.83"
    assert len(at.get("vega_lite_chart")) == 1


@pytest.mark.usefixtures("fakes")
def test_strategy_page_shows_the_scoreboard_of_the_model_that_answers(tmp_path, monkeypatch):
    """A report measured with another model profile is not shown as this model's: with the 0.5B
    selected the 1.5B's report is passed over for the bundled scoreboard (the 0.5B's); with the
    1.5B selected its own report shows, captioned with its model."""
    evals = tmp_path / "ws" / "collections" / "sample" / "evals"
    evals.mkdir(parents=True)
    modes = {
        m: {"combined": c, "fact_recall": c, "format": 1.0, "rouge_l": 0.5, "citation_precision": 0.9}
        for m, c in (("prompt", 0.11), ("rag", 0.13), ("tuned", 0.12), ("tuned_rag", 0.14))
    }
    base = "Qwen2.5 Coder 1.5B Instruct GGUF — qwen2, 1.78 B parameters, Q4_K_M"
    report = {"n_rows": 20, "modes": modes, "model": {"profile": "qwen-1.5b", "base": base}}
    (evals / "modes-1.json").write_text(json.dumps(report), encoding="utf-8")

    at = page("strategy")  # the default profile, the 0.5B
    assert_clean(at)
    assert any("Measured by us with the bundled default adapter" in c.value for c in at.caption)
    assert not {"0.11", "0.12", "0.13", "0.14"} & set(at.table[-1].value["combined"])

    monkeypatch.setenv("HYBRID_MODELS__PROFILE", "qwen-1.5b")
    page_common.base_settings.clear()
    at = page("strategy")
    assert_clean(at)
    assert list(at.table[-1].value["combined"]) == ["0.11", "0.13", "0.12", "0.14"]
    assert any("model: Qwen2.5 Coder 1.5B Instruct GGUF" in c.value.replace("\\", "") for c in at.caption)

    (evals / "modes-1.json").unlink()  # no report of its own: the bundle's report of the 1.5B
    page_common.base_settings.clear()
    at = page("strategy")
    assert_clean(at)
    assert any("Measured by us with the bundled default adapter" in c.value for c in at.caption)
    assert any("model: Qwen2.5 Coder 1.5B Instruct GGUF" in c.value.replace("\\", "") for c in at.caption)

    monkeypatch.setenv("HYBRID_MODELS__PROFILE", "smollm2")  # neither its own report nor the bundle's
    page_common.base_settings.clear()
    at = page("strategy")
    assert_clean(at)
    assert len(at.table) == 1  # the guide's table only: no scoreboard
    assert any("No evaluation of this collection with" in i.value for i in at.info)


PROBE = r"""
import json, os, sys, time
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["root"])
os.environ["HYBRID_WORKSPACE"] = cfg["ws"]
from streamlit.testing.v1 import AppTest
if cfg["fakes"]:
    from pathlib import Path
    from app.views import services as page_services
    from tests.fakes_app import FakeAssistant, FakeExporter, FakeIndexer, FakeTrainer
    ws = Path(cfg["ws"])
    page_services.override(assistant=FakeAssistant(), indexer=FakeIndexer(ws), trainer=FakeTrainer(),
                           exporter=FakeExporter(ws))
out = {}
for name in cfg["pages"]:
    t0 = time.perf_counter()
    at = AppTest.from_file(cfg["root"] + "/app/views/" + name + ".py", default_timeout=60).run()
    out[name] = {"seconds": time.perf_counter() - t0, "exceptions": [e.value for e in at.exception],
                 "errors": [e.value for e in at.error]}
from app.views import services as ps
same = all(f() is f() for f in (ps.get_assistant, ps.get_indexer, ps.get_trainer_jobs, ps.get_exporter))
heavy = sorted(k for k in sys.modules if k.split(".")[0] in cfg["heavy"])
print(json.dumps({"pages": out, "heavy": heavy, "same_backends": same}))
"""


def render_probe(workspace: Path, *, use_fakes: bool) -> dict:
    """Run every page once in a fresh interpreter; per-page seconds and the heavy modules loaded."""
    cfg = {"root": str(ROOT), "ws": str(workspace), "fakes": use_fakes, "pages": PAGE_NAMES, "heavy": HEAVY}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cfg)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("use_fakes", [True, False], ids=["fakes", "real-backends"])
def test_pages_render_without_loading_a_heavy_library(tmp_path, use_fakes):
    result = render_probe(tmp_path / "ws", use_fakes=use_fakes)
    assert result["heavy"] == []
    assert result["same_backends"] is True  # one backend per process (st.cache_resource or the fake)
    for name, r in result["pages"].items():
        assert r["exceptions"] == [], name
        assert r["errors"] == [], name


def test_datasets_build_job_review_and_save(fakes):
    at = page("datasets")
    assert_clean(at)
    assert [m.value for m in at.metric][:3] == ["3", "2 / 1", "0"]
    assert any("A larger model writes" in i.value for i in at.info)  # the writer hint
    at.number_input(key="dataset_n_eval").set_value(20)
    at.button(key="FormSubmitter:dataset_build_form-Build in the background").click().run()
    assert_clean(at)
    backend = fakes["datasets"]
    assert backend.started == [{"n_eval": 20, "n_train": 200, "replace": False, "check_train": False}]
    assert "ETA" in at.get("progress")[0].proto.text
    at.button(key="dataset_cancel").click().run()
    assert backend.cancelled == ["dataset-1"]
    at.button(key="dataset_resume").click().run()
    assert_clean(at)
    table = at.dataframe[0].value  # the review table (data_editor)
    assert list(table["id"]) == ["e-1", "e-2", "e-3"] and list(table["keep"]) == [True] * 3
    at.button(key="dataset_save_eval").click().run()
    assert_clean(at)
    assert [r["id"] for r in backend.saved[0][1]] == ["e-1", "e-2", "e-3"]
    assert backend.saved[0][1][0]["key_facts"] == ["fact 1"]


def test_datasets_page_shows_a_row_beside_its_passage(fakes):
    at = page("datasets")
    assert_clean(at)
    at.selectbox(key="dataset_passage_sample").set_value("e-2").run()
    assert_clean(at)
    shown = [t.value for t in at.text]
    # plain text, never HTML
    assert shown == ["Intro. The guide says ⟦fact 2⟧ for this case. <b>Other</b> text."]
    captions = " ".join(c.value for c in at.caption)
    assert "guide\\.md § Guide \\> Setup" in captions and "Key facts\\: fact 2" in captions
    fakes["datasets"].sets["eval"][1]["key_facts"] = []  # a row no passage holds
    at.run()
    assert "No indexed passage of its source holds its key facts" in " ".join(c.value for c in at.caption)
