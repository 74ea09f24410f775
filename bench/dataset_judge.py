"""How the dataset build's judgement step (``domain.dataset_build.judge_messages``) sorts rows a
person has already judged: for each hand-judged table (``| # | row | source | question | key
facts | answerable |`` as in ``corpus/measured/collections/*-judged30.md``), the rows' passages
are looked up in the collection's index, the writer model (``HYBRID_DATASET__MODEL_GGUF``, else
the answering model) is asked the judgement, and its verdicts are counted against the person's.

    HYBRID_DATASET__MODEL_GGUF=… python bench/dataset_judge.py \
        --table corpus/measured/collections/debian-ref-15b-tune-judged30.md --collection debian-ref-15b

Prints one line per table (rows, person yes/no, kept of each) and writes ``--out`` (JSON, per row).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path.pop(0)  # bench/index.py is not the index package
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def judged_rows(table: Path) -> list[tuple[str, bool]]:
    """(row id, the person's verdict) from a judged table."""
    out = []
    for line in table.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) >= 6 and re.fullmatch(r"\d+", cells[0]):
            out.append((cells[1], cells[-1].lower().startswith("yes")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", type=Path, action="append", required=True)
    ap.add_argument("--collection", action="append", required=True, help="one per --table")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if len(args.table) != len(args.collection):
        ap.error("give one --collection per --table")

    from app.settings import load_settings
    from app.wiring.dataset_rows import load_rows
    from app.wiring.datasets import index_chunks
    from app.wiring.generation import build_writer
    from domain import dataset_build as ds

    results = []
    for table, name in zip(args.table, args.collection, strict=True):
        settings = load_settings().model_copy(update={"collection": name})
        by_id = {ds.row_id("eval", ds.chunk_lang(c), c.chunk_id): c for c in index_chunks(settings)}
        rows = {r["id"]: r for r in load_rows(settings, "eval")}
        writer = build_writer(settings)
        counts = {"yes": [0, 0], "no": [0, 0]}  # person's verdict -> [kept, rejected]
        t0 = time.perf_counter()
        for rid, person in judged_rows(table):
            row, chunk = rows[rid], by_id[rid]
            reply = ds.JUDGE_PREFILL + "".join(
                writer.generate(
                    ds.judge_messages(row["question"], row["key_facts"], chunk),
                    adapter=False,
                    max_new_tokens=4,
                    temperature=0.0,
                    prefill=ds.JUDGE_PREFILL,
                )
            )
            try:
                ds.check_judgement(reply)
                kept = True
            except ds.Reject:
                kept = False
            counts["yes" if person else "no"][0 if kept else 1] += 1
            results.append({"table": str(table), "id": rid, "person": person, "kept": kept, "reply": reply})
        took = time.perf_counter() - t0
        print(
            f"{table.name}: {sum(map(sum, counts.values()))} rows in {took:.0f} s; "
            f"person yes {sum(counts['yes'])} (kept {counts['yes'][0]}), "
            f"person no {sum(counts['no'])} (kept {counts['no'][0]})"
        )
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
