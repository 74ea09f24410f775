"""The corpus validator (``domain.corpus_check``), the `hybrid corpus check` command and the
PDF/DOCX build script, on tiny temporary corpora with planted errors and on the bundled corpus."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.wiring.index import load_text
from domain.corpus_check import check_corpus, cosine, load_plain_text, normalize, trigram_vector

REPO = Path(__file__).resolve().parents[1]
GOOD = "Conclusion: The LT-9 logs every 7 minutes.\nBasis: [products/lt-9.md]\nNote: Ask the Lighthouse Desk."


def _write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _train(
    i: int, question: str, answer: str = GOOD, source: str | None = "products/lt-9.md"
) -> dict[str, Any]:
    return {"id": f"t-{i}", "lang": "en", "question": question, "source": source, "answer": answer}


def _eval(i: int, question: str, facts: list[str], **kw: Any) -> dict[str, Any]:
    row = {
        "id": f"e-{i}",
        "lang": "en",
        "kind": "fact",
        "question": question,
        "reference": GOOD,
        "key_facts": facts,
        "source": "products/lt-9.md",
    }
    row.update(kw)
    return row


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs" / "products"
    docs.mkdir(parents=True)
    (docs / "lt-9.md").write_text("# LT-9\n\nThe LT-9 logs every\n7 minutes.\n", encoding="utf-8")
    (docs / "page.html").write_text("<html><body><p>Price: <b>USD 5</b></p></body></html>", encoding="utf-8")
    # the three-line style of the bundled sample, read from the folder like the sample's own
    (tmp_path / "style.json").write_bytes((REPO / "corpus" / "style.json").read_bytes())
    _write_jsonl(tmp_path / "train_en.jsonl", [_train(1, "How often does the LT-9 log?")])
    _write_jsonl(
        tmp_path / "eval_en.jsonl", [_eval(1, "What is the LT-9 interval in minutes?", ["7 minutes"])]
    )
    return tmp_path


def _non_count(report: dict[str, Any]) -> list[str]:
    return [e for e in report["errors"] if not e.startswith("count:")]


def test_clean_tiny_corpus_has_only_count_shortfalls(tiny_corpus: Path) -> None:
    report = check_corpus(tiny_corpus)
    assert _non_count(report) == []
    assert report["docs"] == {".html": 1, ".md": 1}
    assert report["train_rows"] == 1 and report["eval_rows"] == 1
    assert report["eval_kinds"]["fact"] == 1
    assert report["langs"] == {"en": {"train": 1, "eval": 1}}
    assert report["near_duplicates"]["threshold"] == 0.85
    assert "count: train_rows = 1, need >= 400" in report["errors"]
    assert report["ok"] is False


def test_planted_errors_are_each_reported(tiny_corpus: Path) -> None:
    bad_style = "Conclusion: **Seven** minutes.\nBasis: somewhere\n"
    _write_jsonl(
        tiny_corpus / "train_en.jsonl",
        [
            _train(1, "How often does the LT-9 log?"),
            "{not json",
            _train(2, "Is it blue?", answer=bad_style),
            _train(1, "Duplicate id row?"),
            _train(3, "Where is it?", source="products/missing.md"),
        ],
    )
    _write_jsonl(
        tiny_corpus / "eval_en.jsonl",
        [
            _eval(1, "How often does the LT-9 log?", ["7 minutes"]),  # same as a train question
            _eval(2, "What does it cost per unit?", ["USD 9"], reference=GOOD + " USD 9"),
            _eval(3, "General question?", ["Paris"], kind="out_of_domain", source="products/lt-9.md"),
            _eval(4, "Two documents?", ["7 minutes"], kind="multi_hop"),
        ],
    )
    errors = check_corpus(tiny_corpus)["errors"]
    expected = [
        "train_en.jsonl:2: malformed JSON (Expecting property name enclosed in double quotes)",
        "train_en.jsonl:3: answer is not in house style (format_score < 1.0)",
        "train_en.jsonl:4: duplicate id 't-1' (first in train_en.jsonl:1)",
        "train_en.jsonl:5: source 'products/missing.md' not found under docs/",
        "eval_en.jsonl:2: key fact 'USD 9' not found in products/lt-9.md",
        "eval_en.jsonl:3: out_of_domain rows must have source null",
        "eval_en.jsonl:3: key fact 'Paris' not in the reference",
        "eval_en.jsonl:3: key fact 'Paris' not found in products/lt-9.md",
        "eval_en.jsonl:4: multi_hop rows need a list of at least 2 sources",
        "near-duplicate: eval e-1 ~ train t-1 (cosine 1.0)",
    ]
    assert _non_count({"errors": errors}) == expected


def test_facts_match_across_line_breaks_and_cjk_spacing() -> None:
    assert normalize("The LT-9 logs every\n7  minutes.") == "The LT-9 logs every 7 minutes."
    assert normalize("保修 36\n个月") == "保修36个月"
    assert normalize("15 天") == normalize("15天")


def test_cosine_of_trigram_counts_worked_example() -> None:
    # "abcd" -> {abc, bcd}; "abce" -> {abc, bce}: one shared 3-gram of two each -> 1/2.
    assert cosine(trigram_vector("abcd"), trigram_vector("abce")) == pytest.approx(0.5)
    assert cosine(trigram_vector("Same  Words"), trigram_vector("same words")) == pytest.approx(1.0)


def test_default_loader_strips_html_and_refuses_pdf(tiny_corpus: Path) -> None:
    text = load_plain_text(tiny_corpus / "docs" / "products" / "page.html")
    assert normalize(text) == "Price: USD 5"
    fake = tiny_corpus / "docs" / "x.pdf"
    fake.write_bytes(b"%PDF-1.4")
    report = check_corpus(tiny_corpus)
    assert any(e.startswith("docs/x.pdf: cannot load (DataError:") for e in report["errors"])


def test_cli_writes_json_and_exits_1_when_not_ok(tiny_corpus: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "report.json"
    assert main(["corpus", "check", str(tiny_corpus), "--json", str(out)]) == 1
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["train_rows"] == 1 and report["ok"] is False
    assert "NOT OK" in capsys.readouterr().out


def _load_build_docs() -> Any:
    spec = importlib.util.spec_from_file_location("build_docs", REPO / "corpus" / "build_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_docs"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_build_docs_renders_pdf_and_docx_deterministically(tmp_path: Path) -> None:
    build_docs = _load_build_docs()
    src = tmp_path / "src"
    src.mkdir()
    (src / "guide.pdf.md").write_text(
        "<!-- out: support/ -->\n# Guide\n\nCode E-417 lasts 26 months.\n\n| A | B |\n|---|---|\n| x | 7 |\n",
        encoding="utf-8",
    )
    (src / "zh.docx.md").write_text(
        "<!-- out: service/rma.docx -->\n# 返修单\n\n- 保修 36 个月\n\n| 项目 | 值 |\n|---|---|\n| 费用 | ¥260 |\n",
        encoding="utf-8",
    )
    written = build_docs.build(src, tmp_path / "docs")
    assert [p.relative_to(tmp_path / "docs").as_posix() for p in written] == [
        "support/guide.pdf",
        "service/rma.docx",
    ]
    first = [p.read_bytes() for p in written]
    build_docs.build(src, tmp_path / "docs")
    assert [p.read_bytes() for p in written] == first
    assert "E-417 lasts 26 months" in normalize(load_text(written[0]))
    docx_text = normalize(load_text(written[1]))
    assert "保修36个月" in docx_text and "费用| ¥260" in docx_text  # table cells joined by " | "


def test_bundled_corpus_passes_with_the_index_loaders() -> None:
    """The whole bundled corpus validates, reading every document with the indexer's own loaders
    (so every document parses and every key fact is findable in the extracted text)."""
    report = check_corpus(REPO / "corpus", load_text)
    assert report["errors"] == []
    assert report["ok"] is True
    assert report["train_rows"] >= 400 and report["eval_rows"] >= 120
    assert sum(report["docs"].values()) >= 40 and report["chars"] >= 60_000
    assert all(report["docs"][ext] >= 3 for ext in (".txt", ".html", ".pdf", ".docx"))
    kinds = report["eval_kinds"]
    assert kinds["out_of_domain"] >= 15 and kinds["cross_lingual"] >= 15 and kinds["multi_hop"] >= 10
