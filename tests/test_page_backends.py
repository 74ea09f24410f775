"""The real page backends (``app.views.backends``) on a temporary workspace, without any model:
indexing with the fake embedder through the real wiring, training and export jobs through the real
job files and registry, the export worker failing with the next step when nothing is set up, and
the assistant rebuilt only when the index or the adapter in use changes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from adapters import jobs, registry
from app.settings import Settings
from app.views.backends.ask import RealAskBackend
from app.views.backends.export import RealExportBackend
from app.views.backends.indexing import RealIndexBackend
from app.views.backends.training import RealTrainingBackend
from app.wiring.collections import BUNDLE_DIR
from app.wiring.index import clear_index_cache
from domain.atomic import read_json
from domain.corrections import CorrectionStore
from domain.errors import ConfigError, ExportError, ModelMissingError, RegistryError, TrainingError
from tests.fakes_index import FakeEmbedder
from tests.test_registry import _make

DEFAULT_ADAPTER_DIR = BUNDLE_DIR / "default_adapter"


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    clear_index_cache()
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path / "ws"))  # for any worker process, too
    s = Settings(workspace=tmp_path / "ws")
    s.ws.ensure()
    yield s
    clear_index_cache()


def _docs(root: Path) -> Path:
    (root / "hr").mkdir(parents=True)
    (root / "hr" / "leave.md").write_text(
        "# Leave\n\nEmployees get fifteen days of annual leave.\n", encoding="utf-8"
    )
    (root / "pay.txt").write_text("Pay\n\nSalaries are paid on the last working day.\n", encoding="utf-8")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n")
    return root


def test_index_backend_syncs_lists_previews_searches_and_deletes(settings, tmp_path):
    emb = FakeEmbedder()
    backend = RealIndexBackend(settings, embedder=lambda: emb)
    assert (
        backend.index_names() == ["sample"]  # the bundled collection, not indexed in this workspace
        and backend.summary("default") is None
        and backend.documents("default") == []
    )
    seen = []
    report = backend.sync(
        _docs(tmp_path / "docs"), name="default", on_progress=lambda _d, _t, m="": seen.append(m)
    )
    assert (report["files_indexed"], report["files_new"], report["changed"]) == (2, 2, True)
    assert seen[-1] == "saved"
    assert backend.index_names() == ["sample", "default"]  # the bundled collection is always listed
    summary = backend.summary("default")
    assert (summary["n_files"], summary["n_skipped"], summary["embedder"]["name"]) == (2, 1, "fake-ngram")
    docs = backend.documents("default")
    assert [(d["path"], d["status"], d["lang"]) for d in docs] == [
        ("hr/leave.md", "indexed", "en"),
        ("pay.txt", "indexed", "en"),
        ("logo.png", "skipped", ""),
    ]
    assert docs[2]["reason"].startswith("unsupported")
    chunks = backend.chunks("default", "hr/leave.md")
    assert len(chunks) == docs[0]["chunks"] and "fifteen days" in chunks[0].text
    hits = backend.search("default", "annual leave days", 2)
    assert hits[0].chunk.path == "hr/leave.md"
    again = backend.sync(tmp_path / "docs", name="default")
    assert (again["changed"], again["chunks_embedded"]) == (False, 0)
    backend.delete("default")
    assert not settings.ws.collection("default").index.exists()
    with pytest.raises(ConfigError, match="collection 'default' has no index"):
        backend.delete("default")
    (tmp_path / "docs" / "hr" / "leave.md").unlink()  # rebuilt from scratch: gen-000001 again, other chunks
    backend.sync(tmp_path / "docs", name="default")
    assert [d["path"] for d in backend.documents("default") if d["status"] == "indexed"] == ["pay.txt"]


def test_training_backend_dataset_counts_base_rows_and_corrections(settings):
    store = CorrectionStore(settings.ws.collection("sample").feedback_db)
    store.add(question="年假有几天？", mode="rag", corrected="结论：十五天。", original="x", passages=[])
    store.add(
        question="How many leave days?", mode="rag", corrected="Conclusion: 15.", original="x", passages=[]
    )
    store.add(
        question="Who approves travel?",
        mode="tuned",
        corrected="Conclusion: a manager.",
        original="x",
        passages=[],
    )
    data = RealTrainingBackend(settings).dataset()
    assert data["corrections"] == 3
    assert data["by_lang"]["en"]["corrections"] == 2 and data["by_lang"]["zh"]["corrections"] == 1
    assert data["base_rows"] == sum(v["base"] for v in data["by_lang"].values()) > 0
    assert data["sources"][-1] == str(settings.ws.collection("sample").feedback_db)


def test_training_backend_params_jobs_versions_activate_rollback(settings):
    backend = RealTrainingBackend(settings)
    params = backend.default_params()
    assert (params["lr"], params["epochs"], params["r"]) == (2e-4, 3, 16)
    with pytest.raises(ModelMissingError, match="hybrid setup"):
        backend.start(params, from_corrections=False)
    job = jobs.new_job(settings.ws.jobs, "train", {"params": params})
    assert [j["id"] for j in backend.jobs()] == [job.name]
    assert backend.status(job.name)["status"] == "queued"
    assert backend.cancel(job.name) is False
    with pytest.raises(ConfigError, match="job '../../etc' is not allowed"):
        backend.status("../../etc")
    with pytest.raises(TrainingError, match="no job"):
        backend.status("train-19700101-000000-0000")
    root = settings.ws.collection("sample").adapters
    v1, v2 = _make(root), _make(root)
    backend.activate(v1)
    backend.activate(v2)
    assert [(v["version"], v["active"]) for v in backend.versions()] == [("v1", False), ("v2", True)]
    assert backend.rollback()["version"] == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        backend.rollback()


def test_export_backend_lists_reports_and_its_worker_fails_with_the_next_step(settings):
    backend = RealExportBackend(settings)
    assert list(backend.quants()) == ["q8_0", "q4_k_m", "f16"]
    expected = "default" if registry.is_complete(DEFAULT_ADAPTER_DIR) else "base"
    assert backend.source_label() == expected
    with pytest.raises(ExportError, match="not one of"):
        backend.start("q2_k")
    out = settings.ws.exports / "v1"
    out.mkdir(parents=True)
    (out / "export-q8_0.json").write_text(json.dumps({"quant": "q8_0", "path": str(out / "model-q8_0.gguf")}))
    (out / "export-bad.json").write_text("{not json")
    assert [r["quant"] for r in backend.reports()] == ["q8_0"]

    job_id = backend.start("q8_0")
    deadline = time.monotonic() + 120
    status = backend.status(job_id)
    while status["status"] not in jobs.FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        status = backend.status(job_id)
    assert status["status"] == "failed"
    assert "hybrid setup" in status["error"]
    assert [j["id"] for j in backend.jobs()] == [job_id]
    assert read_json(settings.ws.jobs / job_id / "spec.json")["workspace"] == str(settings.ws.root)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie (not our child) counts as gone
        return fh.read().split()[2] == "Z"


def test_export_cancel_stops_the_job_and_its_children_and_records_cancelled(settings):
    backend = RealExportBackend(settings)
    job_dir = jobs.new_job(settings.ws.jobs, "export", {"quant": "q8_0"})
    pid = jobs.launch(job_dir, "tests.sleepy_job")
    deadline = time.monotonic() + 60
    while "child_pid" not in jobs.read_status(job_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = jobs.read_status(job_dir)["child_pid"]
    assert backend.cancel(job_dir.name) is True
    status = backend.status(job_dir.name)
    assert (status["status"], status["error"]) == ("cancelled", "cancelled from the Deploy page")
    assert _gone(pid)
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child)
    assert backend.cancel(job_dir.name) is False


def test_ask_backend_status_and_rebuild_only_when_the_world_changes(settings, monkeypatch):
    built = []

    def fake_build(s):
        built.append(s)
        return object()

    monkeypatch.setattr("app.wiring.answer.build_assistant", fake_build)
    backend = RealAskBackend(settings)
    facts = backend.status()
    assert (facts["collection"], facts["index"]) == ("sample", "not built — see the Index page")
    assert facts["backend"] == "llama_cpp"
    first = backend.assistant()
    assert backend.assistant() is first and len(built) == 1
    index_dir = settings.ws.collection("sample").index
    index_dir.mkdir(parents=True)
    (index_dir / "CURRENT").write_text("gen-000002\n")
    assert backend.assistant() is not first and len(built) == 2
    root = settings.ws.collection("sample").adapters
    registry.activate(root, _make(root))
    backend.assistant()
    assert len(built) == 3
    assert backend.status()["adapter"] == "v1"
