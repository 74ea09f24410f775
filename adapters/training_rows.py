"""Training rows: reading and validating train JSONL (every malformed row reported by file and
line, nothing returned), turning stored corrections into rows, and drawing a replay sample.

What the rows become (chat examples, RAG form) is ``adapters.training_data``'s business.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.dataset_build import row_problem
from domain.errors import DataError
from domain.serialize import hit_from_json
from domain.style import detect_lang
from domain.types import Hit

LANGS = ("en", "zh")
MAX_REPORTED = 20


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
    """What is wrong with a training row (``domain.dataset_build.row_problem``, the check imports
    and dataset builds use), or a repeated id; None when it is fine."""
    problem = row_problem(obj, "train")
    if problem is None and obj["id"] in seen:
        return f"duplicate id {obj['id']!r}"
    return problem


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
    """Passages stored with a correction (its JSON text, or a list of hit dicts or Hits) as Hits."""
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else []
    return tuple(
        p if isinstance(p, Hit) else hit_from_json(p, position=i) for i, p in enumerate(raw or [], start=1)
    )


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
