"""`hybrid ask`, `compare`, `correct` and `eval` (modes, --fit-router) through the CLI, with the
assistant built from fakes in place of ``app.wiring.answer.build_assistant``."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from domain.corrections import CorrectionStore
from domain.pipeline import Assistant, AssistantOptions
from domain.router import AdapterState, RouterThresholds
from tests.fakes_answer import FakeGenerator, FakeQuestionEmbedder, FakeRetriever
from tests.test_pipeline import RAG_TEXT

FORMAT = 1.0  # the labels are written by the pipeline, so even the fake base model is in format

Q = "How many days of annual leave do I get?"


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_WORKSPACE", str(tmp_path))
    built = []

    def fake_build(settings, *, index=None, adapter_dir=None, use_corrections=True):  # noqa: ARG001
        from app.wiring.answer import feedback_db, router_path
        from app.wiring.collections import get_collection

        a = Assistant(
            retriever=FakeRetriever(),
            generator=FakeGenerator(knowledge={"capital of France": "Paris is the capital of France."}),
            embed_fn=FakeQuestionEmbedder() if use_corrections else None,
            corrections=CorrectionStore(feedback_db(settings)) if use_corrections else None,
            options=AssistantOptions(
                top_k=settings.index.top_k, low_score_warning=0.6, style=get_collection(settings).style()
            ),
            thresholds=RouterThresholds.load(router_path(settings)),
            adapter=AdapterState(active=True, label="v3", gate_passed=True),
        )
        built.append(a)
        return a

    monkeypatch.setattr("app.wiring.answer.build_assistant", fake_build)
    return tmp_path, built


def test_ask_streams_then_details_and_saves_the_answer(ws, capsys) -> None:
    root, _ = ws
    assert main(["ask", Q, "--mode", "tuned_rag"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "Conclusion: Annual leave is 15 working days per year.\nBasis: [hr/annual-leave.md]\n"
    )
    assert (
        "passages:\n  [1] hr/annual-leave.md | Annual leave > Entitlement (score 0.333, dense 0.67, BM25 3.0)"
        in out
    )
    assert 'citations:\n  "Conclusion: Annual leave is 15 working days per year." → hr/annual-leave.md' in out
    assert "mode: tuned_rag — Tuned + RAG: chosen by you; best passage 0.67 is below 0.82" in out
    last = json.loads((root / "last_answer.json").read_text())
    assert (last["question"], last["mode"]) == (Q, "tuned_rag")
    assert (root / "answers" / f"{last['answer_id']}.json").is_file()


def test_ask_json(ws, capsys) -> None:  # noqa: ARG001
    assert main(["ask", Q, "--mode", "rag", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == RAG_TEXT
    assert data["mode"] == "rag" and data["format"] == pytest.approx(FORMAT)
    assert [p["chunk"]["path"] for p in data["passages"]] == ["hr/annual-leave.md", "hr/sick-leave.md"]


def test_correct_the_last_answer_then_ask_again(ws, capsys) -> None:
    root, _ = ws
    main(["ask", Q, "--mode", "rag"])
    capsys.readouterr()
    assert (
        main(["correct", "--corrected", "Conclusion: 15 days.\nBasis: [hr/annual-leave.md]\nNote: Ask HR."])
        == 0
    )
    assert "stored correction #1" in capsys.readouterr().out
    rec = CorrectionStore(root / "collections" / "sample" / "feedback.sqlite").get(1)
    assert rec is not None
    assert (rec.question, rec.mode, rec.original) == (
        Q,
        "rag",
        RAG_TEXT,
    )
    assert main(["ask", Q.lower(), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["from_correction"] is True and data["text"].startswith("Conclusion: 15 days.")


def test_correct_by_question_or_id_and_errors(ws, capsys) -> None:
    root, _ = ws
    assert main(["correct", "--corrected", "x"]) == 2
    assert "there is no answer to correct yet" in capsys.readouterr().err
    assert (
        main(
            [
                "correct",
                "--question",
                "Who signs travel?",
                "--mode",
                "rag",
                "--corrected",
                "The manager.",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"id": 1, "question": "Who signs travel?", "mode": "rag"}
    assert main(["correct", "--answer-id", "nope", "--corrected", "x"]) == 2
    assert "no saved answer 'nope'" in capsys.readouterr().err
    main(["ask", Q, "--mode", "prompt", "--json"])
    answer_id = json.loads(capsys.readouterr().out)["answer_id"]
    assert main(["correct", "--answer-id", answer_id, "--corrected", "Fifteen days."]) == 0
    assert CorrectionStore(root / "collections" / "sample" / "feedback.sqlite").count() == 2


def test_compare_one_retrieval_four_answers(ws, capsys) -> None:
    _, built = ws
    assert main(["compare", Q]) == 0
    out = capsys.readouterr().out
    assert built[0].retriever.queries == [(Q, 5)]
    assert out.splitlines()[0] == "model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (not set up)"
    assert (
        out.splitlines()[1]
        == "router picks tuned: Tuned (adapter): best passage 0.67 is below 0.82; adapter v3 active"
    )
    for mode in ("prompt", "rag", "tuned", "tuned_rag"):
        assert f"\n── {mode}" in out
    assert out.count("passages:") == 1
    assert main(["compare", Q, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["mode"] for a in data["answers"]] == ["prompt", "rag", "tuned", "tuned_rag"]
    assert data["answers"][1]["passages"] == data["answers"][3]["passages"]


EVAL_ROWS = [
    {
        "id": "e1",
        "lang": "en",
        "kind": "fact",
        "question": Q,
        "key_facts": ["15 working days"],
        "reference": "Conclusion: 15 working days.\nBasis: [hr/annual-leave.md]\nNote: x.",
        "source": "hr/annual-leave.md",
    },
    {
        "id": "e2",
        "lang": "en",
        "kind": "out_of_domain",
        "question": "What is the capital of France?",
        "key_facts": ["Paris"],
        "reference": "Conclusion: Paris.",
        "source": None,
    },
]


def test_eval_writes_reports_and_fits_the_router(ws, capsys, tmp_path) -> None:
    root, built = ws
    root = root / "collections" / "sample"  # the collection's router and reports
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    assert main(["eval", "--eval-set", str(eval_file), "--modes", "rag,tuned_rag", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_rows"] == 2 and list(report["modes"]) == ["rag", "tuned_rag"]
    assert built[-1].corrections is None  # correction memory is off while evaluating
    assert main(["eval", "--eval-set", str(eval_file), "--fit-router"]) == 0
    out = capsys.readouterr().out
    assert "# Answer evaluation (2 rows)" in out and "Router refitted (in-sample)" in out
    saved = RouterThresholds.load(root / "router.json")
    assert saved != RouterThresholds()  # e1 wants retrieval at dense 0.67, below the default 0.82
    reports = sorted((root / "evals").glob("modes-*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert len(reports) >= 1
    data = json.loads(reports[-1].read_text())
    assert data["router"]["fitted"]["agreement"] == 1.0
    assert set(data["modes"]) == {"prompt", "rag", "tuned", "tuned_rag", "auto"}
    assert (root / "evals" / (reports[-1].stem + ".rows.jsonl")).is_file()


def test_eval_k_sets_the_passages_the_answers_read(ws, capsys, tmp_path) -> None:
    _, built = ws
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    assert main(["eval", "--eval-set", str(eval_file), "--modes", "rag", "--json", "-"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["k"] == built[-1].options.top_k == 5  # the setting index.top_k
    assert main(["eval", "--eval-set", str(eval_file), "--modes", "rag", "--k", "2", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["k"] == built[-1].options.top_k == 2
    assert {k for _, k in built[-1].retriever.queries} == {2}  # every answer searched for 2 passages


def test_fit_router_fits_a_collection_without_an_adapter_and_refuses_an_empty_fit(
    ws, capsys, tmp_path, monkeypatch
) -> None:
    import app.wiring.answer as answer_wiring

    root, _ = ws
    root = root / "collections" / "sample"
    with_adapter = answer_wiring.build_assistant

    def no_adapter(settings, **kw):  # noqa: ANN001, ANN003
        a = with_adapter(settings, **kw)
        a.adapter = AdapterState()  # a new collection: nothing trained yet
        return a

    monkeypatch.setattr("app.wiring.answer.build_assistant", no_adapter)
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    (root / "router.json").unlink(missing_ok=True)
    assert main(["eval", "--eval-set", str(eval_file), "--fit-router"]) == 0
    out = capsys.readouterr().out
    assert "tuned not evaluated: no adapter loaded" in out
    assert "Router refitted (in-sample) on 2 rows" in out
    assert RouterThresholds.load(root / "router.json") != RouterThresholds()
    # a saved run without the prompt mode cannot teach the router anything: nothing is written
    (root / "router.json").unlink()
    assert main(["eval", "--eval-set", str(eval_file), "--modes", "rag"]) == 0
    run = max((root / "evals").glob("modes-*.rows.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["eval", "--refit", str(run)]) == 0
    assert (
        "Router not fitted: no row was scored in every mode the router picks between"
        in capsys.readouterr().out
    )
    assert not (root / "router.json").exists()


def test_refit_fits_the_router_again_from_a_saved_run_without_models(ws, capsys, tmp_path) -> None:
    root, built = ws
    root = root / "collections" / "sample"  # the collection's router and reports
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in EVAL_ROWS))
    assert main(["eval", "--eval-set", str(eval_file)]) == 0
    run = max((root / "evals").glob("modes-*.rows.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    (root / "router.json").unlink(missing_ok=True)
    n_built = len(built)
    capsys.readouterr()
    assert main(["eval", "--refit", str(run)]) == 0
    assert len(built) == n_built  # no assistant (and no model) was built
    assert "Router refitted (in-sample)" in capsys.readouterr().out
    assert RouterThresholds.load(root / "router.json") != RouterThresholds()
    assert main(["eval", "--refit", str(tmp_path / "missing.rows.jsonl")]) == 2
    assert "cannot read the saved run" in capsys.readouterr().err
    # a row whose router features were edited away: one line naming the row, nothing written
    rows = [json.loads(line) for line in run.read_text().splitlines()]
    del rows[1]["features"]["dense_top"]
    broken = run.with_name("modes-broken.rows.jsonl")
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run.with_name(run.name.removesuffix(".rows.jsonl") + ".json").replace(
        broken.with_name("modes-broken.json")
    )
    before = (root / "router.json").read_text()
    assert main(["eval", "--refit", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "row 2 of the run has no usable router features" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert (root / "router.json").read_text() == before


def test_eval_rejects_unknown_modes(ws, capsys, tmp_path) -> None:  # noqa: ARG001
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps(EVAL_ROWS[0]) + "\n")
    assert main(["eval", "--eval-set", str(eval_file), "--modes", "rag,fast"]) == 2
    assert "unknown modes ['fast']" in capsys.readouterr().err


@pytest.mark.usefixtures("ws")
def test_a_full_disk_is_one_line_and_exit_2(capsys, monkeypatch) -> None:
    import errno

    def full(*_a, **_kw):
        raise OSError(errno.ENOSPC, "No space left on device", "/ws/answers/a1.json")

    monkeypatch.setattr("app.wiring.answer.build_assistant", full)
    assert main(["ask", Q, "--mode", "prompt"]) == 2
    err = capsys.readouterr().err
    assert err == "error: the disk is full writing /ws/answers/a1.json — free some space and re-run\n"

    def other(*_a, **_kw):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("app.wiring.answer.build_assistant", other)
    with pytest.raises(PermissionError):  # not a full disk: not hidden behind that message
        main(["ask", Q, "--mode", "prompt"])
