"""How often do the modes that read no passages (prompt-only, tuned) name a source file, and how
often one the collection does not hold? Counts, per mode, over the per-row results a ``hybrid eval``
run wrote (``modes-*.rows.jsonl``): answers whose source line (the style's second line) names a
file (``domain.basis.named_files``, the names the pipeline checks), and answers the pipeline flagged with "the source line names a file this
collection does not hold". Reads files only.

    python bench/made_up_sources.py ROWS.jsonl [ROWS.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.basis import named_files  # noqa: E402

FLAG = "does not hold"


def count(rows: list[dict], mode: str) -> tuple[int, int, int]:
    """(answers in ``mode``, whose source line names a file, flagged as naming a file not held)."""
    results = [r["results"][mode] for r in rows if mode in r["results"]]
    lines = [x["answer"].split("\n") for x in results]
    named = sum(1 for ls in lines if len(ls) > 1 and named_files(ls[1]))
    flagged = sum(1 for x in results if any(FLAG in w for w in x["warnings"]))
    return len(results), named, flagged


def main() -> None:
    for name in sys.argv[1:]:
        text = Path(name).read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        for mode in ("prompt", "tuned"):
            n, named, flagged = count(rows, mode)
            if n:
                print(
                    f"{Path(name).name:40} {mode:7} rows {n:3}  source line names a file {named:3}"
                    f"  of them not in the collection {flagged:3}"
                )


if __name__ == "__main__":
    main()
