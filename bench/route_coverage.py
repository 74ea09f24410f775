"""How often ``auto`` routes a question to a retrieval mode, with the router reading the scores of
a translated search in the language they were computed in (``domain.router.route_features`` with
``searched_as``) against reading them all as the question's (without it). No answer is generated:
each question is searched once, as the collection's assistant searches (translation as set up),
and both readings decide on the same hits with the collection's router thresholds.

Rows are counted in three groups: in-domain rows whose source was among the hits, in-domain rows
whose source was not, out-of-domain rows (where routing to retrieval is the wrong call).

    python bench/route_coverage.py COLLECTION ROWS.jsonl SPLIT OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import load_settings  # noqa: E402
from app.wiring.answer import build_assistant  # noqa: E402
from app.wiring.collections import with_collection  # noqa: E402
from app.wiring.generation import translator_label  # noqa: E402
from domain.evaluation import row_sources  # noqa: E402
from domain.router import _evidence, route_features  # noqa: E402


def group(row: dict[str, Any], found: bool) -> str:
    if row.get("kind") == "out_of_domain":
        return "out_of_domain"
    return "in_domain_source_retrieved" if found else "in_domain_source_not_retrieved"


def main() -> None:
    name, rows_file, split, out = sys.argv[1:5]
    settings = with_collection(load_settings(), name)
    assistant = build_assistant(settings, use_corrections=False)
    rows = [
        json.loads(line) for line in Path(rows_file).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    rows = [r for r in rows if split == "all" or r.get("split") == split]
    per_row, totals = [], {}
    for row in rows:
        question = row["question"]
        retrieval = assistant.retrieve(question)
        sources = set(row_sources(row))
        found = any(h.chunk.path in sources for h in retrieval.hits)
        before = _evidence(route_features(question, retrieval.hits), assistant.thresholds)
        after = _evidence(
            route_features(question, retrieval.hits, retrieval.searched_as), assistant.thresholds
        )
        g = group(row, found)
        t = totals.setdefault(g, {"rows": 0, "retrieval_before": 0, "retrieval_after": 0})
        t["rows"] += 1
        t["retrieval_before"] += before[0]
        t["retrieval_after"] += after[0]
        per_row.append(
            {
                "id": row.get("id"),
                "group": g,
                "searched_as": retrieval.searched_as,
                "before": before,
                "after": after,
            }
        )
        print(row.get("id"), g, "before", before[0], "after", after[0], flush=True)
    report = {
        "collection": name,
        "rows_file": rows_file,
        "split": split,
        "translator": translator_label(settings),
        "thresholds": assistant.thresholds.to_json(),
        "totals": totals,
        "rows": per_row,
    }
    Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for g, t in sorted(totals.items()):
        print(
            f"{name} {split} {g}: rows {t['rows']}, routed to retrieval before {t['retrieval_before']}, after {t['retrieval_after']}"
        )


if __name__ == "__main__":
    main()
