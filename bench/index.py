"""Indexing and query benchmarks, every figure next to a baseline measured in the same run.

1. Throughput: the sample corpus is replicated (each copy's text files get a copy line, so every
   file is distinct) to ``--chunks`` chunks; end-to-end indexing (read, split, embed, BM25, FAISS,
   save) is timed against raw ``embed_passages`` of the same chunk texts with one torch thread;
   medians of ``--runs``. The ratio is given in process CPU time (robust when other jobs share the
   cores) and in wall time.
2. Query latency with one thread at ``--sizes`` vectors: the corpus's real chunk vectors replicated
   with small noise (and their BM25 tokens with a copy marker), queried with the eval questions;
   p50/p95 of dense, BM25, hybrid, query embedding, and embedding + hybrid.
3. ``--parse-only --folder PATH``: reading and splitting one folder with the code before issue 25
   (BeautifulSoup + ``HTMLHeaderTextSplitter`` extraction, langchain's recursive splitter; kept
   below as the BASELINE) and with the current code, file by file in turns, in this process, both
   counting with the embedder's ``tokenizer.json``; then the current code once more as
   ``sync_folder`` runs it, in its worker process. No model is loaded.
4. ``--folder PATH``: index one folder into a temporary workspace with the real embedder (at most
   ``--max-chunks`` chunks: the first files in path order) and print the seconds spent reading,
   splitting (timed in-process beforehand) and embedding (inside ``sync_folder``), chunks per
   second, and the encoder's achieved GFLOP/s against a matmul peak for the precision in use
   (``HYBRID_INDEX__EMBED_PRECISION``: torch fp32 ``mm``, or ONNX Runtime's int8 ``MatMulInteger``
   for the int8 embedder) measured in the same run with the same threads.

Run: ``python bench/index.py [--chunks 600] [--runs 3] [--sizes 20000,100000]`` (several minutes on
a CPU; use nohup). The issue's figures come from ``--chunks 20000 --runs 3``: about 70 minutes on one
core. The real e5 embedder is used when present, else MiniLM, with a message.
``python bench/index.py --parse-only --folder /usr/share/doc/git-doc [--json out.json]`` and
``python bench/index.py --folder /usr/share/doc/git-doc --max-chunks 300`` for issue 25.

Above ~300 lines because it is a benchmark script: each part's figures stand next to a baseline
measured in the same run (the pre-issue-25 reading and splitting code is kept here as that
baseline), so the parts live in one file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import resource
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


# ---------------------------------------------------------------------------------------------
# BASELINE: the HTML extractor and the splitter as they were before issue 25 (index/formats.py and
# index/splitter.py at commit 1809f18), kept only so --parse-only can time them in the same run.
# ---------------------------------------------------------------------------------------------

_BASELINE_INLINE_TAGS = (
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark",
    "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var",
)  # fmt: skip
_BASELINE_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "head", "title", "iframe", "object")


def baseline_extract_html(markup: str):  # noqa: ANN201
    """BASELINE (before issue 25): BeautifulSoup html.parser, then HTMLHeaderTextSplitter on the
    re-serialised page."""
    import re

    from bs4 import BeautifulSoup
    from langchain_text_splitters import HTMLHeaderTextSplitter

    from index.formats import HEADING_JOIN, Extracted, Section

    keys = tuple(f"h{i}" for i in range(1, 7))
    soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup.find_all(_BASELINE_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_BASELINE_INLINE_TAGS):
        tag.unwrap()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    soup.smooth()
    splitter = HTMLHeaderTextSplitter([(k, k) for k in keys])
    blocks: list[tuple[str, str]] = []
    for doc in splitter.split_text(str(soup)):
        heading = HEADING_JOIN.join(doc.metadata[k] for k in keys if k in doc.metadata)
        body = "\n".join(ln.strip() for ln in doc.page_content.split("\n") if ln.strip())
        body = re.sub(r"[ \t]+", " ", body)
        if not body:
            continue
        if blocks and blocks[-1][0] == heading:
            blocks[-1] = (heading, blocks[-1][1] + "\n" + body)
        else:
            blocks.append((heading, body))
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for heading, body in blocks:
        if parts:
            parts.append("\n\n")
            pos += 2
        sections.append(Section(pos, pos + len(body), heading))
        parts.append(body)
        pos += len(body)
    text = "".join(parts)
    if not title:
        title = next((s.heading.split(HEADING_JOIN)[0] for s in sections if s.heading), "")
    return Extracted(text, title, tuple(sections) or (Section(0, 0),))


def baseline_load_document(source, data: bytes):  # noqa: ANN001, ANN201
    """BASELINE: ``index.loaders.load_document`` with the old HTML extractor (other kinds as now)."""
    from domain.errors import DocumentError
    from index.formats import normalize_newlines
    from index.loaders import LoadedDocument, decode_text, load_document

    if source.kind != "html":
        return load_document(source, data)
    extracted = baseline_extract_html(normalize_newlines(decode_text(data, source.path)))
    if not extracted.text.strip():
        raise DocumentError(source.path, "no_text", "no extractable text (a scan, or only markup)")
    title = extracted.title or Path(source.path).stem
    return LoadedDocument(source.path, title, extracted.text, extracted.sections, source.kind)


class BaselineSplitter:
    """BASELINE (before issue 25): langchain's RecursiveCharacterTextSplitter measuring pieces
    with the tokenizer (memoised per document), spans found back by searching the section."""

    def __init__(self, count_tokens, settings) -> None:  # noqa: ANN001
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from index.splitter import SEPARATORS

        self.settings = settings
        self._count = count_tokens
        self._memo: dict[str, int] = {}
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=settings.chunk_tokens,
            chunk_overlap=settings.overlap_tokens,
            length_function=self._length,
            strip_whitespace=True,
        )

    def _length(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            n = self._count(text) if text.strip() else 0
            self._memo[text] = n
        return n

    def split(self, doc, *, digest: str) -> list:  # noqa: ANN001
        import hashlib

        from domain.types import Chunk
        from index.splitter import detect_lang

        stem = hashlib.sha1(f"{doc.path}\0{digest}".encode()).hexdigest()[:12]
        chunks: list = []
        try:
            for section in doc.sections:
                body = doc.text[section.start : section.end]
                if not body.strip():
                    continue
                for start, end in self._absorb_fragments(body, self._spans(body)):
                    piece = doc.text[section.start + start : section.start + end]
                    chunks.append(
                        Chunk(
                            chunk_id=f"{stem}-{len(chunks):05d}",
                            path=doc.path,
                            title=doc.title,
                            heading=section.heading,
                            text=piece,
                            start=section.start + start,
                            end=section.start + end,
                            page=section.page,
                            lang=detect_lang(piece),
                        )
                    )
        finally:
            self._memo.clear()
        return chunks

    def _spans(self, body: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        overlap = self.settings.overlap_tokens
        for piece in self._splitter.split_text(body):
            if spans:
                prev_start, prev_end = spans[-1]
                prev_len = prev_end - prev_start
                est = (
                    round(prev_len * overlap / max(1, self._length(body[prev_start:prev_end])))
                    if overlap
                    else 0
                )
                expected, lo = prev_end - est, prev_start + 1
            else:
                prev_end, expected, lo = -1, 0, 0
            best, at = -1, body.find(piece, lo)
            while at >= 0:
                if at + len(piece) > prev_end and (best < 0 or abs(at - expected) < abs(best - expected)):
                    best = at
                if at >= expected:
                    break
                at = body.find(piece, at + 1)
            if best < 0:
                continue
            spans.append((best, best + len(piece)))
        return spans

    def _absorb_fragments(self, body: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if len(spans) < 2:
            return spans
        tiny = max(4, self.settings.chunk_tokens // 8)
        out = list(spans)
        i = 0
        while i < len(out) and len(out) > 1:
            start, end = out[i]
            if self._length(body[start:end]) >= tiny:
                i += 1
                continue
            if i + 1 < len(out):
                out[i : i + 2] = [(start, max(end, out[i + 1][1]))]
            else:
                out[i - 1 : i + 1] = [(out[i - 1][0], max(end, out[i - 1][1]))]
                i -= 1
        return out


# ---------------------------------------------------------------------------------------------
# Issue 25: one folder, parse-only (old vs new) and indexed with the embedding timed
# ---------------------------------------------------------------------------------------------


class _CountingCounter:
    """Wraps a token counter, adding up the calls and the characters it is given."""

    def __init__(self, count) -> None:  # noqa: ANN001
        self.count, self.calls, self.chars = count, 0, 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return self.count(text)


class _TokenizerOnly:
    """Stands in for the embedder where only its tokenizer is needed (FileReader in the worker)."""

    def __init__(self, folder: Path) -> None:
        from index.reader import TokenizerFileCounter

        self.path = folder
        self.count_tokens = TokenizerFileCounter(folder / "tokenizer.json")


def bench_parse_only(settings, folder: Path) -> dict:  # noqa: ANN001
    """Read and split ``folder`` with the baseline and the current code, file by file in turns
    (which goes first alternates), then with the current code in its worker process."""
    from app.wiring.embedder import resolve_embedder
    from app.wiring.index import splitter_settings
    from domain.errors import DocumentError
    from index.loaders import content_digest, load_document, read_bytes, scan_folder
    from index.reader import FileReader, TokenizerFileCounter
    from index.splitter import DocumentSplitter

    model_dir, model_name = resolve_embedder(settings)
    if not (model_dir / "tokenizer.json").is_file():
        raise SystemExit(f"{model_dir} has no tokenizer.json — run `hybrid setup` first")
    split = splitter_settings(settings)
    sources, skipped = scan_folder(folder, max_file_bytes=int(settings.index.max_file_mb * 1e6))
    base_count = TokenizerFileCounter(model_dir / "tokenizer.json")
    base_count("warm up")  # load the tokenizer before any timing
    paths = {
        "old": (baseline_load_document, BaselineSplitter),
        "new": (load_document, DocumentSplitter),
    }
    stats = {
        name: {"extract_s": 0.0, "split_s": 0.0, "extract_cpu_s": 0.0, "split_cpu_s": 0.0, "chunks": 0}
        for name in paths
    }
    counters = {name: _CountingCounter(base_count) for name in paths}
    splitters = {name: cls(counters[name], split) for name, (_, cls) in paths.items()}
    read_s = read_cpu_s = 0.0
    kinds: dict[str, int] = {}
    refused: dict[str, list[str]] = {"old": [], "new": []}
    text_chars = {"old": 0, "new": 0}
    by_kind: dict[str, dict[str, dict]] = {"old": {}, "new": {}}
    chunk_texts: dict[str, list[str]] = {"old": [], "new": []}
    for i, src in enumerate(sources):
        w0, c0 = time.perf_counter(), time.thread_time()
        data = read_bytes(src)
        digest = content_digest(data)
        read_s += time.perf_counter() - w0
        read_cpu_s += time.thread_time() - c0
        kinds[src.kind] = kinds.get(src.kind, 0) + 1
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for name in order:
            load = paths[name][0]
            st = stats[name]
            kind = by_kind[name].setdefault(
                src.kind, {"files": 0, "extract_s": 0.0, "split_s": 0.0, "chunks": 0}
            )
            kind["files"] += 1
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                doc = load(src, data)
            except DocumentError as e:
                refused[name].append(f"{src.path}: {e.reason}")
                continue
            finally:
                st["extract_s"] += time.perf_counter() - w0
                st["extract_cpu_s"] += time.thread_time() - c0
                kind["extract_s"] += time.perf_counter() - w0
            w0, c0 = time.perf_counter(), time.thread_time()
            chunks = splitters[name].split(doc, digest=digest)
            st["split_s"] += time.perf_counter() - w0
            st["split_cpu_s"] += time.thread_time() - c0
            kind["split_s"] += time.perf_counter() - w0
            st["chunks"] += len(chunks)
            kind["chunks"] += len(chunks)
            text_chars[name] += len(doc.text)
            chunk_texts[name] += [c.text for c in chunks]
    for name in paths:
        st = stats[name]
        st["read_s"], st["read_cpu_s"] = read_s, read_cpu_s
        st["total_s"] = read_s + st["extract_s"] + st["split_s"]
        st["total_cpu_s"] = read_cpu_s + st["extract_cpu_s"] + st["split_cpu_s"]
        st["text_chars"] = text_chars[name]
        st["tokenizer_calls"] = counters[name].calls
        st["tokenized_chars_per_text_char"] = round(counters[name].chars / max(1, text_chars[name]), 3)
        st["refused"] = refused[name]
        sizes = sorted(base_count(t) for t in chunk_texts[name])  # after the timing: each chunk alone
        st["chunk_tokens"] = {
            "mean": round(sum(sizes) / max(1, len(sizes)), 1),
            "median": sizes[len(sizes) // 2] if sizes else 0,
            "max": sizes[-1] if sizes else 0,
            "over_budget": sum(n > split.chunk_tokens for n in sizes),
        }
        st["by_kind"] = {
            k: {f: round(v, 3) if isinstance(v, float) else v for f, v in d.items()}
            for k, d in by_kind[name].items()
        }
        for k, v in list(st.items()):
            if isinstance(v, float):
                st[k] = round(v, 3)
    w0 = time.perf_counter()
    worker_chunks = 0
    with FileReader(
        sources, {}, embedder=_TokenizerOnly(model_dir), settings=split, mode="process"
    ) as reader:
        in_worker = reader.in_worker
        for res in reader:
            worker_chunks += len(res.chunks or [])
    worker_s = time.perf_counter() - w0
    return {
        "folder": str(folder),
        "tokenizer": f"{model_name}/tokenizer.json",
        "splitter": split.identity(),
        "files": len(sources),
        "files_by_kind": kinds,
        "skipped_by_scan": len(skipped),
        "old": stats["old"],
        "new": stats["new"],
        "ratio_wall": round(stats["old"]["total_s"] / stats["new"]["total_s"], 2),
        "ratio_cpu": round(stats["old"]["total_cpu_s"] / stats["new"]["total_cpu_s"], 2),
        "html_extract_ratio_wall": round(stats["old"]["extract_s"] / stats["new"]["extract_s"], 2),
        "split_ratio_wall": round(stats["old"]["split_s"] / stats["new"]["split_s"], 2),
        "new_in_worker": {
            "seconds_wall": round(worker_s, 3),
            "chunks": worker_chunks,
            "in_worker": in_worker,
            "includes": "spawn, imports and tokenizer load",
        },
    }


def parse_only_lines(r: dict) -> list[str]:
    old, new = r["old"], r["new"]
    lines = [
        f"parse-only {r['folder']}: {r['files']} files {r['files_by_kind']}; tokens by {r['tokenizer']}; "
        f"splitter {r['splitter']}",
    ]
    for name, st in (("old (baseline)", old), ("new", new)):
        lines.append(
            f"  {name:15s} read {st['read_s']:.2f} s + extract {st['extract_s']:.2f} s + split "
            f"{st['split_s']:.2f} s = {st['total_s']:.2f} s wall ({st['total_cpu_s']:.2f} s CPU); "
            f"{st['chunks']} chunks from {st['text_chars']} characters; tokenizer {st['tokenizer_calls']} calls, "
            f"{st['tokenized_chars_per_text_char']}x the text; refused {len(st['refused'])}"
        )
        ct = st["chunk_tokens"]
        lines.append(
            f"  {'':15s} chunk tokens (each chunk counted alone): mean {ct['mean']}, median {ct['median']}, "
            f"max {ct['max']}, over {r['splitter']['chunk_tokens']}: {ct['over_budget']}"
        )
    for kind in sorted(new["by_kind"]):
        o, n = old["by_kind"].get(kind, {}), new["by_kind"][kind]
        lines.append(
            f"  {kind}: {n['files']} files; old extract {o.get('extract_s', 0):.2f} s + split {o.get('split_s', 0):.2f} s "
            f"-> {o.get('chunks', 0)} chunks; new extract {n['extract_s']:.2f} s + split {n['split_s']:.2f} s "
            f"-> {n['chunks']} chunks"
        )
    w = r["new_in_worker"]
    lines.append(
        f"  ratio old/new: {r['ratio_wall']}x wall, {r['ratio_cpu']}x CPU (extract {r['html_extract_ratio_wall']}x, "
        f"split {r['split_ratio_wall']}x); new in the worker process: {w['seconds_wall']:.2f} s wall "
        f"({w['includes']}), {w['chunks']} chunks"
    )
    return lines


def matmul_peak_gflops(threads: int, n: int = 1024, reps: int = 5) -> float:
    """The best fp32 GFLOP/s of an n x n matmul over ``reps`` rounds with ``threads`` threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(4):
                torch.mm(a, b)
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        return best
    finally:
        torch.set_num_threads(before)


