"""Where do a RAG answer's wrong citations come from: the attribution (which passage an answer is
matched to) or the reading (which passage the model answered from)? Re-scores the answers a saved
``hybrid eval`` run wrote (``modes-*.rows.jsonl``, mode ``rag``), without generating them again,
under other ways of attributing them; and (``--choice``) asks the model itself which passage
answers, before answering and after its answer line.

Each row's passages are rebuilt as the run saw them (the same search and prompt budget; the script
stops if they differ from the saved ones), so the variants see exactly what the model saw.

Attribution variants, each giving the cited files of one answer:
  recorded          what the run cited (character n-grams of every answer line)
  whole-text        the same, recomputed here (checks the rebuild)
  answer-line       n-grams of the answer line alone (the Note never cites)
  answer-line|model the answer line's; when it matches nothing, the files the model named
  answer-line|embed the answer line's; when it matches nothing, the passage holding the sentence
                    the collection's embedder finds closest to the answer line (any language)

    python bench/citation_attribution.py COLLECTION PROFILE ROWS.jsonl {on,off} OUT.json [--choice]
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.settings import load_settings  # noqa: E402
from app.wiring.answer import build_assistant  # noqa: E402
from app.wiring.collections import with_collection  # noqa: E402
from app.wiring.models import with_profile  # noqa: E402
from domain import evidence  # noqa: E402
from domain.basis import named_files, repair_path  # noqa: E402
from domain.citations import (  # noqa: E402
    _TAG,
    MIN_GRAMS,
    _strip_label,
    attach_citations,
    char_ngrams,
    cited_paths,
    gram_size,
    overlap,
    split_sentences,
)
from domain.metrics import citation_precision  # noqa: E402
from domain.pipeline import answer_prompt  # noqa: E402
from domain.style import detect_lang  # noqa: E402
from domain.types import Hit, Mode  # noqa: E402

VARIANTS = (
    "recorded",
    "whole-text",
    "answer-line",
    "answer-line|model",
    "answer-line|embed",
    "anchors",
    "answer-line+anchors",
    "answer-line+anchors|whole",
    "fallback",
    "answer-line+fallback",
)

_ANCHOR = re.compile(r"[a-z0-9][a-z0-9.\-:/+%]*")


def anchors(text: str) -> set[str]:
    """Language-neutral tokens of ``text``: ASCII runs holding a digit (numbers, codes, versions)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return {t.rstrip(".-:/") for t in _ANCHOR.findall(folded) if any(c.isdigit() for c in t)}


def anchor_share(sentence: str, passage: str) -> float:
    """Share of the sentence's anchors that stand in the passage as whole tokens."""
    wanted = anchors(sentence)
    if not wanted:
        return 0.0
    folded = unicodedata.normalize("NFKC", passage).casefold()
    found = sum(1 for a in wanted if re.search(rf"(?<![a-z0-9]){re.escape(a)}(?![a-z0-9])", folded))
    return found / len(wanted)


def cite_with_anchors(
    text: str, passages: Sequence[Hit], threshold: float = 0.45, fallback: bool = False
) -> list[str]:
    """Like ``attach_citations``, but a passage in another language than the sentence is scored by
    the share of the sentence's anchors it holds (n-grams do not cross languages)."""
    ordered = sorted(passages, key=lambda h: h.rank)
    sizes = [gram_size(h.chunk.text) for h in ordered]  # a passage's language, by its n-gram size
    cited: dict[str, str] = {}  # chunk id -> path, in first-cited order
    for raw in split_sentences(text):
        sentence = _TAG.sub(" ", _strip_label(raw)).strip()
        size = gram_size(sentence)
        short = len(char_ngrams(sentence, size)) < MIN_GRAMS
        scored = []
        for i, (h, h_size) in enumerate(zip(ordered, sizes, strict=True)):
            if h_size != size:
                score = anchor_share(sentence, h.chunk.text)
            else:
                score = 0.0 if short else overlap(sentence, h.chunk.text, size)
            scored.append((score, -i, h, h_size == size))
        if not scored:
            break
        if fallback:  # another language's passages only when none in the sentence's own matches
            same_best = [t for t in scored if t[3] and t[0] >= threshold]
            if same_best:
                scored = same_best
        score, _, hit, _ = max(scored, key=lambda t: (t[0], t[1]))
        if score >= threshold:
            cited.setdefault(hit.chunk.chunk_id, hit.chunk.path)
    return list(cited.values())


def rebuilt_prompt(assistant: Any, row: dict[str, Any]) -> Any:
    """The ``rag`` prompt a saved run's ``row`` was answered from, rebuilt (the same search and
    budget); stops the script when its passages differ from the ones the run recorded."""
    retrieval = assistant.retrieve(row["question"])
    prompt = answer_prompt(
        assistant.options, Mode.RAG, row["question"], retrieval.hits, assistant.generator.count_tokens
    )
    shown = [h.chunk.path for h in prompt.passages]
    recorded = row["results"]["rag"]["passages"]
    if shown != recorded:
        raise SystemExit(f"{row['id']}: passages differ from the run's ({shown} vs {recorded})")
    return prompt


