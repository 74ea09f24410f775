"""Plain-JSON forms of hits, citations and answers, for the corrections store, the CLI's saved
answers and the evaluation reports. Round trips are exact; unknown keys are ignored on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.errors import DataError
from domain.types import Answer, Chunk, Citation, Hit, Mode, Timing


def chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "path": chunk.path,
        "title": chunk.title,
        "heading": chunk.heading,
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "page": chunk.page,
        "lang": chunk.lang,
    }


def chunk_from_json(data: Mapping[str, Any], *, fallback_id: str = "c0") -> Chunk:
    page = data.get("page")
    return Chunk(
        chunk_id=str(data.get("chunk_id", fallback_id)),
        path=str(data.get("path", "")),
        title=str(data.get("title", "")),
        heading=str(data.get("heading", "")),
        text=str(data.get("text", "")),
        start=int(data.get("start", 0)),
        end=int(data.get("end", 0)),
        page=None if page is None else int(page),
        lang=str(data.get("lang", "en")),
    )


def hit_to_json(hit: Hit) -> dict[str, Any]:
    """``{"chunk": {...}, "score", "rank", "dense_score", "bm25_score", "dense_rank", "bm25_rank"}``."""
    return {
        "chunk": chunk_to_json(hit.chunk),
        "score": hit.score,
        "rank": hit.rank,
        "dense_score": hit.dense_score,
        "bm25_score": hit.bm25_score,
        "dense_rank": hit.dense_rank,
        "bm25_rank": hit.bm25_rank,
    }


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def hit_from_json(data: Mapping[str, Any], *, position: int = 1) -> Hit:
    """A ``Hit`` from ``hit_to_json`` output (or a bare chunk dict; its rank is then ``position``)."""
    chunk_data = data.get("chunk", data)
    return Hit(
        chunk=chunk_from_json(chunk_data, fallback_id=f"c{position}"),
        score=float(data.get("score", 0.0)),
        rank=int(data.get("rank", position)),
        dense_score=_opt_float(data.get("dense_score")),
        bm25_score=_opt_float(data.get("bm25_score")),
        dense_rank=_opt_int(data.get("dense_rank")),
        bm25_rank=_opt_int(data.get("bm25_rank")),
    )


def hits_from_json(items: Sequence[Mapping[str, Any]]) -> list[Hit]:
    return [hit_from_json(item, position=i) for i, item in enumerate(items, start=1)]


def citation_to_json(c: Citation) -> dict[str, Any]:
    return {
        "sentence": c.sentence,
        "chunk_id": c.chunk_id,
        "path": c.path,
        "heading": c.heading,
        "span": c.span,
        "score": c.score,
    }


def citation_from_json(data: Mapping[str, Any]) -> Citation:
    return Citation(
        sentence=str(data["sentence"]),
        chunk_id=str(data["chunk_id"]),
        path=str(data["path"]),
        heading=str(data.get("heading", "")),
        span=str(data.get("span", "")),
        score=float(data.get("score", 0.0)),
    )


def timing_to_json(t: Timing) -> dict[str, Any]:
    return {
        "retrieval_s": t.retrieval_s,
        "first_token_s": t.first_token_s,
        "total_s": t.total_s,
        "tokens": t.tokens,
        "tokens_per_s": t.tokens_per_s,
        "model_first_s": t.model_first_s,
        "translate_s": t.translate_s,
    }


def answer_to_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "mode": answer.mode.value,
        "text": answer.text,
        "reason": answer.reason,
        "passages": [hit_to_json(h) for h in answer.passages],
        "citations": [citation_to_json(c) for c in answer.citations],
        "timing": timing_to_json(answer.timing),
        "from_correction": answer.from_correction,
        "warnings": list(answer.warnings),
        "evidence": citation_to_json(answer.evidence) if answer.evidence else None,
        "searched_as": dict(answer.searched_as),
        "translated_from": answer.translated_from,
        "answered_by": answer.answered_by,
    }


def answer_from_json(data: Mapping[str, Any]) -> Answer:
    """An ``Answer`` from ``answer_to_json`` output.

    Raises:
        DataError: a required key is missing or the mode is unknown.
    """
    try:
        t = data.get("timing", {})
        return Answer(
            question=str(data["question"]),
            mode=Mode(str(data["mode"])),
            text=str(data["text"]),
            reason=str(data.get("reason", "")),
            passages=hits_from_json(data.get("passages", [])),
            citations=[citation_from_json(c) for c in data.get("citations", [])],
            timing=Timing(
                retrieval_s=float(t.get("retrieval_s", 0.0)),
                first_token_s=float(t.get("first_token_s", 0.0)),
                total_s=float(t.get("total_s", 0.0)),
                tokens=int(t.get("tokens", 0)),
                model_first_s=None if t.get("model_first_s") is None else float(t["model_first_s"]),
                translate_s=float(t.get("translate_s") or 0.0),
            ),
            from_correction=bool(data.get("from_correction", False)),
            warnings=[str(w) for w in data.get("warnings", [])],
            evidence=citation_from_json(data["evidence"]) if data.get("evidence") else None,
            searched_as={str(k): str(v) for k, v in (data.get("searched_as") or {}).items()},
            translated_from=str(data.get("translated_from") or ""),
            answered_by=str(data.get("answered_by") or ""),
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"not a stored answer ({e}) — ask the question again") from e
