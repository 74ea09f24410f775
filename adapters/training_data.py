"""Training rows for the LoRA adapter: reading train JSONL and stored corrections, turning rows into
chat examples (plain, or RAFT-style with the source passage among distractors), replay mixing, the
validation split and the data hash.

Retrieval and prompt wording are passed in (``search``, ``build_messages``): this module never
imports the index, and the prompts are the answering pipeline's, so training matches inference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import DataError
from domain.style import detect_lang
from domain.types import Chunk, Hit

logger = logging.getLogger(__name__)

Message = dict[str, str]
SearchFn = Callable[[str, int], list[Hit]]
BuildMessagesFn = Callable[[str, str, Sequence[Hit]], list[Message]]  # (mode, question, hits)
LANGS = ("en", "zh")
REQUIRED_FIELDS = ("id", "lang", "question", "answer")
MAX_REPORTED = 20
SEARCH_K = 12


@dataclass(frozen=True)
class TrainRow:
    """One question with its house-style answer; ``sources`` are document paths (empty when the
    documents do not cover the question); ``passages`` are given only for corrections."""

    id: str
    lang: str
    question: str
    answer: str
    sources: tuple[str, ...] = ()
    origin: str = "train"
    passages: tuple[Hit, ...] = ()


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


def _problem_error(problems: list[str], what: str) -> DataError:
    shown = problems[:MAX_REPORTED]
    more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
    err = DataError(
        f"{len(problems)} malformed row(s) in {what}; nothing was trained:\n  "
        + "\n  ".join(shown)
        + more
        + "\nfix these rows (or remove them) and run the command again"
    )
    err.problems = problems  # type: ignore[attr-defined]
    return err


def _row_problem(obj: Any, seen: set[str]) -> str | None:
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    for name in REQUIRED_FIELDS:
        value = obj.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"field {name!r} is missing or not a non-empty string"
    if obj["lang"] not in LANGS:
        return f"lang {obj['lang']!r} is not one of {', '.join(LANGS)}"
    src = obj.get("source")
    if not (
        src is None
        or isinstance(src, str)
        or (isinstance(src, list) and all(isinstance(s, str) for s in src))
    ):
        return "field 'source' must be a path, a list of paths, or null"
    if obj["id"] in seen:
        return f"duplicate id {obj['id']!r}"
    return None


def load_train_rows(paths: Iterable[str | Path]) -> list[TrainRow]:
    """Read train JSONL files (``{"id","lang","question","source","answer"}`` per line).

    Every malformed row in every file is collected first, so the user fixes them all in one go.

    Raises:
        DataError: a file is missing or any row is malformed; the message names ``file:line`` for
            each bad row and nothing is returned.
    """
    rows: list[TrainRow] = []
    problems: list[str] = []
    seen: set[str] = set()
    names = []
    for path in paths:
        path = Path(path)
        names.append(str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(
                f"cannot read training file {path} ({e}) — check the path or pass --data FILE"
            ) from e
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})")
                continue
            problem = _row_problem(obj, seen)
            if problem:
                problems.append(f"{path}:{lineno}: {problem}")
                continue
            seen.add(obj["id"])
            src = obj.get("source")
            sources = tuple(src) if isinstance(src, list) else ((src,) if src else ())
            rows.append(
                TrainRow(
                    id=obj["id"],
                    lang=obj["lang"],
                    question=obj["question"].strip(),
                    answer=obj["answer"].strip(),
                    sources=sources,
                )
            )
    if problems:
        raise _problem_error(problems, ", ".join(names))
    if not rows:
        raise DataError(f"no training rows in {', '.join(names)} — add rows or point --data at another file")
    return rows


def _get(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def _passage_hits(raw: Any) -> tuple[Hit, ...]:
    """Passages stored with a correction (JSON text or a list of dicts/Hits) as Hits."""
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else []
    hits: list[Hit] = []
    for i, p in enumerate(raw or []):
        if isinstance(p, Hit):
            hits.append(p)
            continue
        c = p.get("chunk", p)
        chunk = Chunk(
            chunk_id=str(c.get("chunk_id", f"c{i}")),
            path=str(c.get("path", "")),
            title=str(c.get("title", "")),
            heading=str(c.get("heading", "")),
            text=str(c.get("text", "")),
            start=int(c.get("start", 0)),
            end=int(c.get("end", 0)),
            page=c.get("page"),
            lang=str(c.get("lang", "en")),
        )
        hits.append(Hit(chunk=chunk, score=float(p.get("score", 0.0)), rank=i + 1))
    return tuple(hits)


def rows_from_corrections(records: Iterable[Any]) -> list[TrainRow]:
    """Turn stored corrections (objects or dicts with question, mode, passages, corrected) into rows.

    The corrected answer is the target; the passages shown at the time become the row's context,
    and their paths its sources.

    Raises:
        DataError: a correction has no question or no corrected answer (named by its id).
    """
    rows: list[TrainRow] = []
    problems: list[str] = []
    for n, rec in enumerate(records, start=1):
        rid = str(_get(rec, "id", n))
        question = str(_get(rec, "question", "") or "").strip()
        corrected = str(_get(rec, "corrected", "") or "").strip()
        if not question or not corrected:
            problems.append(f"correction {rid}: question or corrected answer is empty")
            continue
        try:
            hits = _passage_hits(_get(rec, "passages"))
        except (ValueError, TypeError, AttributeError) as e:
            problems.append(f"correction {rid}: passages are not valid JSON ({e})")
            continue
        sources = tuple(dict.fromkeys(h.chunk.path for h in hits if h.chunk.path))
        rows.append(
            TrainRow(
                id=f"corr-{rid}",
                lang=detect_lang(question + corrected),
                question=question,
                answer=corrected,
                sources=sources,
                origin="correction",
                passages=hits,
            )
        )
    if problems:
        raise _problem_error(problems, "the corrections store")
    return rows


def replay_sample(base_rows: Sequence[TrainRow], n: int, *, seed: int) -> list[TrainRow]:
    """``n`` base rows drawn without replacement (all of them when ``n`` is larger), seeded."""
    rng = random.Random(seed)
    picked = list(base_rows) if n >= len(base_rows) else rng.sample(list(base_rows), n)
    return [
        TrainRow(
            id=r.id,
            lang=r.lang,
            question=r.question,
            answer=r.answer,
            sources=r.sources,
            origin="replay",
            passages=r.passages,
        )
        for r in picked
    ]


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
) -> tuple[list[Hit], bool] | None:
    """The context of a RAG-form example: (passages in random order, source present?)."""
    n_distract = rng.randint(*distractors)
    found: list[Hit] = list(row.passages[:1]) if row.passages else []
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
        chosen.insert(rng.randint(0, len(chosen)), found[0])
    return chosen, include


def build_examples(
    rows: Sequence[TrainRow],
    *,
    build_messages: BuildMessagesFn,
    search: SearchFn | None = None,
    rag_share: float = 0.4,
    source_prob: float = 0.7,
    distractors: tuple[int, int] = (2, 4),
    correction_repeats: int = 2,
    seed: int = 0,
) -> tuple[list[ChatExample], DataReport]:
    """Chat examples for ``rows``: every row in plain (``tuned``) form, and a seeded ``rag_share`` of
    them (all corrections that carry passages) also in RAG (``tuned_rag``) form.

    A RAG example holds the row's source passage with probability ``source_prob`` among
    ``distractors`` (inclusive range) passages from other documents, in random order; rows whose
    documents do not cover the question get distractors only. Corrections are repeated
    ``correction_repeats`` times so a few of them weigh against the replayed base rows.

    Args:
        rows: training rows (from ``load_train_rows``, ``rows_from_corrections``, ``replay_sample``).
        build_messages: the answering pipeline's prompt builder, called as (mode, question, hits).
        search: ``retriever.search``-shaped function (query, k) -> hits; None = plain form only.
        rag_share: share of base rows that also get a RAG-form example.
        source_prob: probability the source passage is present in a RAG example.
        distractors: (min, max) number of distractor passages.
        correction_repeats: copies of each correction example.
        seed: makes the sampling reproducible.
    """
    rng = random.Random(seed)
    report = DataReport(rows=len(rows))
    out: list[ChatExample] = []
    for row in rows:
        copies = correction_repeats if row.origin == "correction" else 1
        report.corrections += row.origin == "correction"
        report.replay += row.origin == "replay"
        forms: list[tuple[str, list[Hit], bool | None]] = [("plain", [], None)]
        wants_rag = (row.origin == "correction" and bool(row.passages)) or (
            search is not None and rng.random() < rag_share
        )
        if wants_rag:
            ctx = _rag_passages(
                row, rng, search, source_prob=source_prob, distractors=distractors, report=report
            )
            if ctx is not None:
                forms.append(("rag", ctx[0], ctx[1]))
        for kind, hits, present in forms:
            mode = "tuned_rag" if kind == "rag" else "tuned"
            messages = [
                *build_messages(mode, row.question, hits),
                {"role": "assistant", "content": row.answer},
            ]
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
