"""Acceptance run: retrain from 20 corrections on the real base model, in a scratch workspace.

Picks 20 held-out evaluation questions (10 English, 10 Chinese fact rows outside the gate's subset;
``--offset 10`` picks the next 20, the rows training settings are chosen on),
scores the adapter in use on them (``tuned`` mode, correction memory off), stores their reference
answers as corrections, runs our own ``hybrid train --from-corrections`` (progress bar and ETA on
stderr), and scores the new version on the same questions. Prints fact recall, ROUGE-L against the
corrected answer, format score and exact matches before and after, plus the gate's decision.

    python bench/retrain_corrections.py --json retrain.json
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


def pick_rows(n_per_lang: int = 10, offset: int = 0) -> list[dict]:
    from app.evaluation.gate import gate_rows
    from app.settings import load_settings
    from app.wiring.dataset_rows import load_rows

    settings = load_settings()
    gate_ids = {r["id"] for r in gate_rows(settings)}
    rows = load_rows(settings, "eval")
    out = []
    for lang in ("en", "zh"):
        pool = [r for r in rows if r["lang"] == lang and r["kind"] == "fact" and r["id"] not in gate_ids]
        out += sorted(pool, key=lambda r: r["id"])[offset : offset + n_per_lang]
    return out


def scratch_workspace(main_ws: Path, dest: Path, collection: str) -> Path:
    """A workspace sharing the main one's models, tools and the collection's index and router
    (symlinks), with no adapters or corrections."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("models", "tools"):
        link = dest / name
        if not link.exists():
            link.symlink_to(main_ws / name)
    src, dst = main_ws / "collections" / collection, dest / "collections" / collection
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("index", "router.json", "collection.json"):
        if (src / name).exists() and not (dst / name).exists():
            (dst / name).symlink_to(src / name)
    return dest


def score(settings, rows: list[dict], adapter_dir: Path) -> tuple[dict, list[str]]:
    """The harness's tuned-mode report and the raw answers (correction memory off)."""
    from app.wiring.answer import build_assistant
    from domain.evaluation import build_report, evaluate_rows

    assistant = build_assistant(settings, adapter_dir=adapter_dir, use_corrections=False)
    results = evaluate_rows(rows, assistant, ["tuned"], style=assistant.options.style)
    report = build_report(results, ["tuned"], assistant.adapter_state)
    answers = [r["results"]["tuned"]["answer"] for r in results]
    return report, answers


def watch_job(jobs_root: Path, proc: subprocess.Popen, t0: float, every_s: float = 2.0) -> list[dict]:
    """Poll the newest training job's status file until ``proc`` ends: (seconds since ``t0``,
    phase, step, total, the ETA the job showed)."""
    samples: list[dict] = []
    while proc.poll() is None:
        time.sleep(every_s)
        found = sorted(jobs_root.glob("train-*/job.json"))
        if not found:
            continue
        try:
            job = json.loads(found[-1].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        samples.append(
            {
                "t": round(time.perf_counter() - t0, 1),
                "phase": job.get("phase"),
                "step": job.get("step"),
                "total": job.get("total"),
                "eta_s": job.get("eta_s"),
            }
        )
    return samples


def eta_at(samples: list[dict], total_s: float, share: float = 0.25) -> dict | None:
    """The ETA the job showed at ``share`` of the run's real length, against the real end."""
    at = [s for s in samples if s["t"] >= share * total_s and s["eta_s"] is not None]
    if not at:
        return None
    s = at[0]
    real_left = total_s - s["t"]
    return {
        "t": s["t"],
        "phase": s["phase"],
        "eta_s": s["eta_s"],
        "real_left_s": round(real_left, 1),
        "error_of_remaining": round((s["eta_s"] - real_left) / real_left, 3),
        "error_of_end": round((s["t"] + s["eta_s"] - total_s) / total_s, 3),
    }


def phase_seconds(samples: list[dict]) -> dict[str, float]:
    """Seconds seen in each phase of the job (from the polled samples)."""
    out: dict[str, float] = {}
    prev_t = 0.0
    for s in samples:
        key = str(s["phase"])
        out[key] = round(out.get(key, 0.0) + s["t"] - prev_t, 1)
        prev_t = s["t"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="/tmp/hybrid-retrain-ws")
    ap.add_argument("--json", default=None)
    ap.add_argument("--train-args", default="", help="extra `hybrid train` arguments")
    ap.add_argument(
        "--offset",
        type=int,
        default=0,
        help="skip this many rows per language (10: the tuning rows; 0, the default: the reported rows)",
    )
    args = ap.parse_args()

    main_ws = Path(os.environ.get("HYBRID_WORKSPACE") or REPO / "workspace").resolve()
    ws = scratch_workspace(main_ws, Path(args.workspace), os.environ.get("HYBRID_COLLECTION", "sample"))
    os.environ["HYBRID_WORKSPACE"] = str(ws)
    from app.settings import load_settings
    from app.wiring.active_adapter import current_adapter
    from domain.corrections import CorrectionStore
    from domain.metrics import rouge_l

    settings = load_settings()
    rows = pick_rows(offset=args.offset)
    before_dir, before_label = current_adapter(settings)
    if before_dir is None:
        raise SystemExit("no adapter in use (no corpus/default_adapter and no active version)")
    before, before_answers = score(settings, rows, before_dir)

    from app.wiring.active_adapter import registry_root
    from app.wiring.answer import feedback_db

    store = CorrectionStore(feedback_db(settings))
    if store.count() == 0:
        for r, original in zip(rows, before_answers, strict=True):
            store.add(
                question=r["question"], mode="tuned", passages=[], original=original, corrected=r["reference"]
            )
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "train",
        "--from-corrections",
        "--json",
        str(ws / "train.json"),
        *args.train_args.split(),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ))
    samples = watch_job(ws / "jobs", proc, t0)
    train = json.loads((ws / "train.json").read_text(encoding="utf-8"))
    seconds = time.perf_counter() - t0
    if train.get("status") != "succeeded":
        raise SystemExit(f"training failed (exit {proc.returncode}): {train.get('error')}")
    new_dir = registry_root(settings) / train["version"]
    after, after_answers = score(settings, rows, new_dir)

    def compare(answers: list[str]) -> dict:
        return {
            "rouge_l_vs_corrected": round(
                sum(rouge_l(a, r["reference"]) for a, r in zip(answers, rows, strict=True)) / len(rows), 4
            ),
            "exact": sum(a.strip() == r["reference"].strip() for a, r in zip(answers, rows, strict=True)),
        }

    report = {
        "rows": [r["id"] for r in rows],
        "before": {"adapter": before_label, **before["modes"]["tuned"], **compare(before_answers)},
        "after": {"adapter": train["version"], **after["modes"]["tuned"], **compare(after_answers)},
        "gate": (train.get("metrics") or {}).get("gate"),
        "activated": train.get("activated"),
        "train_seconds_total": round(seconds, 1),
        "eta_at_25pct": eta_at(samples, seconds),
        "phases_s": phase_seconds(samples),
        "train_metrics": {k: v for k, v in (train.get("metrics") or {}).items() if k != "gate"},
        "examples": [
            {"id": r["id"], "corrected": r["reference"], "before": b, "after": a}
            for r, b, a in list(zip(rows, before_answers, after_answers, strict=True))[:4]
        ],
        "job_samples": samples,
    }
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
