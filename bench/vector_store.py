"""Search latency of FAISS and of Qdrant in-process on the same random unit vectors and the same
queries, in one run, with the CPU's vector-instruction flags and every row count.

1. Dense top-10: FAISS as indexing builds it at this size (``VectorStore.build`` with the default
   ``index.ann_threshold``: HNSW above it, efSearch raised until recall@10 reaches 0.95), FAISS
   exact (flat inner product), and Qdrant in-process (``QdrantClient(path=...)``, written by
   ``QdrantWriter``, queried through ``QdrantStore``), each with recall@10 against exact search.
2. Hybrid top-5 through the retrievers (``HybridRetriever`` over each FAISS index + BM25,
   ``QdrantRetriever``) with the query vector given (no embedding): each vector's chunk holds eight
   words of a synthetic vocabulary, each query three words of its source chunk and one other; how
   often Qdrant's top 5 equals each FAISS one's (exact FAISS should agree but for score ties).

Queries are stored vectors with Gaussian noise, re-normalised (near the data, as questions are).
BLAS and FAISS run one thread; latencies are p50/p95 over ``--queries`` queries after ``--warmup``
(the hybrid part over the first ``--hybrid-queries`` of them: Qdrant's local mode scores sparse
vectors point by point in Python, slowly at this size).

Run: ``nice -n 19 python bench/vector_store.py --json corpus/measured/qdrant/vector-store-100k.json``
(about 10-20 minutes on 2 shared cores, mostly writing 100,000 points into Qdrant's local store).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_facts() -> dict[str, Any]:
    """CPU model, core count and which of ``FLAGS`` /proc/cpuinfo lists."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model, "cpus": os.cpu_count(), "flags": {f: f in flags for f in FLAGS}}


