"""Indexing and query benchmarks on the sample corpus, every figure next to a baseline measured in
the same run.

1. Throughput: the sample corpus is replicated (each copy's text files get a copy line, so every
   file is distinct) to ``--chunks`` chunks; end-to-end indexing (read, split, embed, BM25, FAISS,
   save) is timed against raw ``embed_passages`` of the same chunk texts with one torch thread;
   medians of ``--runs``. The ratio is given in process CPU time (robust when other jobs share the
   cores) and in wall time.
2. Query latency with one thread at ``--sizes`` vectors: the corpus's real chunk vectors replicated
   with small noise (and their BM25 tokens with a copy marker), queried with the eval questions;
   p50/p95 of dense, BM25, hybrid, query embedding, and embedding + hybrid.

Run: ``python bench/index.py [--chunks 600] [--runs 3] [--sizes 20000,100000]`` (several minutes on
a CPU; use nohup). The issue's figures come from ``--chunks 20000 --runs 3``: about 70 minutes on one
core. The real e5 embedder is used when present, else MiniLM, with a message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".html", ".htm"}


def replicate_corpus(src: Path, dest: Path, copies: int) -> None:
    """``copies`` copies of ``src`` under ``dest/copyNNN``; text files get a distinct last line."""
    for n in range(copies):
        for f in sorted(src.rglob("*")):
            if not f.is_file() or any(p.startswith(".") for p in f.relative_to(src).parts):
                continue
            out = dest / f"copy{n:03d}" / f.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix.lower() in TEXT_SUFFIXES:
                text = f.read_text(encoding="utf-8", errors="replace")
                out.write_text(text.rstrip("\n") + f"\n\nCopy {n} of this document.\n", encoding="utf-8")
            else:
                shutil.copyfile(f, out)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0


def load_embedder(settings):  # noqa: ANN001, ANN201
    from app.wiring.embedder import build_embedder
    from domain.errors import ModelMissingError

    try:
        return build_embedder(settings)
    except ModelMissingError as e:
        print(f"NOTE: the e5 embedder is not available ({e}); falling back to MiniLM (English-only)")
        settings.models.embedder = "minilm"
        return build_embedder(settings)


def bench_throughput(settings, embedder, docs: Path, target_chunks: int, runs: int, work: Path) -> list[str]:  # noqa: ANN001
    import torch

    from app.wiring.index import splitter_settings, sync_options
    from index import store
    from index.splitter import index_text
    from index.sync import sync_folder

    torch.set_num_threads(1)  # CPU time is then a fair measure even on a busy machine
    split = splitter_settings(settings)
    opts = sync_options(settings, rebuild=True)
    probe = sync_folder(docs, work / "probe-index", embedder=embedder, splitter=split, options=opts)
    per_copy = max(1, probe.chunks_total)
    copies = max(1, -(-target_chunks // per_copy))
    folder = work / "replicated"
    replicate_corpus(docs, folder, copies)
    idx = work / "bench-index"
    index_s: list[float] = []
    raw_s: list[float] = []
    index_cpu: list[float] = []
    raw_cpu: list[float] = []
    texts: list[str] = []
    for run in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        report = sync_folder(folder, idx, embedder=embedder, splitter=split, options=opts)
        index_s.append(time.perf_counter() - w0)
        index_cpu.append(time.process_time() - c0)
        gen = store.current_generation(idx)
        assert gen is not None
        texts = [index_text(c) for c in store.read_chunks(gen)]
        w0, c0 = time.perf_counter(), time.process_time()
        embedder.embed_passages(texts, batch_size=settings.index.batch_size)
        raw_s.append(time.perf_counter() - w0)
        raw_cpu.append(time.process_time() - c0)
        print(
            f"  run {run + 1}: index {index_s[-1]:.1f} s wall / {index_cpu[-1]:.1f} s CPU, raw encode "
            f"{raw_s[-1]:.1f} s wall / {raw_cpu[-1]:.1f} s CPU ({report.chunks_total} chunks)",
            flush=True,
        )
    n = len(texts)
    mi, mr = statistics.median(index_s), statistics.median(raw_s)
    ci, cr = statistics.median(index_cpu), statistics.median(raw_cpu)
    return [
        f"throughput ({n} chunks = {copies} copies of {per_copy}; 1 torch thread; median of {runs} runs): "
        f"index {n / ci:.2f} chunks per CPU-s vs raw encode {n / cr:.2f} -> ratio {cr / ci:.3f} (CPU time); "
        f"wall {n / mi:.2f} vs {n / mr:.2f} chunks/s -> ratio {mr / mi:.3f}"
    ]


def bench_latency(settings, embedder, docs: Path, sizes: list[int], work: Path) -> list[str]:  # noqa: ANN001
    import faiss
    import torch

    from app.evaluation.retrieval import eval_files, load_eval_rows
    from app.wiring.index import splitter_settings, sync_options
    from index import store
    from index.bm25 import BM25Index
    from index.hybrid import HybridRetriever
    from index.sync import sync_folder
    from index.vector_store import VectorStore

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    idx = work / "latency-base"
    sync_folder(
        docs,
        idx,
        embedder=embedder,
        splitter=splitter_settings(settings),
        options=sync_options(settings, rebuild=True),
    )
    gen = store.current_generation(idx)
    assert gen is not None
    base_chunks, base_vecs, base_tokens = (
        store.read_chunks(gen),
        store.read_vectors(gen),
        store.read_tokens(gen),
    )
    try:
        from app.settings import load_settings
        from app.wiring.collections import get_collection

        default = get_collection(load_settings()).eval_set
        questions = [str(r["question"]) for r in load_eval_rows(eval_files(None, default))]
    except Exception:  # no eval rows yet: use chunk openings as queries
        questions = [c.text[:60] for c in base_chunks]
    questions = questions[:200]
    embed_s: list[float] = []
    qvecs = []
    for q in questions:
        t0 = time.perf_counter()
        qvecs.append(embedder.embed_queries([q])[0])
        embed_s.append(time.perf_counter() - t0)
    lines = [
        f"query embedding, 1 thread, {len(questions)} questions: p50 {pct(embed_s, 50):.1f} ms, "
        f"p95 {pct(embed_s, 95):.1f} ms"
    ]
    rng = np.random.default_rng(0)
    for size in sizes:
        reps = -(-size // len(base_chunks))
        rows = np.arange(size) % len(base_chunks)
        copy = np.arange(size) // len(base_chunks)
        vecs = base_vecs[rows] + rng.normal(0, 0.01, size=(size, base_vecs.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        t0 = time.perf_counter()
        vstore = VectorStore.build(vecs, ann_threshold=settings.index.ann_threshold)
        build_s = time.perf_counter() - t0
        tokens = [base_tokens[r] + [f"copy{c}"] for r, c in zip(rows, copy, strict=True)]
        bm25 = BM25Index.build(tokens)
        chunks = [
            dataclasses.replace(
                base_chunks[r],
                chunk_id=f"{c}-{base_chunks[r].chunk_id}",
                path=f"copy{c}/{base_chunks[r].path}",
            )
            for r, c in zip(rows, copy, strict=True)
        ]
        ret = HybridRetriever(chunks=chunks, vectors=vstore, bm25=bm25, embedder=embedder)
        rep = vstore.report
        kind = f"{rep.kind}" + (
            f" efSearch {rep.ef_search}, recall@10 {rep.recall_at_10:.3f}" if rep.kind == "hnsw" else ""
        )
        parts = []
        timings: dict[str, list[float]] = {}
        for method in ("dense", "bm25", "hybrid"):
            ret.search_with(questions[0], qvecs[0], k=5, method=method)  # warm-up
            ts = []
            for q, v in zip(questions, qvecs, strict=True):
                t0 = time.perf_counter()
                ret.search_with(q, v, k=5, method=method)
                ts.append(time.perf_counter() - t0)
            timings[method] = ts
            parts.append(f"{method} p50 {pct(ts, 50):.1f} / p95 {pct(ts, 95):.1f} ms")
        e2e = [a + b for a, b in zip(embed_s, timings["hybrid"], strict=True)]
        lines.append(
            f"latency @{size} vectors ({reps} copies, {kind}, built in {build_s:.1f} s), 1 thread: "
            + "; ".join(parts)
            + f"; embed+hybrid p50 {pct(e2e, 50):.1f} / p95 {pct(e2e, 95):.1f} ms"
        )
        print("  " + lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", default=str(REPO / "corpus" / "docs"))
    p.add_argument(
        "--chunks", type=int, default=600, help="replicate the corpus to at least this many chunks"
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sizes", default="20000,100000", help="vector counts for the latency part")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from app.settings import load_settings

    settings = load_settings()
    embedder = load_embedder(settings)
    print(f"embedder: {embedder.name} (dim {embedder.dim}); corpus: {args.docs}", flush=True)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            lines += bench_throughput(settings, embedder, Path(args.docs), args.chunks, args.runs, work)
            print(lines[-1], flush=True)
        lines += bench_latency(
            settings, embedder, Path(args.docs), [int(s) for s in args.sizes.split(",")], work
        )
    print("\n".join(["", "== bench/index.py ==", *lines]))
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps({"embedder": embedder.name, "lines": lines}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
