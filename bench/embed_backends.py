"""Which int8 runtime embeds fastest on this CPU, at what parity: the same chunks of one folder
embedded by each candidate in one run, with speed as a ratio to torch fp32 and the cosine of every
vector to torch's.

Candidates (issue 25): torch fp32 (sentence-transformers, the product's fp32 path), and bf16 where
the CPU has native bf16 (what "auto" picks there); ONNX Runtime
fp32 and dynamic int8 (weights per tensor or per channel, full or reduced range); llama.cpp's
embedding path on a GGUF of the same encoder with Q8_0 or Q4_0 weights (written here with gguf-py).
Texts are the folder's chunks as the product splits
them (first files in path order up to ``--chunks``), each with the passage prompt.

Run: ``python bench/embed_backends.py --folder /usr/share/doc/git-doc --chunks 300 [--json out.json]``
(about 10 minutes on 2 cores; nothing else should run).

Above ~300 lines because it is a benchmark script: its candidates are measured side by side in one
run, against one baseline, so they live in one file.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

THREADS = 2


def folder_chunks(settings, folder: Path, limit: int) -> list[str]:  # noqa: ANN001
    """The first ``limit`` chunk texts of ``folder`` (files in path order), split as indexing does."""
    from app.wiring.embedder import resolve_embedder
    from app.wiring.index import splitter_settings
    from index.loaders import load_document, scan_folder
    from index.reader import TokenizerFileCounter
    from index.splitter import DocumentSplitter

    source, _ = resolve_embedder(settings)
    splitter = DocumentSplitter(TokenizerFileCounter(source / "tokenizer.json"), splitter_settings(settings))
    texts: list[str] = []
    sources, _ = scan_folder(folder, max_file_bytes=20_000_000)
    for src in sources:
        try:
            doc = load_document(src, src.abspath.read_bytes())
        except Exception:  # noqa: BLE001 - a file the product would skip
            continue
        texts += [c.text for c in splitter.split(doc, digest="bench")]
        if len(texts) >= limit:
            break
    return texts[:limit]


def token_ids(source: Path, texts: list[str], prefix: str, max_len: int = 512) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [e.ids for e in tok.encode_batch([prefix + t for t in texts])]


def batches(ids: list[list[int]], size: int = 8):  # noqa: ANN201
    """Longest first, padded per batch, as the product batches."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        width = max(len(ids[i]) for i in rows)
        x = np.zeros((len(rows), width), dtype=np.int64)
        m = np.zeros_like(x)
        for r, i in enumerate(rows):
            x[r, : len(ids[i])] = ids[i]
            m[r, : len(ids[i])] = 1
        yield rows, x, m


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    w = mask[..., None].astype(np.float32)
    return (hidden * w).sum(1) / np.maximum(w.sum(1), 1e-9)


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return seconds, out.astype(np.float32)


def ort_runner(path: Path, ids: list[list[int]], dim: int) -> Callable[[], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}

    def run() -> np.ndarray:
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for rows, x, m in batches(ids):
            feed = {"input_ids": x, "attention_mask": m}
            if "token_type_ids" in inputs:
                feed["token_type_ids"] = np.zeros_like(x)
            out[rows] = mean_pool(session.run(None, feed)[0], m)
        return out

    return run


