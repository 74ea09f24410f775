"""Retrieval metrics: recall@k, reciprocal rank and source coverage over ranked source paths, and
their averages overall and per group (kind, language).

Pure functions over plain sequences; running retrievers and reading eval rows belong to ``app``.
A ranked list holds one source path per retrieved passage (paths may repeat when several passages
come from one document).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass


def first_relevant_rank(ranked: Sequence[str], relevant: Collection[str], k: int) -> int | None:
    """1-based rank of the first passage in the top ``k`` whose source is relevant, else None."""
    for i, source in enumerate(ranked[:k], start=1):
        if source in relevant:
            return i
    return None


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when any relevant source appears in the top ``k`` passages, else 0.0."""
    return 0.0 if first_relevant_rank(ranked, relevant, k) is None else 1.0


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1 / rank of the first relevant passage within the top ``k`` (0.0 when none is there)."""
    rank = first_relevant_rank(ranked, relevant, k)
    return 0.0 if rank is None else 1.0 / rank


def source_coverage(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the distinct relevant sources that appear in the top ``k`` passages."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


@dataclass(frozen=True)
class RetrievalOutcome:
    """One eval question's ranked sources next to the sources that answer it."""

    row_id: str
    kind: str
    lang: str
    ranked: tuple[str, ...]
    relevant: tuple[str, ...]


def summarize(outcomes: Sequence[RetrievalOutcome], k: int) -> dict[str, float | int]:
    """Mean recall@k and MRR (MRR@k) over ``outcomes``; ``source_share@k`` is added when some
    outcome lists more than one relevant source (multi-hop questions)."""
    n = len(outcomes)
    out: dict[str, float | int] = {"n": n}
    if n == 0:
        out[f"recall@{k}"] = 0.0
        out["mrr"] = 0.0
        return out
    out[f"recall@{k}"] = sum(recall_at_k(o.ranked, o.relevant, k) for o in outcomes) / n
    out["mrr"] = sum(reciprocal_rank(o.ranked, o.relevant, k) for o in outcomes) / n
    multi = [o for o in outcomes if len(set(o.relevant)) > 1]
    if multi:
        out[f"source_share@{k}"] = sum(source_coverage(o.ranked, o.relevant, k) for o in multi) / len(multi)
    return out


def summarize_by(
    outcomes: Sequence[RetrievalOutcome], key: Callable[[RetrievalOutcome], str], k: int
) -> dict[str, dict[str, float | int]]:
    """``summarize`` per group, groups in sorted order of their key."""
    groups: dict[str, list[RetrievalOutcome]] = {}
    for o in outcomes:
        groups.setdefault(key(o), []).append(o)
    return {name: summarize(groups[name], k) for name in sorted(groups)}
