"""`hybrid index PATH` (build or incrementally sync an index, with a progress bar and a summary),
`hybrid index --to-qdrant` / `--to-faiss` (move a collection's vectors between the stores without
embedding again) and `hybrid search "q"` (hybrid hits with dense and BM25 scores). The work lives in
``app.wiring.index``; this module parses arguments and renders results.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from app.commands.args import add_collection, positive_int
from app.commands.progress import add_json_option, emit_json, emit_or_show, progress_bar
from app.settings import Settings
from domain.errors import ConfigError
from domain.plain import one_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="index a folder of documents (only new and changed files are embedded)")
    p.add_argument("path", nargs="?", default=None, help="folder with .md .txt .rst .html .pdf .docx files")
    add_collection(p, "--name")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and embed everything")
    p.add_argument(
        "--vectors",
        choices=("float", "int8"),
        default=None,
        help="int8 (the embedder's int8 copy, faster on the CPU) or float vectors; default: the "
        "index's own kind, else the settings' (HYBRID_INDEX__EMBED_PRECISION). Another kind than "
        "the index's needs --rebuild",
    )
    move = p.add_mutually_exclusive_group()
    move.add_argument(
        "--to-qdrant",
        dest="move_to",
        action="store_const",
        const="qdrant",
        help="then move the collection's vectors to Qdrant without embedding again (the server of "
        "HYBRID_QDRANT__URL, else in-process); PATH may be left out",
    )
    move.add_argument(
        "--to-faiss",
        dest="move_to",
        action="store_const",
        const="faiss",
        help="then move the collection's vectors back to FAISS; PATH may be left out",
    )
    add_json_option(p, "the summary")
    p.set_defaults(func=run_index)

    s = sub.add_parser("search", help="search an index (hybrid dense + BM25)")
    s.add_argument("query", help="the question or keywords")
    s.add_argument(
        "--k", type=positive_int, default=None, help="hits to show (default: settings.index.top_k)"
    )
    add_collection(s, "--index")
    add_json_option(s, "hits")
    s.set_defaults(func=run_search)


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.embedder import build_embedder, vectors_precision
    from app.wiring.index import index_dir, index_vectors, sync_index

    index_dir(settings)  # a bad name fails here, before any model loads
    if args.path is None:
        if args.move_to is None:
            raise ConfigError(
                "name the folder to index (`hybrid index PATH`), or move vectors with --to-qdrant"
            )
        return _run_move(args, settings)
    quiet = args.json_path == "-"
    vectors = args.vectors or (None if args.rebuild else index_vectors(settings))
    embedder = build_embedder(settings, precision=vectors_precision(settings, vectors))
    with progress_bar("indexing", quiet=quiet) as on_progress:
        report = sync_index(
            settings,
            args.path,
            rebuild=args.rebuild,
            embedder=embedder,
            on_progress=on_progress,
        )
    if args.move_to is None or _already_there(settings, args.move_to):
        return emit_or_show(report.to_dict(), args.json_path, _print_summary)
    if not args.json_path:
        _print_summary(report.to_dict())
    return _run_move(args, settings)  # with --json, the move's report


def _already_there(settings: Settings, target: str) -> bool:
    """Whether the synced collection's vectors are where ``target`` (and the Qdrant URL setting)
    would move them: the sync wrote them there."""
    from app.wiring.index import index_manifest

    entry = (index_manifest(settings) or {}).get("qdrant")
    if not isinstance(entry, dict):
        return target == "faiss"
    return target == "qdrant" and entry.get("location") == ("url" if settings.qdrant.url else "path")


def _run_move(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.index import move_index

    with progress_bar("moving vectors", quiet=args.json_path == "-") as on_progress:
        report = move_index(settings, to=args.move_to, on_progress=on_progress)
    return emit_or_show(report.to_dict(), args.json_path, _print_move)


def _print_move(r: dict[str, Any]) -> None:
    where = {"path": "in-process", "url": "on the server"}.get(r["location"], "")
    print(
        f"index '{r['name']}' moved from {r['moved_from']} to {r['moved_to']}"
        + (f" ({where}, collection {r['collection']})" if where else "")
        + f" as {r['generation']}: {r['chunks']} chunks, {r['vectors']} vectors in {r['seconds']:.1f} s"
    )


def _print_summary(r: dict[str, Any]) -> None:
    verb = "updated" if r["changed"] else "unchanged"
    print(
        f"index '{r['name']}' {verb} ({r['generation']}): {r['files_indexed']} files, "
        f"{r['chunks_total']} chunks in {r['seconds']:.1f} s"
    )
    print(
        f"  files: {r['files_new']} new, {r['files_changed']} changed, {r['files_unchanged']} unchanged, "
        f"{r['files_deleted']} removed" + (f", {r['files_resumed']} resumed" if r["files_resumed"] else "")
    )
    print(f"  chunks embedded: {r['chunks_embedded']}; vector index: {_ann_line(r['ann'])}")
    skipped = r["skipped"]
    if skipped:
        counts = Counter(s["reason"] for s in skipped)
        print(
            f"  skipped {len(skipped)} files: " + ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
        )
        for s in skipped[:50]:
            print(one_line(f"    {s['path']}: {s['reason']}" + (f" — {s['detail']}" if s["detail"] else "")))
        if len(skipped) > 50:
            print(f"    … and {len(skipped) - 50} more (see --json)")


def _ann_line(ann: dict[str, Any]) -> str:
    if ann.get("kind") == "qdrant":
        return "Qdrant (dense + sparse BM25, fused in Qdrant)"
    if ann.get("kind") == "hnsw":
        return f"HNSW, recall@10 {ann['recall_at_10']:.3f} at efSearch {ann['ef_search']}"
    return "exact (flat inner product)"


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.embedder import build_embedder
    from app.wiring.index import build_retriever, index_dir

    index_dir(settings)  # a bad name fails here, before any model loads
    embedder = build_embedder(settings)
    retriever = build_retriever(settings, embedder=embedder)
    k = args.k or settings.index.top_k
    t0 = time.perf_counter()
    hits = retriever.search(args.query, k=k)
    seconds = time.perf_counter() - t0
    rows = [
        {
            "rank": h.rank,
            "score": round(h.score, 6),
            "dense_score": None if h.dense_score is None else round(h.dense_score, 4),
            "bm25_score": None if h.bm25_score is None else round(h.bm25_score, 4),
            "dense_rank": h.dense_rank,
            "bm25_rank": h.bm25_rank,
            "path": h.chunk.path,
            "title": h.chunk.title,
            "heading": h.chunk.heading,
            "page": h.chunk.page,
            "start": h.chunk.start,
            "end": h.chunk.end,
            "chunk_id": h.chunk.chunk_id,
            "text": h.chunk.text,
        }
        for h in hits
    ]
    if args.json_path:
        emit_json({"query": args.query, "k": k, "seconds": round(seconds, 4), "hits": rows}, args.json_path)
        if args.json_path == "-":
            return 0
    if not rows:
        print("no hits (is the index empty?)")
    for r in rows:
        where = (
            r["path"]
            + (f" p.{r['page']}" if r["page"] else "")
            + (f" § {r['heading']}" if r["heading"] else "")
        )
        dense = "-" if r["dense_score"] is None else f"{r['dense_score']:.3f}"
        bm25 = "-" if r["bm25_score"] is None else f"{r['bm25_score']:.2f}"
        print(f"{r['rank']}. {one_line(where)}  [fused {r['score']:.4f} · dense {dense} · bm25 {bm25}]")
        snippet = one_line(" ".join(r["text"].split()))
        print(f"   {snippet[:200]}{'…' if len(snippet) > 200 else ''}")
    print(f"({seconds * 1000:.0f} ms)")
    return 0