def model_named(answer: str, user: str, passages: Sequence[Hit]) -> list[str]:
    """Shown files the answer's source line names, as [path] or as the prompt's [n]."""
    lines = answer.split("\n")
    line = lines[1] if len(lines) > 1 else ""
    known = list(dict.fromkeys(h.chunk.path for h in passages))
    out = [p for p in (repair_path(n, known) for n in named_files(line)) if p]
    for n in re.findall(r"\[(\d+)\]", line):
        m = re.search(rf"^\[{n}\] (\S+)", user, re.M)
        if m and m.group(1) in known:
            out.append(m.group(1))
    return list(dict.fromkeys(out))


def closest(embedder: Any, text: str, passages: Sequence[Hit], user: str) -> list[str]:
    cands = evidence.candidates(passages, user)
    if not cands:
        return []
    scores = embedder.embed_passages([c.text for c in cands]) @ embedder.embed_queries([text])[0]
    return [cands[int(np.argmax(scores))].hit.chunk.path]


def cited(variant: str, res: dict[str, Any], passages: Sequence[Hit], user: str, embedder: Any) -> list[str]:
    answer = res["answer"]
    line = answer.split("\n")[0]
    if variant == "recorded":
        return list(res["cited"])
    if variant == "whole-text":
        return cited_paths(attach_citations(answer, passages))
    if variant == "anchors":
        return cite_with_anchors(answer, passages)
    if variant == "fallback":
        return cite_with_anchors(answer, passages, fallback=True)
    if variant == "answer-line+fallback":
        return cite_with_anchors(line, passages, fallback=True)
    if variant.startswith("answer-line+anchors"):
        mine = cite_with_anchors(line, passages)
        return mine or (cite_with_anchors(answer, passages) if variant.endswith("|whole") else [])
    own = cited_paths(attach_citations(line, passages))
    if variant == "answer-line" or own:
        return own
    if variant == "answer-line|model":
        return model_named(answer, user, passages)
    return closest(embedder, _strip_label(line), passages, user)


def choose_passage(
    assistant: Any, messages: list[dict[str, Any]], question: str, answer: str
) -> tuple[str, str]:
    """(the file the model picks before answering, the file it names after its answer line), each
    the option it finds most likely among the shown passages."""
    user = str(messages[-1]["content"])
    numbered = re.findall(r"^\[(\d+)\] (\S+)", user, re.M)
    paths = dict(numbered)
    zh = detect_lang(question) == "zh"
    ask = (
        "\n\n哪一段资料回答了这个问题？只回答它的编号。"
        if zh
        else "\n\nWhich passage answers the question? Reply with its number only."
    )
    before = assistant.generator.choose(
        [*messages[:-1], {"role": "user", "content": user + ask}],
        [f"{n}]" for n, _ in numbered],
        adapter=False,
        prefill="[",
        method="likelihood",
    )
    label = "依据：" if zh else "Basis: "
    after = assistant.generator.choose(
        messages,
        [f"[{p}]" for p in dict.fromkeys(p for _, p in numbered)],
        adapter=False,
        prefill=answer.split("\n")[0] + "\n" + label,
        method="likelihood",
    )
    return paths.get(before.rstrip("]"), ""), after.strip("[]")


def main() -> None:
    name, profile, rows_file, translate, out = sys.argv[1:6]
    with_choice = "--choice" in sys.argv[6:]
    settings = with_profile(with_collection(load_settings(), name), profile)
    settings = settings.model_copy(
        update={
            "index": settings.index.model_copy(
                update={"translate_questions": "auto" if translate == "on" else "off"}
            )
        }
    )
    assistant = build_assistant(settings, use_corrections=False)
    from app.wiring.index import query_embedder

    embedder = query_embedder(settings, None)
    rows = [json.loads(x) for x in Path(rows_file).read_text(encoding="utf-8").splitlines() if x.strip()]
    per_row, sums = [], {v: {} for v in (*VARIANTS, "choice-before", "choice-after")}
    for row in rows:
        res = row["results"]["rag"]
        prompt = rebuilt_prompt(assistant, row)
        user = str(prompt.messages[-1]["content"])
        item: dict[str, Any] = {"id": row["id"], "kind": row["kind"], "sources": row["sources"]}
        for v in VARIANTS:
            item[v] = cited(v, res, prompt.passages, user, embedder)
        if with_choice and row["sources"]:
            item["choice-before"], item["choice-after"] = choose_passage(
                assistant, [dict(m) for m in prompt.messages], row["question"], res["answer"]
            )
            item["choice-before"], item["choice-after"] = [item["choice-before"]], [item["choice-after"]]
        for v in sums:
            if v not in item:
                continue
            precision = citation_precision(item[v], row["sources"]) if row["sources"] else None
            if precision is None:
                continue
            for key in ("all", row["kind"]):
                total = sums[v].setdefault(key, [0, 0.0])
                total[0] += 1
                total[1] += precision
        per_row.append(item)
    summary = {
        v: {k: {"rows": n, "citation_precision": round(s / n, 3)} for k, (n, s) in sorted(t.items())}
        for v, t in sums.items()
        if t
    }
    report = {
        "collection": name,
        "profile": profile,
        "rows_file": rows_file,
        "translate": translate,
        "summary": summary,
        "rows": per_row,
    }
    Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for v, t in summary.items():
        print(
            f"{v:18s} " + "  ".join(f"{k} {x['citation_precision']:.3f} ({x['rows']})" for k, x in t.items())
        )


if __name__ == "__main__":
    main()
