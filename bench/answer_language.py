"""Answer lines in the question's language, before and after ``answer.translate_answers``, read off
one `hybrid eval` run with translation on: the model's own line (``translated_from``) is what the
run would have shown without it (the later lines continue the model's own line either way, and
decoding is greedy), so each row is scored both ways on the same answers.

Per mode: rows, answer lines translated, answer lines in the question's language (not prose in
the other, ``domain.answer_language.needs_translation``), answer-line fact recall and format
before and after, and every translated line with its original for reading by hand.

    python bench/answer_language.py COLLECTION ROWS.jsonl EVAL_SET.jsonl OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import load_settings  # noqa: E402
from app.wiring.collections import get_collection, with_collection  # noqa: E402
from domain.answer_format import _labelled  # noqa: E402
from domain.answer_language import needs_translation  # noqa: E402
from domain.metrics import fact_recall  # noqa: E402
from domain.style import StyleProfile, answer_line, format_score  # noqa: E402


def before(text: str, original: str | None, lang: str, style: StyleProfile) -> str:
    """``text`` with its answer line as the model wrote it."""
    if not original:
        return text
    label = style.answer_label(lang)
    lines = text.split("\n")
    for i, ln in enumerate(lines):
        if ln.startswith(label):
            lines[i] = _labelled(label, original)
            break
    return "\n".join(lines)


def mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def main() -> None:
    name, rows_file, eval_file, out = sys.argv[1:5]
    style = get_collection(with_collection(load_settings(), name)).style()
    eval_rows = [
        json.loads(ln) for ln in Path(eval_file).read_text(encoding="utf-8").splitlines() if ln.strip()
    ]
    facts = {r["id"]: r.get("key_facts") or [] for r in eval_rows}
    rows = [json.loads(ln) for ln in Path(rows_file).read_text(encoding="utf-8").splitlines() if ln.strip()]
    report: dict[str, Any] = {"collection": name, "rows_file": rows_file, "modes": {}}
    for mode in sorted({m for r in rows for m in r["results"] if m != "auto"}):
        acc: dict[str, list[float]] = {
            k: [] for k in ("fact_before", "fact_after", "fmt_before", "fmt_after")
        }
        own_before = own_after = translated = 0
        lines = []
        for r in rows:
            res = r["results"].get(mode)
            if not res:
                continue
            lang = r["lang"]
            old = before(res["answer"], res.get("translated_from"), lang, style)
            for tag, text in (("before", old), ("after", res["answer"])):
                acc[f"fact_{tag}"].append(fact_recall(answer_line(text, lang, style), facts.get(r["id"], [])))
                acc[f"fmt_{tag}"].append(format_score(text, lang, style))
            own_before += not needs_translation(answer_line(old, lang, style), lang)
            own_after += not needs_translation(answer_line(res["answer"], lang, style), lang)
            if res.get("translated_from"):
                translated += 1
                lines.append(
                    {
                        "id": r["id"],
                        "question": r["question"],
                        "model": res["translated_from"],
                        "shown": answer_line(res["answer"], lang, style),
                    }
                )
        n = len(acc["fact_before"])
        report["modes"][mode] = {
            "rows": n,
            "translated": translated,
            "in_question_language_before": own_before,
            "in_question_language_after": own_after,
            **{k: mean(v) for k, v in acc.items()},
            "translated_lines": lines,
        }
        m = report["modes"][mode]
        print(
            f"{name} {mode:9} n={n:3d} translated {translated:2d}  in the question's language "
            f"{own_before:2d} -> {own_after:2d}  answer-line fact {m['fact_before']} -> {m['fact_after']}  "
            f"format {m['fmt_before']} -> {m['fmt_after']}"
        )
    Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