def int8_matmul_peak_gops(threads: int, n: int = 1024, reps: int = 5) -> float:
    """The best int8 GOP/s of an n x n u8 x s8 matrix product (ONNX Runtime's MatMulInteger, the
    kernel the int8 embedder's projections run on) over ``reps`` rounds with ``threads`` threads."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-64, 64, (n, n), dtype=np.int8), name="B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 255, (n, n), dtype=np.uint8)
    session.run(None, {"A": a})
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(4):
            session.run(None, {"A": a})
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    del onnx
    return best


def encoder_gflop(config: dict, lengths: list[int]) -> float:
    """Multiply-add work of a BERT-style encoder over sequences of ``lengths`` tokens (no padding):
    per layer 4 d^2 (attention projections) + 2 d f (feed-forward) per token, and 2 n d per token
    for attention scores and their weighted sum; 2 FLOPs per multiply-add."""
    d, f, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    total = sum(layers * 2 * (n * (4 * d * d + 2 * d * f) + 2 * n * n * d) for n in lengths)
    return total / 1e9


class _TimedEmbedder:
    """The embedder with ``embed_passages`` timed and its token counts kept."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.seconds = 0.0
        self.lengths: list[int] = []
        self.first_call_at: float | None = None

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_queries(self, texts):  # noqa: ANN001, ANN201
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts, *, batch_size: int = 8, on_progress=None):  # noqa: ANN001, ANN201
        from domain.progress import no_progress

        if self.first_call_at is None:
            self.first_call_at = time.perf_counter()
        prefix = getattr(self.inner, "passage_prefix", "")
        self.lengths += [min(512, self.inner.count_tokens(prefix + t) + 2) for t in texts]
        t0 = time.perf_counter()
        out = self.inner.embed_passages(texts, batch_size=batch_size, on_progress=on_progress or no_progress)
        self.seconds += time.perf_counter() - t0
        return out


