"""Builds the int8 copy of a sentence-transformers encoder that ``index.int8_embedder`` runs, and
checks it against the fp32 vectors before anything uses it.

The encoder is exported to ONNX by torch's exporter, then ONNX Runtime's dynamic quantizer stores
every matrix multiply's weights as int8 (per output channel, 7-bit range: CPUs without AVX-512 VNNI
multiply u8 by s8 with a 16-bit intermediate that saturates on full-range weights) and quantizes
activations per batch at run time; the token embedding table is stored as int8 too (a quarter of
the disk and memory). Attention products, softmax and layer norms stay fp32. Which runtime and
options were chosen, and why, is measured in ``corpus/measured/indexing/int8.md``.

Parity is the cosine between the int8 and fp32 vectors of a fixed multilingual text set, with the
query and the passage prompt; the copy is kept only when the lowest cosine reaches ``MIN_INT8_COS``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from domain.atomic import read_json, write_json_atomic
from domain.errors import SetupError
from domain.progress import ProgressFn, no_progress
from index.e5_convert import folder_bytes
from index.int8_embedder import INT8_MARKER, INT8_MODEL, TOKENIZER_FILE, Int8Embedder, int8_ready

logger = logging.getLogger(__name__)

MIN_INT8_COS = 0.98
OPSET = 17


class ParityError(SetupError):
    """The int8 copy's vectors are too far from the fp32 ones; the message carries the cosine."""


