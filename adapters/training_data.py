"""Training examples for the LoRA adapter: rows turned into chat examples (plain, or RAFT-style
with the source passage among distractors), the validation split, the data hash and the examples
file a job keeps for resume.

Retrieval and prompt wording are passed in (``search``, ``build_messages``): this module never
imports the index, and the prompts are the answering pipeline's, so training matches inference.
Reading rows (train JSONL, corrections, replay) is ``adapters.training_rows``'.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.training_rows import (  # noqa: F401  (re-exported: one import for callers)
    TrainRow,
    load_train_rows,
    replay_sample,
    rows_from_corrections,
)
from domain.errors import DataError
from domain.types import Hit

logger = logging.getLogger(__name__)

Message = dict[str, str]
SearchFn = Callable[[str, int], list[Hit]]
BuildMessagesFn = Callable[[str, str, Sequence[Hit]], list[Message]]  # (mode, question, hits)
SEARCH_K = 12


@dataclass(frozen=True)
class ChatExample:
    """Chat messages ending with the assistant answer the loss is taken on."""

    id: str
    row_id: str
    kind: str  # "plain" | "rag"
    messages: tuple[Message, ...]
    origin: str = "train"
    source_present: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row_id": self.row_id,
            "kind": self.kind,
            "origin": self.origin,
            "source_present": self.source_present,
            "messages": [dict(m) for m in self.messages],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ChatExample:
        return cls(
            id=obj["id"],
            row_id=obj["row_id"],
            kind=obj["kind"],
            origin=obj.get("origin", "train"),
            source_present=obj.get("source_present"),
            messages=tuple({"role": m["role"], "content": m["content"]} for m in obj["messages"]),
        )


@dataclass
class DataReport:
    """What building the examples did, for logs and the job file."""

    rows: int = 0
    plain: int = 0
    rag: int = 0
    rag_with_source: int = 0
    rag_source_not_found: int = 0
    corrections: int = 0
    replay: int = 0
    notes: list[str] = field(default_factory=list)


def _is_source(hit: Hit, sources: Sequence[str]) -> bool:
    path = hit.chunk.path
    return any(path == s or path.endswith("/" + s) or s.endswith("/" + path) for s in sources)


def _rag_passages(
    row: TrainRow,
    rng: random.Random,
    search: SearchFn | None,
    *,
    source_prob: float,
    distractors: tuple[int, int],
    report: DataReport,
) -> tuple[list[Hit], list[Hit]] | None:
    """The context of a RAG-form example: (passages ranked in a random order, the source passages
    among them — empty when the source was left out or the row has none)."""
    n_distract = rng.randint(*distractors)
    found: list[Hit] = list(row.passages)
    others: list[Hit] = []
    if search is not None:
        hits = search(row.question, SEARCH_K)
        if row.sources and not found:
            found = [h for h in hits if _is_source(h, row.sources)][:1]
        others = [h for h in hits if not _is_source(h, row.sources) and h not in row.passages]
    if row.sources and not found:
        report.rag_source_not_found += 1
        return None
    include = bool(found) and (row.origin == "correction" or rng.random() < source_prob)
    chosen = rng.sample(others, min(n_distract, len(others)))
    if not include and not chosen:
        return None
    if include:
        for hit in found:
            chosen.insert(rng.randint(0, len(chosen)), hit)
    # the prompt builder orders (and trims) passages by rank: rank them in this random order
    ranked = [dataclasses.replace(h, rank=i) for i, h in enumerate(chosen, start=1)]
    return ranked, [h for h in ranked if include and h.chunk.chunk_id in {f.chunk.chunk_id for f in found}]


def _shows(messages: Sequence[Message], hit: Hit) -> bool:
    """Whether the (possibly trimmed) prompt still shows the passage: its opening words are there."""
    head = hit.chunk.text.strip()[:40]
    return bool(head) and any(head in m["content"] for m in messages if m["role"] == "user")


def _rebuild_with_source_shown(
    build_messages: BuildMessagesFn,
    question: str,
    hits: list[Hit],
    sources: list[Hit],
    prompt: list[Message],
    rng: random.Random,
) -> list[Message]:
    """The prompt budget cut the source passage off: move it to a random place among the passages
    that do fit, so the source is present as often as ``source_prob`` says."""
    shown = max(1, sum(_shows(prompt, h) for h in hits))
    ids = {s.chunk.chunk_id for s in sources}
    rest = [h for h in hits if h.chunk.chunk_id not in ids]
    order = rest[:]
    for src in sources:
        order.insert(rng.randint(0, min(shown - 1, len(order))), src)
    ranked = [dataclasses.replace(h, rank=i) for i, h in enumerate(order, start=1)]
    return build_messages("tuned_rag", question, ranked)


def build_examples(
    rows: Sequence[TrainRow],
    *,
    build_messages: BuildMessagesFn,
    search: SearchFn | None = None,
    rag_share: float = 0.4,
    source_prob: float = 0.7,
    distractors: tuple[int, int] = (2, 4),
    correction_repeats: int = 8,
    seed: int = 0,
) -> tuple[list[ChatExample], DataReport]:
    """Chat examples for ``rows``: every row in plain (``tuned``) form, and a seeded ``rag_share`` of
    them (all corrections that carry passages) also in RAG (``tuned_rag``) form.

    A RAG example holds the row's source passage with probability ``source_prob`` among
    ``distractors`` (inclusive range) passages from other documents, in random order; rows whose
    documents do not cover the question get distractors only. A correction is repeated
    ``correction_repeats`` times in the form it was corrected in (RAG when it carries the passages
    it was answered from, plain otherwise) so a few of them weigh against the replayed base rows;
    its other form, when it has one, appears once (it teaches the same answer at several times the
    tokens of a plain example).

    Args:
        rows: training rows (from ``load_train_rows``, ``rows_from_corrections``, ``replay_sample``).
        build_messages: the answering pipeline's prompt builder, called as (mode, question, hits).
        search: ``retriever.search``-shaped function (query, k) -> hits; None = plain form only.
        rag_share: share of base rows that also get a RAG-form example.
        source_prob: probability the source passage is present in a RAG example.
        distractors: (min, max) number of distractor passages.
        correction_repeats: copies of each correction in the form it was corrected in.
        seed: makes the sampling reproducible.
    """
    rng = random.Random(seed)
    report = DataReport(rows=len(rows))
    out: list[ChatExample] = []
    for row in rows:
        is_correction = row.origin == "correction"
        main_form = "rag" if is_correction and row.passages else "plain"
        report.corrections += is_correction
        report.replay += row.origin == "replay"
        forms: list[tuple[str, list[Hit], list[Hit]]] = [("plain", [], [])]
        wants_rag = main_form == "rag" or (search is not None and rng.random() < rag_share)
        if wants_rag:
            ctx = _rag_passages(
                row, rng, search, source_prob=source_prob, distractors=distractors, report=report
            )
            if ctx is not None:
                forms.append(("rag", ctx[0], ctx[1]))
        for kind, hits, sources in forms:
            mode = "tuned_rag" if kind == "rag" else "tuned"
            prompt = build_messages(mode, row.question, hits)
            if sources and not any(_shows(prompt, h) for h in sources):
                prompt = _rebuild_with_source_shown(build_messages, row.question, hits, sources, prompt, rng)
            present = None if kind == "plain" else any(_shows(prompt, h) for h in sources)
            messages = [*prompt, {"role": "assistant", "content": row.answer}]
            copies = correction_repeats if is_correction and kind == main_form else 1
            for c in range(copies):
                suffix = f"#{c}" if copies > 1 else ""
                out.append(
                    ChatExample(
                        id=f"{row.id}:{kind}{suffix}",
                        row_id=row.id,
                        kind=kind,
                        messages=tuple(messages),
                        origin=row.origin,
                        source_present=present,
                    )
                )
                report.plain += kind == "plain"
                report.rag += kind == "rag"
                report.rag_with_source += bool(present)
    if report.rag_source_not_found:
        report.notes.append(
            f"{report.rag_source_not_found} row(s) stayed plain: their source passage was "
            "not among the retrieved passages (is the corpus indexed?)"
        )
    logger.info(
        "built %d examples from %d rows (%d plain, %d rag, %d with source)",
        len(out),
        len(rows),
        report.plain,
        report.rag,
        report.rag_with_source,
    )
    return out, report


def split_validation(
    examples: Sequence[ChatExample], *, share: float, seed: int
) -> tuple[list[ChatExample], list[ChatExample]]:
    """(train, validation): a seeded ``share`` of base row ids goes to validation with all their forms.

    Corrections always stay in training (they are what the user asked the model to learn).
    """
    row_ids = sorted({e.row_id for e in examples if e.origin != "correction"})
    n_val = int(round(len(row_ids) * share)) if share > 0 else 0
    if share > 0 and len(row_ids) >= 10:
        n_val = max(1, n_val)
    val_ids = set(random.Random(seed).sample(row_ids, min(n_val, len(row_ids)))) if n_val else set()
    train = [e for e in examples if e.row_id not in val_ids]
    val = [e for e in examples if e.row_id in val_ids]
    return train, val


def data_hash(examples: Sequence[ChatExample]) -> str:
    """sha256 of the examples' canonical JSON (order matters: it is the training order's input)."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps(e.to_json(), ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def write_examples(path: str | Path, examples: Sequence[ChatExample]) -> None:
    """Save examples as JSONL atomically (the job folder keeps them for resume)."""
    from domain.atomic import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples))


def read_examples(path: str | Path) -> list[ChatExample]:
    """Load examples saved by ``write_examples``.

    Raises:
        DataError: the file is missing or a line is not an example (named by file:line).
    """
    path = Path(path)
    out: list[ChatExample] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read examples file {path} ({e}) — start a new training job") from e
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(ChatExample.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(
                f"{path}:{lineno}: not a training example ({e}) — start a new training job"
            ) from e
    return out


def default_build_messages(mode: str, question: str, hits: Sequence[Hit]) -> list[Message]:
    """A minimal prompt builder for tests and tools with no answering pipeline at hand."""
    system = "Answer in the house style: Conclusion, Basis, Note."
    if mode == "tuned_rag" and hits:
        ctx = "\n\n".join(f"[{i}] {h.chunk.path}\n{h.chunk.text}" for i, h in enumerate(hits, start=1))
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Passages:\n{ctx}\n\nQuestion: {question}"},
        ]
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]
