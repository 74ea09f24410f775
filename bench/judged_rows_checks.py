"""Would a second reading of each question have kept the evaluation rows a person judged
answerable and dropped the others? For every row judged by hand on ``debian-ref`` (the tables
``judged_rows_retrieval.judged_rows`` reads), its passage is today's chunk of its source file that
holds all its key facts; then two readings and a repair, none of which saw the person's verdict:

- ``rt05``: the round trip of the dataset build (``domain.dataset_build.check_messages``) asked of
  the answering model (the 0.5B), not the writer that wrote the question: an independent reader;
- ``ctx``: the same round trip asked of the writer (the 1.5B) over the passage with its neighbours
  in the file (the chunk before and after), so a question that names too little meets the other
  answers its document gives;
- ``rewrite``: not a check but a repair — the writer shown the passage (with its section), the
  question and its facts, asked to name what the question leaves out; "holds" when it changed the
  question (the rewritten questions are read by hand).

Beside them, four flags that need no model (``features``).

A reading "holds" a row when its answer shares ``ROUND_TRIP_SHARE`` of the content units of a key
fact (the table's facts may be shortened with "…": each part counts). Prints, per check and per
split of the judged tables (tables with "tune" in their name or the first table, ``debian-ref-
judged30.md``, choose; the others confirm), kept and dropped rows with how many were answerable.

    python bench/judged_rows_checks.py OUT.json [--checks rt05,ctx,rewrite] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from judged_rows_retrieval import judged_rows, norm  # noqa: E402

from app.settings import load_settings  # noqa: E402
from app.wiring.collections import get_collection, with_collection  # noqa: E402
from app.wiring.generation import build_generator, build_writer  # noqa: E402
from domain import dataset_build as ds  # noqa: E402
from index.store import current_generation, read_chunks  # noqa: E402

CHOOSING = ("tune", "debian-ref-judged30.md")


def split_of(table: str) -> str:
    return "tune" if any(k in table for k in CHOOSING) else "heldout"


def fact_units(facts: list[str]) -> list[set[str]]:
    parts = [p.strip(' "“”.') for f in facts for p in f.split("…")]
    return [u for u in (ds.content_units(p) for p in parts if p) if u]


def holds(answer: str, facts: list[str]) -> bool:
    got = ds.content_units(answer)
    return any(ds.share_in(u, got) >= ds.ROUND_TRIP_SHARE for u in fact_units(facts))


def reply(gen: Any, messages: list[dict[str, str]], prefill: str, tokens: int) -> str:
    out = "".join(gen.generate(messages, adapter=False, max_new_tokens=tokens, prefill=prefill))
    return (prefill + out).split(prefill, 1)[-1].strip()


def first_answer(text: str) -> str:
    line = next((x for x in text.splitlines() if x.strip()), "")
    return ds._unwrap(line.removeprefix("ANSWER:").strip())


def rewrite_messages(question: str, facts: list[str], chunk: Any) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": "You edit test questions about documents so that each one stands on its own.",
        },
        {
            "role": "user",
            "content": (
                f'Passage from {chunk.path}, section "{chunk.heading}":\n"""\n{chunk.text.strip()}\n"""\n\n'
                f"Question: {question}\nIts answer, copied from the passage: {'; '.join(facts)}\n\n"
                "The question will be asked without the passage, of someone searching all of these "
                "documents. If it leaves out what it is about (the program, command, package, file, device "
                "or case its answer applies to), rewrite it to name that, so that it has this same answer "
                "and no other. If it already names it, write it unchanged. Never put the answer itself in "
                "the question. Write the question in English.\nReply in exactly this format:\n"
                "QUESTION: <the question>"
            ),
        },
    ]


DEICTIC = re.compile(
    r"\b(the passage|this passage|the text|this text|this document|the document|mentioned|the above"
    r"|the warning|the example)\b",
    re.IGNORECASE,
)


def prose_share(text: str) -> float:
    sents = ds.sentences(text)
    total = sum(ds.text_size(x, "en") for x in sents)
    long = sum(ds.text_size(x, "en") for x in sents if ds.text_size(x, "en") >= ds.PROSE_SENTENCE["en"])
    return long / total if total else 0.0


def features(chunks: dict[str, Any]) -> dict[str, Any]:
    """Flags on a judged row that need no model: does any of them pick out the "no" rows?"""
    return {
        "passage prose share < 0.7": lambda r: prose_share(chunks[r["chunk"]].text) < 0.7,
        "shell lines in passage": lambda r: any(
            re.match(r"\s*[$#] ", x) for x in chunks[r["chunk"]].text.splitlines()
        ),
        "question <= 3 content words": lambda r: len(ds.content_units(r["question"])) <= 3,
        "question names the passage": lambda r: bool(DEICTIC.search(r["question"])),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--checks", default="rt05,ctx,rewrite")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    checks = args.checks.split(",")
    settings = with_collection(load_settings(), "debian-ref")
    gen_dir = current_generation(get_collection(settings).paths.index)
    if gen_dir is None:
        raise SystemExit("debian-ref has no index: build it first (corpus/measured/collections/README.md)")
    chunks = read_chunks(gen_dir)
    texts = [norm(c.text) for c in chunks]
    small = build_generator(settings) if "rt05" in checks else None
    writer = build_writer(settings) if {"ctx", "rewrite"} & set(checks) else None
    done: dict[str, Any] = {}
    if args.out.exists():
        done = {r["row"]: r for r in json.loads(args.out.read_text(encoding="utf-8"))["rows"]}
    rows = list(judged_rows().items())[: args.limit or None]
    for n, (rid, row) in enumerate(rows, 1):
        rec = done.get(rid, {"row": rid, **row, "split": split_of(row["file"])})
        facts = [norm(f.strip('"…. '))[:60] for f in row["facts"]]
        at = [
            i
            for i, t in enumerate(texts)
            if facts
            and all(f in t for f in facts)
            and (not row.get("source") or chunks[i].path == row["source"])
        ]
        if not at:
            rec["chunk"] = None
            done[rid] = rec
            continue
        i = at[0]
        chunk = chunks[i]
        rec["chunk"] = chunk.chunk_id
        t0 = time.monotonic()
        if "rt05" in checks and "rt05" not in rec and small is not None:
            got = reply(small, ds.check_messages(row["question"], chunk), ds.CHECK_PREFILL, 64)
            rec["rt05"] = {"answer": first_answer(got), "holds": holds(first_answer(got), row["facts"])}
        if "ctx" in checks and "ctx" not in rec and writer is not None:
            near = [c for c in chunks[max(0, i - 1) : i + 2] if c.path == chunk.path]
            wide = type(chunk)(**{**chunk.__dict__, "text": "\n\n".join(c.text for c in near)})
            got = reply(writer, ds.check_messages(row["question"], wide), ds.CHECK_PREFILL, 64)
            rec["ctx"] = {"answer": first_answer(got), "holds": holds(first_answer(got), row["facts"])}
        if "rewrite" in checks and "rewrite" not in rec and writer is not None:
            got = reply(writer, rewrite_messages(row["question"], row["facts"], chunk), "QUESTION:", 80)
            again = next((x.strip() for x in got.splitlines() if x.strip()), "")
            rec["rewrite"] = {"question": again, "holds": again != row["question"]}
        done[rid] = rec
        print(f"{n}/{len(rows)} {rid} {time.monotonic() - t0:.1f}s", flush=True)
        args.out.write_text(
            json.dumps({"rows": list(done.values())}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    table: dict[str, Any] = {}
    by_id = {c.chunk_id: c for c in chunks}
    for name, flag in features(by_id).items():
        for split in ("tune", "heldout"):
            got = [r for r in done.values() if r.get("chunk") and r["split"] == split]
            hit = [r for r in got if flag(r)]
            table[f"feature {name}/{split}"] = {
                "rows": len(got),
                "flagged": len(hit),
                "flagged_no": sum(not r["yes"] for r in hit),
            }
            print(f"feature {name:28} {split:8} {table[f'feature {name}/{split}']}")
    for check in checks:
        for split in ("tune", "heldout", "all"):
            got = [r for r in done.values() if check in r and (split == "all" or r["split"] == split)]
            kept = [r for r in got if r[check]["holds"]]
            line = {
                "rows": len(got),
                "answerable": sum(r["yes"] for r in got),
                "kept": len(kept),
                "kept_answerable": sum(r["yes"] for r in kept),
            }
            table[f"{check}/{split}"] = line
            print(f"{check:5} {split:8} {line}")
    args.out.write_text(
        json.dumps({"summary": table, "rows": list(done.values())}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
