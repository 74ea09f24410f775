"""`hybrid index`, `hybrid search` and `hybrid eval --retrieval` end to end through the CLI, with
the tiny locally-built sentence-transformers model as the embedder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.cli import main
from tests.test_index_loaders import make_docx, make_pdf


def build_bad_folder(root: Path, outside: Path) -> Path:
    root.mkdir(parents=True)
    (root / "empty.md").write_bytes(b"")
    (root / "photo.txt").write_bytes(bytes(range(256)) * 40)  # binary renamed .txt
    pdf = make_pdf(root / "broken.pdf", ["This PDF was cut short."])
    pdf.write_bytes(pdf.read_bytes()[:300])
    (root / "gbk.txt").write_bytes("出差费用需要在十天内报销。\n超过期限需要主管批准。\n".encode("gbk"))
    with (root / "huge.txt").open("wb") as fh:
        fh.write(b"a" * (30 * 1024 * 1024))
    outside.write_text("a secret outside the folder", encoding="utf-8")
    os.symlink(outside, root / "escape.md")
    (root / "年假 政策 2024.md").write_text(
        "# 年假政策\n\n员工每年有十五天年假。\n\n## Carry over\n\nFive unused days carry over.\n",
        encoding="utf-8",
    )
    make_pdf(root / "guide.pdf", ["Page one: the travel guide.", "Page two: hotel caps."], "Guide")
    make_docx(root / "expenses.docx")
    (root / "portal.html").write_text(
        "<html><body><h1>Portal</h1><p>Log in with your badge.</p></body></html>", encoding="utf-8"
    )
    return root


def test_index_bad_folder_reports_each_file_and_exits_0(cli_env: Path) -> None:
    docs = build_bad_folder(cli_env / "docs", cli_env / "outside.md")
    out = cli_env / "report.json"
    assert main(["index", str(docs), "--name", "bad", "--json", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [(s["path"], s["reason"]) for s in report["skipped"]] == [
        ("broken.pdf", "unreadable"),
        ("empty.md", "empty"),
        ("escape.md", "outside_folder"),
        ("huge.txt", "too_large"),
        ("photo.txt", "binary"),
    ]
    assert (report["files_indexed"], report["files_new"], report["changed"]) == (5, 5, True)
    assert report["chunks_embedded"] == report["chunks_total"] > 0

    again = cli_env / "again.json"
    assert main(["index", str(docs), "--name", "bad", "--json", str(again)]) == 0
    second = json.loads(again.read_text(encoding="utf-8"))
    assert (second["changed"], second["chunks_embedded"], second["files_unchanged"]) == (False, 0, 5)

    hits_file = cli_env / "hits.json"
    assert main(["search", "出差费用报销", "--index", "bad", "--k", "3", "--json", str(hits_file)]) == 0
    hits = json.loads(hits_file.read_text(encoding="utf-8"))["hits"]
    assert hits[0]["path"] == "gbk.txt"
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert all(h["dense_score"] is not None and h["bm25_score"] is not None for h in hits)
    paths = {h["path"] for h in hits}
    assert paths <= {"gbk.txt", "年假 政策 2024.md", "guide.pdf", "expenses.docx", "portal.html"}


def test_eval_retrieval_reports_three_methods(cli_env: Path) -> None:
    docs = build_bad_folder(cli_env / "docs", cli_env / "outside.md")
    assert main(["index", str(docs), "--name", "default", "--json", str(cli_env / "r.json")]) == 0
    rows = [
        {"id": "1", "lang": "zh", "kind": "fact", "question": "出差费用多久内报销？", "source": "gbk.txt"},
        {
            "id": "2",
            "lang": "en",
            "kind": "fact",
            "question": "How do I log in to the portal?",
            "source": "portal.html",
        },
        {
            "id": "3",
            "lang": "en",
            "kind": "multi_hop",
            "question": "Hotel caps and badge login?",
            "source": ["guide.pdf", "portal.html"],
        },
        {"id": "4", "lang": "en", "kind": "out_of_domain", "question": "Who won the cup?", "source": None},
    ]
    eval_file = cli_env / "eval.jsonl"
    eval_file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = cli_env / "eval.json"
    assert (
        main(
            [
                "eval",
                "--retrieval",
                "--eval-set",
                str(eval_file),
                "--collection",
                "default",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    assert (report["n_rows"], report["n_scored"], report["excluded"]) == (4, 3, {"out_of_domain": 1})
    assert set(report["retrieval"]) == {"dense", "bm25", "hybrid"}
    for method in ("dense", "bm25", "hybrid"):
        m = report["retrieval"][method]
        assert set(m) >= {"recall@5", "mrr", "n", "by_kind", "by_lang"}
        assert m["n"] == 3 and 0.0 <= m["mrr"] <= m["recall@5"] <= 1.0
        assert set(m["by_kind"]) == {"fact", "multi_hop"}
        assert "source_share@5" in m["by_kind"]["multi_hop"]
    assert report["retrieval"]["bm25"]["by_kind"]["fact"]["recall@5"] == 1.0
    assert report["missing_sources"] == []


@pytest.mark.usefixtures("cli_env")
def test_search_without_index_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "anything", "--index", "nope"]) == 2
    err = capsys.readouterr().err
    assert "error: collection 'nope' has no index yet" in err
    assert "hybrid index PATH --collection nope" in err


def test_answers_may_get_two_passages_of_a_document_while_search_lists_documents(cli_env: Path) -> None:
    from app.settings import load_settings
    from app.wiring.index import build_retriever

    docs = cli_env / "docs"
    docs.mkdir()
    long_doc = "\n\n".join(
        f"## Section {i}\n\nLeave rule {i}: annual leave carries over for {i} days when approved."
        for i in range(12)
    )
    (docs / "leave.md").write_text("# Leave\n\n" + long_doc + "\n", encoding="utf-8")
    (docs / "travel.md").write_text("# Travel\n\nHotel caps apply to travel.\n", encoding="utf-8")
    assert main(["index", str(docs)]) == 0
    settings = load_settings()
    search = build_retriever(settings)
    answering = build_retriever(settings, per_doc=settings.answer.passages_per_doc)
    assert (search.fusion.max_per_doc, answering.fusion.max_per_doc) == (1, 2)
    listed = [h.chunk.path for h in search.search("annual leave carries over", k=2)]
    packed = [h.chunk.path for h in answering.search("annual leave carries over", k=2)]
    assert listed == ["leave.md", "travel.md"]  # one passage per document while others are left
    assert packed == ["leave.md", "leave.md"]
