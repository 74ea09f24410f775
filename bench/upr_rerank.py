"""Would the answering model itself put the right passage first? Query-likelihood reranking (the
"unsupervised passage re-ranker" idea: score each passage by how likely the model finds the question
written after it) of the passages a saved ``hybrid eval`` run showed, against their retrieval order.

For every row with sources, the passages the run's ``rag`` prompt showed are rebuilt as it saw them
(the script stops if they differ), each is given to the base model alone with "write one question
this passage answers", and the question's mean token log-probability is its score. Reported: how
often a source file is first (hit@1) and its reciprocal rank, in retrieval order, in score order and
in the two fused by reciprocal rank; with the seconds the scoring took per question. No answer is
generated and nothing in the product changes.

    python bench/upr_rerank.py COLLECTION ROWS.jsonl OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from citation_attribution import rebuilt_prompt  # noqa: E402  (bench/, this script's folder)

from adapters.choice import log_softmax, option_score  # noqa: E402
from app.settings import load_settings  # noqa: E402
from app.wiring.answer import build_assistant  # noqa: E402
from app.wiring.collections import with_collection  # noqa: E402
from domain.style import detect_lang  # noqa: E402

ASK = {
    "en": "Passage:\n{text}\n\nWrite one question that this passage answers.",
    "zh": "资料：\n{text}\n\n请写出这段资料能回答的一个问题。",
}


def question_score(gen: Any, passage: str, question: str) -> float:
    """Mean log-probability of ``question`` as the base model's reply to "write a question" about
    ``passage`` (llama.cpp backend internals; a benchmark, not a port)."""
    lang = "zh" if detect_lang(question) == "zh" else "en"
    prompt = gen.encode_prompt([{"role": "user", "content": ASK[lang].format(text=passage)}])
    tokens = gen._encode_text(question)
    llm, n_vocab = gen._llm, gen._lib.llama_vocab_n_tokens(gen._vocab)
    with gen._lock:
        gen._switch_adapter(False)
        try:
            gen._evaluate(list(prompt))
            first = log_softmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)))
            llm._batch.set_batch(batch=list(tokens), n_past=llm.n_tokens, logits_all=True)
            llm._ctx.decode(llm._batch)
            rows = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(tokens), n_vocab))
            return option_score(first, rows, tokens)
        finally:
            gen._keep(len(prompt) - 1)


def first_source(order: list[int], paths: list[str], sources: set[str]) -> int | None:
    """1-based position of the first passage (in ``order``) whose file is a source, or None."""
    for pos, i in enumerate(order, 1):
        if paths[i] in sources:
            return pos
    return None


def main() -> None:
    name, rows_file, out = sys.argv[1:4]
    settings = with_collection(load_settings(), name)
    assistant = build_assistant(settings, use_corrections=False)
    gen = assistant.generator
    rows = [json.loads(x) for x in Path(rows_file).read_text(encoding="utf-8").splitlines() if x.strip()]
    per_row, seconds = [], []
    for row in rows:
        if not row["sources"]:
            continue
        prompt = rebuilt_prompt(assistant, row)
        shown = [h.chunk.path for h in prompt.passages]
        t0 = time.perf_counter()
        scores = [question_score(gen, h.chunk.text, row["question"]) for h in prompt.passages]
        seconds.append(time.perf_counter() - t0)
        n = len(shown)
        by_rank = list(range(n))
        by_score = sorted(range(n), key=lambda i: (-scores[i], i))
        score_pos = {i: p for p, i in enumerate(by_score, 1)}
        fused = sorted(range(n), key=lambda i: (-(1 / (60 + i + 1) + 1 / (60 + score_pos[i])), i))
        sources = set(row["sources"])
        per_row.append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "sources": row["sources"],
                "shown": shown,
                "scores": [round(s, 4) for s in scores],
                "rank": first_source(by_rank, shown, sources),
                "score": first_source(by_score, shown, sources),
                "fused": first_source(fused, shown, sources),
            }
        )
    summary: dict[str, Any] = {}
    for order in ("rank", "score", "fused"):
        for key in ["all", *sorted({r["kind"] for r in per_row})]:
            part = [r for r in per_row if key in ("all", r["kind"])]
            pos = [r[order] for r in part]
            summary.setdefault(order, {})[key] = {
                "rows": len(part),
                "hit@1": sum(1 for p in pos if p == 1),
                "mrr": round(sum(1 / p for p in pos if p) / len(part), 3),
            }
    report = {
        "collection": name,
        "rows_file": rows_file,
        "seconds_per_question_p50": round(float(np.median(seconds)), 2) if seconds else None,
        "summary": summary,
        "rows": per_row,
    }
    Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for order, t in summary.items():
        print(
            f"{order:6s} "
            + "  ".join(f"{k} {x['hit@1']}/{x['rows']} mrr {x['mrr']:.3f}" for k, x in t.items())
        )
    print("scoring seconds per question, p50:", report["seconds_per_question_p50"])


if __name__ == "__main__":
    main()
