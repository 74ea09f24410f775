"""Retrain from corrections, end to end on the real models, and check that it took.

1. Picks ``--n`` evaluation rows of kind fact (half English, half Chinese where possible) that the
   gate's fixed subset does not use, preferring rows the adapter in use answered worst in
   ``tuned`` mode (answers are generated here, correction memory off).
2. Records each reference answer as a correction through the real CLI (`hybrid correct`).
3. Runs `hybrid train --from-corrections` (progress bar and ETA on the terminal; the gate decides).
4. Answers the same questions in ``tuned`` mode with the new version, correction memory off, and
   reports fact recall, format score and exact first lines before and after.

    python bench/corrections_retrain.py --n 20 --json workspace/evals/corrections-retrain.json

Uses the workspace's feedback database: run it on a workspace whose corrections you can spare
(``--reset-corrections`` moves an existing database aside first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _hybrid(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("hybrid")
    return subprocess.run([str(exe), *args], check=True, text=True, env=os.environ.copy())


def _tuned_scores(settings, rows, adapter_dir: Path) -> list[dict]:
    from app.eval_modes import evaluate_assistant
    from app.wiring.answer import build_assistant

    assistant = build_assistant(settings, adapter_dir=adapter_dir, use_corrections=False)
    results, _ = evaluate_assistant(assistant, rows, ["tuned"], quiet=False)
    out = []
    for r in results:
        m = r["results"]["tuned"]
        out.append(
            {
                "id": r["id"],
                "fact_recall": m["fact_recall"],
                "format": m["format"],
                "answer": m["answer"],
            }
        )
    return out


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=36, help="fact rows answered to pick the worst from")
    ap.add_argument("--epochs", type=int, default=None, help="passed to hybrid train")
    ap.add_argument("--reset-corrections", action="store_true")
    ap.add_argument("--json", default=None)
    args, extra = ap.parse_known_args()
    args.train_args = extra  # anything else goes to `hybrid train`

    from app.eval_retrieval import load_eval_rows
    from app.settings import load_settings
    from app.wiring.training import current_adapter, eval_files, gate_rows

    settings = load_settings()
    db = settings.ws.feedback_db
    if db.is_file():
        if not args.reset_corrections:
            sys.exit(f"{db} already holds corrections — pass --reset-corrections to move it aside")
        aside = db.with_name(f"{db.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{db}{suffix}")
            if src.exists():
                src.rename(f"{aside}{suffix}")
        print(f"moved the old corrections to {aside}", file=sys.stderr)

    gate_ids = {r["id"] for r in gate_rows()}
    facts = [r for r in load_eval_rows(eval_files()) if r["kind"] == "fact" and r["id"] not in gate_ids]
    by_lang = {lang: [r for r in facts if r["lang"] == lang] for lang in ("en", "zh")}
    per = args.candidates // 2
    candidates = by_lang["en"][:per] + by_lang["zh"][:per]
    before_dir, before_label = current_adapter(settings)
    if before_dir is None:
        sys.exit("no adapter in use — train or publish one first")
    t0 = time.perf_counter()
    scored = _tuned_scores(settings, candidates, before_dir)
    answer_seconds = time.perf_counter() - t0
    rank = {s["id"]: (s["fact_recall"] or 0.0) + (s["format"] or 0.0) for s in scored}
    picked: list[dict] = []
    for lang in ("en", "zh"):
        pool = sorted((r for r in candidates if r["lang"] == lang), key=lambda r: rank[r["id"]])
        picked += pool[: args.n // 2]
    before = {s["id"]: s for s in scored}

    for r in picked:
        _hybrid("correct", "--question", r["question"], "--mode", "tuned", "--corrected", r["reference"])
    train_args = ["train", "--from-corrections", "--json", str(settings.ws.evals / "corrections-train.json")]
    train_args += args.train_args or []
    if args.epochs:
        train_args += ["--epochs", str(args.epochs)]
    t1 = time.perf_counter()
    rc = subprocess.run(
        [str(Path(sys.executable).with_name("hybrid")), *train_args], text=True, env=os.environ.copy()
    ).returncode
    train_wall = time.perf_counter() - t1
    result = json.loads((settings.ws.evals / "corrections-train.json").read_text(encoding="utf-8"))
    if rc != 0 or not result.get("version"):
        sys.exit(f"training from corrections failed: {result.get('error')}")
    new_dir = settings.ws.adapters / result["version"]
    after = {s["id"]: s for s in _tuned_scores(settings, picked, new_dir)}

    rows = []
    for r in picked:
        b, a = before[r["id"]], after[r["id"]]
        rows.append(
            {
                "id": r["id"],
                "question": r["question"],
                "corrected": r["reference"],
                "before": b["answer"],
                "after": a["answer"],
                "fact_recall_before": b["fact_recall"],
                "fact_recall_after": a["fact_recall"],
                "format_after": a["format"],
                "same_conclusion_line": _first_line(a["answer"]) == _first_line(r["reference"]),
            }
        )

    def mean(key: str) -> float:
        vals = [x[key] for x in rows if x[key] is not None]
        return round(sum(vals) / len(vals), 3) if vals else 0.0

    report = {
        "n_corrections": len(picked),
        "adapter_before": before_label,
        "adapter_after": result["version"],
        "activated": result.get("activated"),
        "gate": (result.get("metrics") or {}).get("gate", {}).get("reason"),
        "train_wall_s": round(train_wall, 1),
        "train_steps": result.get("steps"),
        "answer_seconds_candidates": round(answer_seconds, 1),
        "fact_recall_before": mean("fact_recall_before"),
        "fact_recall_after": mean("fact_recall_after"),
        "format_after": mean("format_after"),
        "same_conclusion_line": sum(x["same_conclusion_line"] for x in rows),
        "rows": rows,
    }
    print(
        f"corrections retrain: {report['n_corrections']} corrections, {report['adapter_before']} -> "
        f"{report['adapter_after']} (activated {report['activated']}; {report['gate']}); training "
        f"{report['train_wall_s']} s wall; tuned fact recall on the corrected questions "
        f"{report['fact_recall_before']} -> {report['fact_recall_after']}, format {report['format_after']}, "
        f"conclusion line identical to the correction {report['same_conclusion_line']}/{len(rows)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