def percentiles(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def timed(fn: Any, items: list[Any], warmup: int) -> tuple[list[Any], dict[str, float]]:
    for item in items[:warmup]:
        fn(item)
    out, took = [], []
    for item in items:
        t0 = time.perf_counter()
        out.append(fn(item))
        took.append(time.perf_counter() - t0)
    return out, percentiles(took)


def recall(got: list[list[int]], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return round(float(np.mean([len(set(g[:k]) & set(t)) / k for g, t in zip(got, truth, strict=True)])), 4)


def data(n: int, dim: int, n_queries: int, vocab: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = rng.zipf(1.3, size=(n, 8)) % vocab
    src = rng.choice(n, size=n_queries, replace=False)
    queries = vectors[src] + rng.normal(0.0, 0.05, size=(n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    texts = [" ".join(f"w{w}" for w in row) for row in words]
    q_texts = [" ".join(f"w{w}" for w in [*words[s][:3], int(rng.integers(vocab))]) for s in src.tolist()]
    return {"vectors": vectors, "queries": queries, "texts": texts, "q_texts": q_texts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="stored vectors")
    p.add_argument("--dim", type=int, default=384, help="dimension (multilingual-e5-small's)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--hybrid-queries", type=int, default=50, help="queries for the hybrid part")
    p.add_argument("--vocab", type=int, default=20_000, help="synthetic words for the BM25 side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)

    import faiss

    from app.settings import IndexSettings
    from domain.types import Chunk
    from index.bm25 import BM25Index, tokenize
    from index.hybrid import HybridRetriever
    from index.qdrant_retriever import QdrantRetriever
    from index.qdrant_store import DENSE, QdrantStore, close_local
    from index.qdrant_writer import QdrantWriter
    from index.vector_store import VectorStore
    from tests.fakes_index import FakeEmbedder

    faiss.omp_set_num_threads(1)
    d = data(args.n, args.dim, args.queries, args.vocab, args.seed)
    vectors, queries = d["vectors"], d["queries"]
    q_list = list(queries)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(vectors)
    truth = exact.search(queries, 10)[1]

    threshold = IndexSettings().ann_threshold
    report: dict[str, Any] = {
        "machine": cpu_facts(),
        "rows": {
            "vectors": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "hybrid_queries": min(args.hybrid_queries, args.queries),
            "warmup": args.warmup,
        },
        "threads": 1,
        "versions": {
            "faiss-cpu": version("faiss-cpu"),
            "qdrant-client": version("qdrant-client"),
            "numpy": np.__version__,
        },
        "faiss_compile_options": faiss.get_compile_options(),
        "faiss_avx2_module_loaded": "faiss.swigfaiss_avx2" in sys.modules,
        "dense_top10": {},
        "hybrid_top5": {},
    }
    dense = report["dense_top10"]

    t0 = time.perf_counter()
    app_store = VectorStore.build(vectors, ann_threshold=threshold)
    build = time.perf_counter() - t0
    stores = {f"faiss_{app_store.report.kind}": app_store}
    if app_store.report.kind != "flat":
        stores["faiss_flat"] = VectorStore.build(vectors, ann_threshold=args.n)
    for name, store in stores.items():
        rows, lat = timed(
            lambda q, s=store: s.search(q.reshape(1, -1), 10)[1][0].tolist(), q_list, args.warmup
        )
        dense[name] = {**lat, "recall@10": recall(rows, truth)}
    dense[f"faiss_{app_store.report.kind}"].update(
        build_s=round(build, 1), ef_search=app_store.report.ef_search, ann_threshold=threshold
    )

    chunks = [
        Chunk(f"c{i}", f"doc{i // 4}.md", "", "", t, 0, len(t), lang="en") for i, t in enumerate(d["texts"])
    ]
    bm25 = BM25Index.build([tokenize(t) for t in d["texts"]])
    with tempfile.TemporaryDirectory(prefix="bench-qdrant-") as tmp:
        writer = QdrantWriter(chunks=chunks, vectors=vectors, bm25=bm25, server=None, label="bench")
        t0 = time.perf_counter()
        writer.save(Path(tmp))
        q_build = time.perf_counter() - t0
        qstore = QdrantStore.open(Path(tmp), writer.entry, None)
        from qdrant_client import models

        def q_dense(q: np.ndarray) -> list[int]:
            points = qstore.query([models.QueryRequest(query=q.tolist(), using=DENSE, limit=10)])[0]
            return [int(pt.id) for pt in points]

        rows, lat = timed(q_dense, q_list, args.warmup)
        dense["qdrant_local"] = {**lat, "recall@10": recall(rows, truth), "build_s": round(q_build, 1)}

        emb = FakeEmbedder(dim=args.dim)
        retrievers: dict[str, Any] = {
            f"{name}_bm25": HybridRetriever(chunks=chunks, vectors=store, bm25=bm25, embedder=emb)
            for name, store in stores.items()
        }
        retrievers["qdrant_local"] = QdrantRetriever(chunks=chunks, store=qstore, bm25=bm25, embedder=emb)
        pairs = list(zip(d["q_texts"], q_list, strict=True))[: args.hybrid_queries]
        tops: dict[str, list[list[str]]] = {}
        for name, r in retrievers.items():
            hits, lat = timed(
                lambda qv, r=r: r.search_with(qv[0], qv[1], k=5, method="hybrid"), pairs, args.warmup
            )
            tops[name] = [[h.chunk.chunk_id for h in hs] for hs in hits]
            report["hybrid_top5"][name] = lat
        same = {
            name: sum(a == b for a, b in zip(tops[name], tops["qdrant_local"], strict=True))
            for name in tops
            if name != "qdrant_local"
        }
        report["hybrid_top5"]["qdrant_same_top5_in_order_as"] = same
        close_local(Path(tmp) / "qdrant")

    n, q = args.n, args.queries
    flags = ", ".join(f for f, on in report["machine"]["flags"].items() if on) or "none of " + "/".join(FLAGS)
    print(
        f"machine: {report['machine']['model']}, {report['machine']['cpus']} CPUs; flags: {flags}; one thread"
    )
    print(f"dense top-10 over {n} vectors x {args.dim}, {q} queries (+{args.warmup} warm-up):")
    for name, r in dense.items():
        extra = f", built in {r['build_s']} s" if "build_s" in r else ""
        print(
            f"  {name:14s} p50 {r['p50_ms']:8.3f} ms  p95 {r['p95_ms']:8.3f} ms  recall@10 {r['recall@10']:.4f}{extra}"
        )
    base = dense[f"faiss_{app_store.report.kind}"]["p95_ms"]
    print(
        f"  Qdrant p95 / FAISS ({app_store.report.kind}) p95: {dense['qdrant_local']['p95_ms'] / base:.1f}x"
    )
    hq = report["rows"]["hybrid_queries"]
    print(
        f"hybrid top-5 over {n} chunks, {hq} queries (+{min(args.warmup, hq)} warm-up; query vector given):"
    )
    for name in tops:
        r = report["hybrid_top5"][name]
        print(f"  {name:16s} p50 {r['p50_ms']:9.3f} ms  p95 {r['p95_ms']:9.3f} ms")
    for name, count in same.items():
        print(f"  Qdrant's top-5 equals {name}'s, in order, on {count} of {hq} queries")
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