def write_gguf(source: Path, dest: Path, weight_type: str) -> Path:
    """The encoder as a llama.cpp ``bert`` GGUF: layer weights at ``weight_type`` (Q8_0 or Q4_0),
    the token table f16, the rest f32. The vocabulary is written for loading only: this bench
    hands llama.cpp token ids from the encoder's own tokenizer."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((source / "config.json").read_text())
    weights = load_file(str(source / "model.safetensors"))
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[weight_type]
    w = gguf.GGUFWriter(str(dest), "bert")
    layers, d = config["num_hidden_layers"], config["hidden_size"]
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(d)
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_block_count(layers)
    w.add_head_count(config["num_attention_heads"])
    w.add_layer_norm_eps(config["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_token_type_count(config.get("type_vocab_size", 2))
    w.add_tokenizer_model("t5")
    vocab = config["vocab_size"]
    w.add_token_list([f"<t{i}>" for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([3, 3, 3, 2] + [1] * (vocab - 4))
    w.add_bos_token_id(0)
    w.add_eos_token_id(2)
    w.add_unk_token_id(3)
    w.add_pad_token_id(1)

    def put(name: str, a: np.ndarray, quantize: bool = False) -> None:
        a = np.ascontiguousarray(a.astype(np.float32))
        if quantize:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
        elif name == "token_embd.weight":
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, a)

    put("token_embd.weight", weights["embeddings.word_embeddings.weight"])
    put("position_embd.weight", weights["embeddings.position_embeddings.weight"])
    put("token_types.weight", weights["embeddings.token_type_embeddings.weight"])
    put("token_embd_norm.weight", weights["embeddings.LayerNorm.weight"])
    put("token_embd_norm.bias", weights["embeddings.LayerNorm.bias"])
    names = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    for i in range(layers):
        for hf, g in names.items():
            put(
                f"blk.{i}.{g}.weight",
                weights[f"encoder.layer.{i}.{hf}.weight"],
                quantize="LayerNorm" not in hf,
            )
            put(f"blk.{i}.{g}.bias", weights[f"encoder.layer.{i}.{hf}.bias"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dest


def llama_runner(path: Path, ids: list[list[int]], dim: int) -> Callable[[], np.ndarray]:
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(
        str(path),
        embedding=True,
        n_ctx=512,
        n_batch=512,
        n_ubatch=512,
        n_seq_max=1,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        flash_attn=True,
        verbose=False,
    )

    def run() -> np.ndarray:
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for i, row in enumerate(ids):  # one sequence per batch: packing several costs attention
            llm._batch.reset()
            llm._batch.add_sequence(row, 0, True)
            llm._ctx.kv_cache_clear()
            llm._ctx.decode(llm._batch)
            out[i] = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0), shape=(dim,))
        return out

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", required=True)
    p.add_argument("--chunks", type=int, default=300)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(THREADS)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from app.settings import load_settings
    from app.wiring.embedder import resolve_embedder
    from index.embedder import SentenceTransformerEmbedder, fast_bf16_cpu
    from index.int8_export import export_onnx

    settings = load_settings()
    source, _ = resolve_embedder(settings)
    texts = folder_chunks(settings, Path(args.folder).expanduser().resolve(), args.chunks)
    fp32 = SentenceTransformerEmbedder(source)
    ids = token_ids(source, texts, fp32.passage_prefix)
    n_tokens = sum(len(i) for i in ids)
    print(f"{len(texts)} chunks of {args.folder}, {n_tokens} tokens with the passage prompt", flush=True)
    results: list[dict] = []

    def record(label: str, seconds: float, vecs: np.ndarray, ref: np.ndarray | None) -> None:
        cos = np.sum(vecs * ref, axis=1) if ref is not None else np.ones(len(vecs))
        base = results[0]["seconds"] if results else seconds
        row = {
            "backend": label,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(n_tokens / seconds),
            "speed_vs_torch_fp32": round(base / seconds, 2),
            "cos_min": round(float(cos.min()), 4),
            "cos_mean": round(float(cos.mean()), 5),
        }
        results.append(row)
        print(
            f"{label:44s} {row['seconds']:7.2f} s {row['tokens_per_s']:6d} tok/s  x{row['speed_vs_torch_fp32']:.2f}  "
            f"cos min {row['cos_min']:.4f} mean {row['cos_mean']:.5f}",
            flush=True,
        )

    seconds, ref = timed(functools.partial(fp32.embed_passages, texts))
    record("torch fp32 (sentence-transformers)", seconds, ref, None)
    dim = fp32.dim
    if fast_bf16_cpu():  # what "auto" picks on this CPU
        bf16 = SentenceTransformerEmbedder(source, precision="bf16")
        seconds, vecs = timed(functools.partial(bf16.embed_passages, texts))
        record("torch bf16 (native bf16 CPU; auto's pick)", seconds, vecs, ref)
        del bf16
    encoder, tokenizer = fp32._model[0].auto_model, fp32._model.tokenizer
    del fp32
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="embed-backends-") as tmp:
        work = Path(tmp)
        onnx_fp32 = work / "fp32.onnx"
        export_onnx(encoder, tokenizer, onnx_fp32)  # the graph `hybrid setup` quantizes
        variants = {
            "onnxruntime fp32": None,
            "onnxruntime int8 per-tensor": {"per_channel": False, "reduce_range": False},
            "onnxruntime int8 per-channel": {"per_channel": True, "reduce_range": False},
            "onnxruntime int8 per-channel reduced range": {"per_channel": True, "reduce_range": True},
        }
        for label, opts in variants.items():
            path = onnx_fp32
            if opts is not None:
                path = work / f"{len(list(work.iterdir()))}.onnx"
                quantize_dynamic(
                    str(onnx_fp32),
                    str(path),
                    weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gather"],
                    **opts,
                )
            seconds, vecs = timed(ort_runner(path, ids, dim))
            record(label, seconds, vecs, ref)
        for weight_type in ("q8_0", "q4_0"):
            path = write_gguf(source, work / f"e5-{weight_type}.gguf", weight_type)
            seconds, vecs = timed(llama_runner(path, ids, dim))
            record(f"llama.cpp {weight_type.upper()} (flash attention)", seconds, vecs, ref)
    if args.json_path:
        out = {
            "folder": args.folder,
            "chunks": len(texts),
            "tokens": n_tokens,
            "threads": THREADS,
            "results": results,
        }
        Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
