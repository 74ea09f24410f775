"""Would a retrieval check have kept the evaluation rows a person judged answerable and dropped the
others? For every row judged by hand in ``corpus/measured/collections/*judged*.md`` (and the judged
table of ``judge-tried.md``) on the ``debian-ref`` collection: find the chunks of the index that
hold all its key facts, search its question (hybrid, top 10, three passages per document), and
note the rank of the first hit holding them. A row "passes at k" when that rank is k or better.
Prints, for k in 1, 3, 5, 10, how many rows pass and how many of those were judged answerable.

    python bench/judged_rows_retrieval.py OUT.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import load_settings  # noqa: E402
from app.wiring.collections import get_collection, with_collection  # noqa: E402
from app.wiring.index import build_retriever, query_embedder  # noqa: E402
from index.store import current_generation, read_chunks  # noqa: E402

JUDGED = ROOT / "corpus" / "measured" / "collections"
FILES = (
    "debian-ref-15b-heldout-judged30.md",
    "debian-ref-15b-tune-judged30.md",
    "debian-ref-headings-tune-judged30.md",
    "debian-ref-judged30.md",
    "debian-ref-answer-first-heldout.md",
    "debian-ref-answer-first-tune.md",
    "judge-tried.md",
)


def cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def judged_rows() -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in FILES:
        header: list[str] | None = None
        for line in (JUDGED / name).read_text(encoding="utf-8").splitlines():
            if not line.startswith("|"):
                header = None
                continue
            c = cells(line)
            if "row" in c and "question" in c:
                header = c
                continue
            if header is None or len(c) != len(header) or set(line.strip()) <= set("|-: "):
                continue
            d = dict(zip(header, c, strict=True))
            verdict = d["answerable"].lower()
            if not d["row"].startswith(("en-", "zh-")) or not verdict.startswith(("yes", "no")):
                continue
            facts = [f.strip() for f in d["key facts"].split("; ") if f.strip()]
            rows.setdefault(
                d["row"],
                {
                    "question": d["question"],
                    "facts": facts,
                    "yes": verdict.startswith("yes"),
                    "file": name,
                    "source": d.get("source"),
                },
            )
    return rows


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def main() -> None:
    out = Path(sys.argv[1])
    settings = with_collection(load_settings(), "debian-ref")
    gen = current_generation(get_collection(settings).paths.index)
    if gen is None:
        raise SystemExit(
            "debian-ref has no index: build it first (see corpus/measured/collections/README.md)"
        )
    chunks = read_chunks(gen)
    texts = [norm(c.text) for c in chunks]
    retriever = build_retriever(settings, None, embedder=query_embedder(settings, None), per_doc=3)
    per_row = []
    for rid, row in judged_rows().items():
        facts = [norm(f.strip('"…. '))[:60] for f in row["facts"]]
        holding = {chunks[i].chunk_id for i, t in enumerate(texts) if facts and all(f in t for f in facts)}
        hits = retriever.search(row["question"], k=10)
        ranks = [i + 1 for i, h in enumerate(hits) if h.chunk.chunk_id in holding]
        per_row.append(
            {"row": rid, **row, "chunks_holding_facts": len(holding), "rank": ranks[0] if ranks else None}
        )
    found = [r for r in per_row if r["chunks_holding_facts"]]
    summary = {
        "rows_judged": len(per_row),
        "answerable": sum(r["yes"] for r in per_row),
        "rows_with_facts_found": len(found),
    }
    for k in (1, 3, 5, 10):
        kept = [r for r in found if r["rank"] and r["rank"] <= k]
        dropped = [r for r in found if r not in kept]
        summary[f"top{k}"] = {
            "kept": len(kept),
            "kept_answerable": sum(r["yes"] for r in kept),
            "dropped": len(dropped),
            "dropped_answerable": sum(r["yes"] for r in dropped),
        }
        print(
            f"top {k}: kept {len(kept)} ({sum(r['yes'] for r in kept)} answerable), dropped {len(dropped)} ({sum(r['yes'] for r in dropped)} answerable)"
        )
    out.write_text(
        json.dumps({"summary": summary, "rows": per_row}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8",
    )
    print(json.dumps({k: v for k, v in summary.items() if not k.startswith("top")}))


if __name__ == "__main__":
    main()