def bench_folder(settings, embedder, folder: Path, max_chunks: int, reader: str, work: Path) -> dict:  # noqa: ANN001
    """Index ``folder`` (its first files up to ``max_chunks`` chunks when > 0) with the embedding
    timed; reading and splitting timed beforehand in-process with the same code."""
    import torch

    from app.wiring.index import splitter_settings, sync_options
    from domain.errors import DocumentError
    from index.loaders import content_digest, load_document, read_bytes, scan_folder
    from index.splitter import DocumentSplitter
    from index.sync import sync_folder

    split = splitter_settings(settings)
    sources, _ = scan_folder(folder, max_file_bytes=int(settings.index.max_file_mb * 1e6))
    splitter = DocumentSplitter(embedder.count_tokens, split)
    read_s = split_s = 0.0
    chosen, chunks = [], 0
    for src in sources:
        t0 = time.perf_counter()
        try:
            data = read_bytes(src)
            doc = load_document(src, data)
        except DocumentError:
            read_s += time.perf_counter() - t0
            continue
        t1 = time.perf_counter()
        n = len(splitter.split(doc, digest=content_digest(data)))
        t2 = time.perf_counter()
        if max_chunks and chunks + n > max_chunks:
            break
        read_s, split_s = read_s + t1 - t0, split_s + t2 - t1
        chosen.append(src)
        chunks += n
    target = folder
    if max_chunks:
        target = work / "subset"
        for src in chosen:
            out = target / src.path
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.abspath, out)
    timed = _TimedEmbedder(embedder)
    opts = dataclasses.replace(sync_options(settings, rebuild=True), reader=reader)
    events: list[tuple[float, str]] = []
    gc.collect()
    _reset_peak_rss()
    rss_before = _proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    report = sync_folder(
        target,
        work / "index",
        embedder=timed,  # type: ignore[arg-type]
        splitter=split,
        options=opts,
        on_progress=lambda _d, _t, m="": events.append((time.perf_counter(), m)),
    )
    wall = time.perf_counter() - t0
    peak_rss = _proc_status_mb("VmHWM")
    reader_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    first_embed = next((t - t0 for t, m in events if m == "embedding"), None)
    source = Path(getattr(embedder, "source", None) or embedder.path)  # the int8 copy names its fp32 folder
    config = json.loads((source / "config.json").read_text())
    dim = int(config.get("hidden_size", 0))
    gflop = encoder_gflop(config, timed.lengths)
    threads = torch.get_num_threads()
    precision = getattr(embedder, "precision", "fp32")
    peak = int8_matmul_peak_gops(threads) if precision == "int8" else matmul_peak_gflops(threads)
    achieved = gflop / timed.seconds if timed.seconds else 0.0
    return {
        "folder": str(folder),
        "files": len(chosen),
        "files_in_folder": len(sources),
        "max_chunks": max_chunks,
        "chunks": report.chunks_total,
        "chunks_embedded": report.chunks_embedded,
        "reader": reader,
        "read_extract_s_inprocess": round(read_s, 3),
        "split_s_inprocess": round(split_s, 3),
        "embed_s": round(timed.seconds, 3),
        "sync_wall_s": round(wall, 3),
        "first_embedding_at_s": round(first_embed, 3) if first_embed is not None else None,
        "chunks_per_s": round(report.chunks_total / wall, 3),
        "tokens_embedded": sum(timed.lengths),
        "encoder_gflop": round(gflop, 1),
        "achieved_gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "peak_kind": "int8 u8 x s8 (onnxruntime MatMulInteger)" if precision == "int8" else "fp32 (torch mm)",
        "share_of_peak": round(achieved / peak, 3) if peak else None,
        "torch_threads": threads,
        "precision": precision,
        "read_split_share_of_total": round((read_s + split_s) / (read_s + split_s + timed.seconds), 4),
        "rss_before_sync_mb": round(rss_before, 1),
        "peak_rss_during_sync_mb": round(peak_rss, 1),
        "peak_growth_mb": round(peak_rss - rss_before, 1),
        "vectors_mb": round(report.chunks_total * dim * 4 / 2**20, 1),
        "reader_process_peak_mb": round(reader_peak, 1),
    }


