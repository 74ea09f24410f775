"""Benchmark (issue 28): the four-mode scoreboard of several model profiles side by side on one
collection — the same evaluation rows, one `hybrid eval` per profile in its own process, run one
after the other in one invocation — with first-token p50 and tokens/s per mode.

    python bench/profiles.py --collection sample --profiles qwen,qwen-1.5b --split heldout --limit 20 \\
        --out corpus/measured/profiles/sample-heldout20

Writes ``<out>-<profile>.json`` (each profile's full report, rows beside it) and ``<out>.md`` (the
side-by-side table). A mode a profile cannot answer (no adapter trained on that base) is listed
with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = ("prompt", "rag", "tuned", "tuned_rag")
COLUMNS = (
    ("n", "rows", "{:d}"),
    ("fact_recall", "fact recall", "{:.3f}"),
    ("format", "format", "{:.3f}"),
    ("citation_precision", "citation", "{:.3f}"),
    ("combined", "combined", "{:.3f}"),
    ("first_token_s_p50", "first token p50 s", "{:.2f}"),
    ("tokens_per_s", "tokens/s", "{:.1f}"),
)


def run_eval(profile: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-c",
        "import sys; from app.cli import main; sys.exit(main())",
        "--profile",
        profile,
        "eval",
        "--collection",
        args.collection,
        "--modes",
        ",".join(MODES),
        "--split",
        args.split,
        "--json",
        str(out),
    ]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_WAIT_POLICY="PASSIVE")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    report = json.loads(out.read_text(encoding="utf-8"))
    report["bench_seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _cell(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def table(reports: dict[str, dict[str, Any]]) -> str:
    lines = ["| model | mode | " + " | ".join(c[1] for c in COLUMNS) + " |"]
    lines.append("|" + "---|" * (len(COLUMNS) + 2))
    for profile, report in reports.items():
        model = (report.get("model") or {}).get("base", profile).split(" — ")[0]
        for mode in MODES:
            scores = report.get("modes", {}).get(mode)
            if scores is None:
                why = report.get("skipped_modes", {}).get(mode, "not run")
                lines.append(f"| {model} | {mode} | unavailable: {why} |" + " |" * (len(COLUMNS) - 1))
                continue
            cells = [_cell(scores.get(key), fmt) for key, _, fmt in COLUMNS]
            lines.append(f"| {model} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="sample")
    ap.add_argument("--profiles", default="qwen,qwen-1.5b")
    ap.add_argument("--split", default="heldout", choices=("tune", "heldout"))
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True, help="path prefix of the reports")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    reports = {}
    for profile in args.profiles.split(","):
        reports[profile] = run_eval(profile, args, Path(f"{args.out}-{profile}.json"))
    head = (
        f"# {args.collection}: the four modes per model profile, side by side\n\n"
        f"`python bench/profiles.py --collection {args.collection} --profiles {args.profiles} "
        f"--split {args.split} --limit {args.limit} --out {args.out}` — the first {args.limit} rows of the "
        f"{args.split} split, each profile in its own process, one after the other; wall time per "
        "profile: " + ", ".join(f"{p} {r['bench_seconds']:.0f} s" for p, r in reports.items()) + ".\n\n"
    )
    text = head + table(reports) + "\n"
    Path(f"{args.out}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