def int8_parity(
    fp32: Any, int8: Any, texts: tuple[str, ...] | None = None, *, min_cos: float = MIN_INT8_COS
) -> dict[str, Any]:
    """Cosine between the two embedders' vectors of ``texts`` (queries and passages).

    Returns:
        {"min_cos", "mean_cos", "n_vectors"}.

    Raises:
        ParityError: the lowest cosine is below ``min_cos`` (one line, with the measured cosine).
    """
    if texts is None:
        from index.e5_parity import PARITY_TEXTS

        texts = PARITY_TEXTS
    cos = np.concatenate(
        [
            np.sum(fp32.embed_queries(texts) * int8.embed_queries(texts), axis=1),
            np.sum(fp32.embed_passages(texts) * int8.embed_passages(texts), axis=1),
        ]
    )
    figures = {
        "min_cos": round(float(cos.min()), 6),
        "mean_cos": round(float(cos.mean()), 6),
        "n_vectors": int(cos.size),
    }
    if figures["min_cos"] < min_cos:
        raise ParityError(
            f"int8 embedder vectors disagree with fp32 (lowest cosine {figures['min_cos']:.6f} < "
            f"{min_cos} over {figures['n_vectors']} vectors) — keep HYBRID_INDEX__EMBED_PRECISION=fp32"
        )
    return figures


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporter's tracing warnings and the quantizer's per-tensor notes (logged on the root
    logger) out of the user's terminal; the parity check is what says whether the copy is good."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def export_onnx(encoder: Any, tokenizer: Any, path: Path) -> None:
    """Write ``encoder`` (a transformers encoder) to ``path`` as an fp32 ONNX graph from token ids
    (and mask, and token types when the tokenizer gives them) to the last hidden state, batch and
    length dynamic; ``bench/embed_backends.py`` quantizes the same graph its own ways."""
    import torch

    sample = tokenizer(
        ["passage: hello world", "query: a longer sentence"], padding=True, return_tensors="pt"
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    with torch.no_grad(), _quiet():
        torch.onnx.export(
            _Hidden(encoder.eval()),
            tuple(sample[n] for n in names),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _pooling_mode(model: Any) -> str:
    config = model[1].get_config_dict() if len(model) > 1 else {}
    mode = str(config.get("pooling_mode", "mean"))
    if mode not in ("mean", "cls"):
        raise SetupError(f"int8 embedding supports mean or CLS pooling, this encoder pools by {mode!r}")
    return mode


def export_int8(
    source: Path,
    dest: Path,
    *,
    name: str | None = None,
    min_cos: float = MIN_INT8_COS,
    on_progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """Export ``source`` (a sentence-transformers folder) to an int8 ONNX copy in ``dest``.

    The copy is built in a scratch folder beside ``dest`` and moved into place only after its
    parity check passed, so an interrupted or failed build leaves any previous copy as it was.

    Returns:
        the record written to ``dest/int8.json``.

    Raises:
        ParityError: the copy's vectors are too far from the fp32 ones (nothing is kept).
        SetupError: the source does not load or a library step failed.
    """
    source, dest = Path(source), Path(dest)
    t0 = time.perf_counter()
    work = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from index.embedder import SentenceTransformerEmbedder

        on_progress(0, 4, "loading the fp32 encoder")
        fp32 = SentenceTransformerEmbedder(source, name=name or source.name)
        model = fp32._model
        pooling = _pooling_mode(model)
        if not (source / TOKENIZER_FILE).is_file():
            raise SetupError(f"{source} has no {TOKENIZER_FILE} — int8 embedding needs a fast tokenizer")
        on_progress(1, 4, "exporting to ONNX")
        fp32_onnx = work / "model-fp32.onnx"
        export_onnx(model[0].auto_model, model.tokenizer, fp32_onnx)
        on_progress(2, 4, "quantizing to int8")
        with _quiet():
            quantize_dynamic(
                str(fp32_onnx),
                str(work / INT8_MODEL),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                op_types_to_quantize=["MatMul", "Gather"],
            )
        fp32_onnx.unlink()
        shutil.copyfile(source / TOKENIZER_FILE, work / TOKENIZER_FILE)
        record: dict[str, Any] = {
            "source": str(source),
            "source_name": name or source.name,
            "fingerprint": source_fingerprint(source),
            "dim": fp32.dim,
            "max_seq_length": int(model.max_seq_length or model.tokenizer.model_max_length),
            "pooling": pooling,
            "prompts": {"query": fp32.query_prefix, "passage": fp32.passage_prefix},
            "runtime": "onnxruntime dynamic int8 (per-channel weights, reduced range; int8 token table)",
        }
        write_json_atomic(work / INT8_MARKER, record)
        on_progress(3, 4, "checking int8 vectors against fp32")
        record["parity"] = int8_parity(fp32, Int8Embedder(work, name=record["source_name"]), min_cos=min_cos)
        record["seconds"] = round(time.perf_counter() - t0, 2)
        write_json_atomic(work / INT8_MARKER, record)
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
    except SetupError:
        raise
    except (OSError, RuntimeError, ValueError, ImportError) as e:
        raise SetupError(
            f"building the int8 embedder into {dest} failed ({type(e).__name__}: {e}) — "
            "re-run `hybrid setup --only embedder_int8 --force`"
        ) from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on_progress(4, 4, f"int8 parity lowest cosine {record['parity']['min_cos']:.6f}")
    logger.info("built the int8 embedder in %s in %.1f s", dest, record["seconds"])
    return record


def source_fingerprint(source: Path) -> list[list[Any]]:
    """Name, size and modification time of the source folder's weight files: a reconverted or
    replaced encoder gives another fingerprint, so its int8 copy is rebuilt."""
    return [
        [f.name, f.stat().st_size, f.stat().st_mtime_ns]
        for f in sorted(Path(source).glob("*"))
        if f.suffix in (".safetensors", ".bin") and f.is_file()
    ]


def setup_int8(
    source: Path,
    dest: Path,
    *,
    name: str | None = None,
    force: bool = False,
    on_progress: ProgressFn = no_progress,
) -> dict[str, Any]:
    """The `hybrid setup` step: build the int8 copy once (again with ``force`` or when the fp32
    folder changed since), check parity, report it."""
    source, dest = Path(source), Path(dest)
    status = "already done"
    record: dict[str, Any] = read_json(dest / INT8_MARKER) if int8_ready(dest) and not force else {}
    if record.get("source") != str(source) or record.get("fingerprint") != source_fingerprint(source):
        record, status = export_int8(source, dest, name=name, on_progress=on_progress), "done"
    parity = record.get("parity") or {}
    return {
        "name": "embedder_int8",
        "path": str(dest),
        "bytes": folder_bytes(dest),
        "parity_min_cos": parity.get("min_cos"),
        "parity_mean_cos": parity.get("mean_cos"),
        "status": status,
    } | ({"seconds": record["seconds"]} if status == "done" else {})