def _reset_peak_rss() -> None:
    """Reset this process's peak resident size (VmHWM) so the next reading covers what follows
    (Linux: writing 5 to /proc/self/clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _proc_status_mb(field: str) -> float:
    """A size field of /proc/self/status (VmRSS, VmHWM) in MiB (0.0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def folder_lines(r: dict) -> list[str]:
    return [
        f"folder {r['folder']}: {r['files']} of {r['files_in_folder']} files, {r['chunks']} chunks "
        f"({r['chunks_embedded']} embedded; cap {r['max_chunks'] or 'none'}; reader {r['reader']})",
        f"  reading+extracting {r['read_extract_s_inprocess']:.2f} s, splitting {r['split_s_inprocess']:.2f} s "
        f"(in-process, timed beforehand); embedding {r['embed_s']:.2f} s; sync_folder wall {r['sync_wall_s']:.2f} s, "
        f"first embedding at {r['first_embedding_at_s']} s; {r['chunks_per_s']:.2f} chunks/s",
        f"  encoder {r['encoder_gflop']} GFLOP over {r['tokens_embedded']} tokens: {r['achieved_gflops']} GFLOP/s "
        f"achieved at {r['precision']} vs {r['matmul_peak_gflops']} GOP/s {r['peak_kind']} matmul peak "
        f"({r['torch_threads']} threads) = "
        f"{r['share_of_peak']:.0%}; reading+splitting {r['read_split_share_of_total']:.1%} of read+split+embed",
        f"  memory: {r['rss_before_sync_mb']:.0f} MiB resident before indexing, peak {r['peak_rss_during_sync_mb']:.0f} "
        f"MiB during it (+{r['peak_growth_mb']:.0f} MiB; the vectors are {r['vectors_mb']:.1f} MiB); reader process "
        f"peak {r['reader_process_peak_mb']:.0f} MiB",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", default=str(REPO / "corpus" / "docs"))
    p.add_argument(
        "--chunks", type=int, default=600, help="replicate the corpus to at least this many chunks"
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sizes", default="20000,100000", help="vector counts for the latency part")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument(
        "--folder", default=None, help="issue 25: time reading, splitting and embedding of this folder"
    )
    p.add_argument(
        "--parse-only", action="store_true", help="with --folder: old vs new reading and splitting only"
    )
    p.add_argument(
        "--max-chunks", type=int, default=300, help="with --folder: embed at most this many (0: all)"
    )
    p.add_argument("--reader", default="process", choices=("auto", "process", "inline"))
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from app.settings import load_settings

    settings = load_settings()
    if args.folder:
        folder = Path(args.folder).expanduser().resolve()
        if args.parse_only:
            result = bench_parse_only(settings, folder)
            lines = parse_only_lines(result)
        else:
            embedder = load_embedder(settings)
            with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
                result = bench_folder(settings, embedder, folder, args.max_chunks, args.reader, Path(tmp))
            lines = folder_lines(result)
        print("\n".join(["", "== bench/index.py ==", *lines]))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return 0
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
