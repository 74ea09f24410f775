"""Benchmark (issue 25): RAG first-token time with llama.cpp's prompt-prefix reuse against the same
generator made to forget its context before every request — how every request was answered before
reuse — over N evaluation questions of a collection, greedy, in one run.

Each question is retrieved once and answered in the chosen mode twice: once in the cold pass (the
generator forgets before each of its calls, so the system prompt, the worked example and the
passages are evaluated every time) and once in the warm pass (questions in the same order; each
request reuses the prefix it shares with the one before, up to the last batch start the two
share — the system prompt and worked example across questions, the question's turn between an
answer's lines). The warm pass starts after
one warm-up question that is not counted. Prints first-token p50/p90, decode tokens/s and whether
every answer is identical between the passes.

    python bench/prefix_reuse.py --collection sample --questions 20 --json corpus/measured/prefix/sample.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CALLS = ("generate", "generate_from_ids", "choose", "choose_from_ids")


class Forgetful:
    """The generator, told to forget its evaluated context before every call (no prefix reuse)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in CALLS:
            return attr

        def cold(*args: Any, **kwargs: Any) -> Any:
            self.inner.forget()
            return attr(*args, **kwargs)

        return cold


def _questions(path: Path, n: int) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("kind") != "out_of_domain":
                out.append(str(row["question"]))
    return out[: n + 1]


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="sample")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--mode", default="rag", choices=("rag", "tuned_rag"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from app.settings import load_settings
    from app.wiring.answer import build_assistant
    from app.wiring.collections import get_collection, with_collection

    settings = with_collection(load_settings(), args.collection)
    assistant = build_assistant(settings)
    generator = assistant.generator
    if not hasattr(generator, "forget"):
        raise SystemExit("the generator keeps no prefix (use the llama_cpp backend)")
    questions = _questions(get_collection(settings).eval_set, args.questions)
    warmup, questions = questions[0], questions[1:]
    retrievals = {q: assistant.retrieve(q) for q in [warmup, *questions]}
    cold_assistant = dataclasses.replace(assistant, generator=Forgetful(generator))

    def run(a: Any, q: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        answer = a.answer_with(q, args.mode, retrievals[q])
        return {
            "question": q,
            "first_token_s": answer.timing.first_token_s,
            "tokens_per_s": answer.timing.tokens_per_s,
            "total_s": time.perf_counter() - t0,
            "text": answer.text,
        }

    generator.forget()
    cold = [run(cold_assistant, q) for q in questions]
    generator.forget()
    run(assistant, warmup)
    warm = [run(assistant, q) for q in questions]

    def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
        first = [r["first_token_s"] for r in rows]
        return {
            "first_token_p50_s": round(statistics.median(first), 3),
            "first_token_p90_s": round(_pct(first, 0.9), 3),
            "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in rows), 2),
            "total_s_median": round(statistics.median(r["total_s"] for r in rows), 2),
        }

    same = [c["text"] == w["text"] for c, w in zip(cold, warm, strict=True)]
    report = {
        "collection": args.collection,
        "mode": args.mode,
        "generator": generator.name,
        "questions": len(questions),
        "cold": summary(cold),
        "warm": summary(warm),
        "first_token_speedup_p50": round(
            summary(cold)["first_token_p50_s"] / max(1e-9, summary(warm)["first_token_p50_s"]), 2
        ),
        "identical_answers": sum(same),
        "rows": [
            {
                "question": c["question"],
                "cold_first_s": round(c["first_token_s"], 3),
                "warm_first_s": round(w["first_token_s"], 3),
                "identical": s,
            }
            for c, w, s in zip(cold, warm, same, strict=True)
        ],
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
