"""`hybrid eval --retrieval`: recall@k and MRR of dense, BM25 and hybrid search on the eval rows,
overall and per kind and language, with the share of listed sources found for multi-hop rows; when
a model translates questions (``index.translate_questions``), also of "translated" hybrid search.

Reads eval JSONL rows ({"id", "lang", "kind", "question", "source", ...}; ``source`` is a path
relative to the indexed folder, a list of them for multi_hop, null for out_of_domain, which is left
out of the scores). The metric arithmetic lives in ``domain.retrieval_metrics``.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from app.wiring.collections import REPO_ROOT
from domain.errors import ConfigError, DataError
from domain.retrieval_metrics import RetrievalOutcome, summarize, summarize_by

if TYPE_CHECKING:
    from domain.crosslingual import TranslatingRetriever
    from index.hybrid import HybridRetriever

logger = logging.getLogger(__name__)

METHODS = ("dense", "bm25", "hybrid")
TRANSLATED = "translated"
UNSCORED_KINDS = frozenset({"out_of_domain", "correction"})  # no right passage to find


def eval_files(spec: str | None, default: Path | None = None) -> list[Path]:
    """Files named by ``spec``: a path, a glob, or a comma-separated list of either; without one,
    ``default`` (the collection's evaluation set).

    Raises:
        DataError: nothing matches.
    """
    if not spec:
        if default is None or not default.is_file():
            raise DataError(
                "this collection has no evaluation set yet — build one with `hybrid dataset build`, "
                "or pass --eval-set FILE (JSONL rows with question and source)"
            )
        spec = str(default)
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        matches = sorted(glob.glob(part)) or sorted(glob.glob(str(REPO_ROOT / part)))
        files.extend(Path(m) for m in matches if Path(m).is_file())
    if not files:
        raise DataError(
            f"no eval file matches '{spec}' — pass --eval-set FILE (JSONL rows with question and source)"
        )
    return files


MAX_EVAL_FILE_MB = 64


def read_jsonl_text(path: Path) -> str:
    """The text of a JSONL file (UTF-8, a BOM allowed).

    Raises:
        DataError: missing, larger than ``MAX_EVAL_FILE_MB``, or not UTF-8 (the byte offset is named).
    """
    try:
        size = path.stat().st_size
        if size > MAX_EVAL_FILE_MB * 1e6:
            raise DataError(
                f"{path} is {size / 1e6:.0f} MB, over the {MAX_EVAL_FILE_MB} MB limit — split it into smaller files"
            )
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (bad byte at offset {e.start}) — save it as UTF-8") from e
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}) — check the path") from e


def load_eval_rows(files: Sequence[Path]) -> list[dict[str, Any]]:
    """All rows of the JSONL ``files`` in order.

    Raises:
        DataError: a file is unreadable, not UTF-8 or too large; a line is not a JSON object with a
            question (file and line named); or the files hold no row at all.
    """
    rows: list[dict[str, Any]] = []
    for path in files:
        for number, line in enumerate(read_jsonl_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{number} is not valid JSON ({e.msg}) — fix or remove that line"
                ) from e
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("question"), str)
                or not row["question"].strip()
            ):
                raise DataError(f"{path}:{number} has no 'question' — every eval row needs one")
            rows.append(row)
    if not rows:
        names = ", ".join(str(p) for p in files)
        raise DataError(f"{names} holds no eval rows — add JSONL rows with question and source")
    return rows


def select_rows(
    rows: Sequence[dict[str, Any]], *, kinds: str | None, split: str | None, limit: int | None
) -> list[dict[str, Any]]:
    """The rows of the comma-separated ``kinds`` and of ``split`` ("tune" or "heldout"; rows without
    a split field count as "tune"), then the first ``limit``.

    Raises:
        ConfigError: no row is left.
    """
    out = list(rows)
    if kinds:
        wanted = {k.strip() for k in kinds.split(",") if k.strip()}
        out = [r for r in out if r.get("kind") in wanted]
    if split:
        out = [r for r in out if r.get("split", "tune") == split]
    if limit:
        out = out[:limit]
    if not out:
        raise ConfigError("no eval rows left after --kinds/--split/--limit — loosen the filters")
    return out


def is_scored(row: dict[str, Any]) -> bool:
    """Whether retrieval is scored on ``row``: it names a source and is not of an unscored kind."""
    return row.get("kind") not in UNSCORED_KINDS and bool(relevant_sources(row))


def relevant_sources(row: dict[str, Any]) -> tuple[str, ...]:
    """The row's source paths, normalised to POSIX paths without a leading './'."""
    src = row.get("source")
    items = src if isinstance(src, list) else ([] if src is None else [src])
    return tuple(str(s).replace("\\", "/").removeprefix("./") for s in items if s)


def evaluate(
    retriever: HybridRetriever,
    rows: Sequence[dict[str, Any]],
    *,
    k: int,
    translated: TranslatingRetriever | None = None,
) -> dict[str, Any]:
    """Scores of each method on the rows that have sources (out-of-domain rows are excluded);
    with ``translated``, also "translated": hybrid search with the question translated into the
    index's other languages (what answers use when a translator is set up)."""
    scored = [r for r in rows if is_scored(r)]
    questions = [str(r["question"]) for r in scored]
    indexed = {c.path for c in retriever.chunks}
    missing = sorted({s for r in scored for s in relevant_sources(r)} - indexed)
    report: dict[str, Any] = {"n_scored": len(scored), "retrieval": {}, "misses": {}}
    methods = [*METHODS, TRANSLATED] if translated is not None else list(METHODS)
    for method in methods:
        if method == TRANSLATED:
            assert translated is not None
            results = [translated.search(q, k=k) for q in questions]
        else:
            results = retriever.search_many(questions, k=k, method=method)
        outcomes = [
            RetrievalOutcome(
                row_id=str(r.get("id", i)),
                kind=str(r.get("kind", "")),
                lang=str(r.get("lang", "")),
                ranked=tuple(h.chunk.path for h in hits),
                relevant=relevant_sources(r),
            )
            for i, (r, hits) in enumerate(zip(scored, results, strict=True))
        ]
        summary: dict[str, Any] = dict(summarize(outcomes, k))
        summary["by_kind"] = summarize_by(outcomes, lambda o: o.kind, k)
        summary["by_lang"] = summarize_by(outcomes, lambda o: o.lang, k)
        report["retrieval"][method] = summary
        report["misses"][method] = [o.row_id for o in outcomes if not set(o.ranked[:k]) & set(o.relevant)]
    report["missing_sources"] = missing
    return report


def run_retrieval_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of `hybrid eval --retrieval` (arguments defined in app.commands.eval_cmd)."""
    from app.commands.progress import emit_or_show
    from app.wiring.collections import get_collection
    from app.wiring.generation import build_translator
    from app.wiring.index import build_retriever, query_embedder
    from domain.crosslingual import TranslatingRetriever

    files = eval_files(args.eval_set, get_collection(settings).eval_set)
    rows = select_rows(load_eval_rows(files), kinds=args.kinds, split=args.split, limit=args.limit)
    if not any(is_scored(r) for r in rows):
        raise DataError(
            f"none of the {len(rows)} eval rows left names a source to score — loosen --kinds/--limit "
            "or give rows a 'source'"
        )
    embedder = query_embedder(settings)
    retriever = build_retriever(settings, embedder=embedder)
    translate = build_translator(settings)
    translated = TranslatingRetriever(retriever, translate) if translate is not None else None
    k = args.k or settings.index.top_k
    report = evaluate(retriever, rows, k=k, translated=translated)
    excluded: dict[str, int] = {}
    for r in rows:
        if not is_scored(r):
            excluded[str(r.get("kind"))] = excluded.get(str(r.get("kind")), 0) + 1
    out = {
        "n_rows": len(rows),
        "k": k,
        "collection": settings.collection,
        "eval_files": [str(f) for f in files],
        "excluded": excluded,
        **report,
    }
    if report["missing_sources"]:
        logger.warning(
            "%d eval sources are not in the index: %s",
            len(report["missing_sources"]),
            ", ".join(report["missing_sources"][:5]),
        )
    return emit_or_show(out, args.json_path, _print_report)


def _print_report(out: dict[str, Any]) -> None:
    k = out["k"]
    print(
        f"retrieval on {out['n_scored']} of {out['n_rows']} rows (collection '{out['collection']}', k={k}); "
        f"excluded: {out['excluded'] or 'none'}"
    )
    print(f"{'method':10} {'group':22} {'n':>4} {f'recall@{k}':>9} {'MRR':>6} {'sources':>8}")
    for method in out["retrieval"]:
        m = out["retrieval"][method]
        groups = (
            [("all", m)]
            + [(f"kind={g}", v) for g, v in m["by_kind"].items()]
            + [(f"lang={g}", v) for g, v in m["by_lang"].items()]
        )
        for name, g in groups:
            share = g.get(f"source_share@{k}")
            print(
                f"{method:10} {name:22} {g['n']:>4} {g[f'recall@{k}']:>9.3f} {g['mrr']:>6.3f} "
                f"{'' if share is None else f'{share:.3f}':>8}"
            )
    if out["missing_sources"]:
        print(
            f"warning: {len(out['missing_sources'])} eval sources are not in the index, e.g. "
            + ", ".join(out["missing_sources"][:3])
        )
