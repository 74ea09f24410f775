"""``Int8Embedder``: the ``Embedder`` port over an int8 copy of a sentence-transformers encoder,
run by ONNX Runtime on the CPU.

The copy is a folder ``index.int8_export`` writes (``model-int8.onnx``, the encoder's
``tokenizer.json`` and ``int8.json``, which records the prompts, pooling, longest input and the
parity with the fp32 vectors measured when it was built). Texts are tokenized as
sentence-transformers does (prompt prepended, special tokens added, truncated to the model's
longest input), pooled as the source folder pooled (mean or CLS) and L2-normalised, so the only
difference from the fp32 embedder is the arithmetic inside the encoder. Activations are quantized
per batch, so a text's vector moves slightly (in rounding) with the texts batched beside it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from domain.atomic import read_json
from domain.errors import ModelMissingError
from index.embedder import BatchedEmbedder

logger = logging.getLogger(__name__)

INT8_MODEL = "model-int8.onnx"
INT8_MARKER = "int8.json"
TOKENIZER_FILE = "tokenizer.json"


def int8_ready(folder: Path) -> bool:
    """Whether ``folder`` holds a finished int8 copy (the marker is written last)."""
    folder = Path(folder)
    return all((folder / f).is_file() for f in (INT8_MODEL, TOKENIZER_FILE, INT8_MARKER))


class Int8Embedder(BatchedEmbedder):
    """Embeds with an int8 ONNX copy of an encoder; safe to share between threads."""

    precision = "int8"

    def __init__(self, folder: str | Path, *, name: str | None = None, threads: int = 2) -> None:
        """Load the copy.

        Args:
            folder: a folder written by ``index.int8_export.export_int8``.
            name: identity string recorded with indexes (default: the source folder's name, so an
                int8 index and an fp32 one of the same encoder differ only in precision).
            threads: ONNX Runtime intra-op threads.

        Raises:
            ModelMissingError: the folder is incomplete or does not load.
        """
        path = Path(folder).expanduser()
        if not int8_ready(path):
            raise ModelMissingError(
                f"no int8 embedder at {path} — run `hybrid setup --only embedder_int8`, "
                "or set HYBRID_INDEX__EMBED_PRECISION=fp32"
            )
        t0 = time.perf_counter()
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            info: dict[str, Any] = read_json(path / INT8_MARKER)
            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, int(threads))
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(
                str(path / INT8_MODEL), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        except ImportError as e:
            raise ModelMissingError(
                f"int8 embedding needs onnxruntime ({e}) — run `pip install -e .`, "
                "or set HYBRID_INDEX__EMBED_PRECISION=fp32"
            ) from e
        except Exception as e:  # any runtime or file failure means the copy is unusable
            raise ModelMissingError(
                f"cannot load the int8 embedder at {path} ({type(e).__name__}: {e}) — "
                "run `hybrid setup --only embedder_int8 --force`"
            ) from e
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(info["max_seq_length"]))
        counter = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        counter.no_truncation()
        counter.no_padding()
        self._tokenizer, self._counter = tokenizer, counter
        self._pooling = str(info.get("pooling", "mean"))
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._dim = int(info["dim"])
        self._name = name or str(info.get("source_name") or path.name)
        self._path = path
        self.source = Path(str(info.get("source") or path))  # the fp32 folder it was made from
        prompts: dict[str, Any] = dict(info.get("prompts") or {})
        self.query_prefix: str = prompts.get("query") or ""
        self.passage_prefix: str = prompts.get("passage") or prompts.get("document") or ""
        self._lock = threading.Lock()
        logger.info(
            "loaded int8 embedder %s (dim %d) from %s in %.1f s",
            self._name,
            self._dim,
            path,
            time.perf_counter() - t0,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone: no prefix, no special tokens, never truncated."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        return self._run([e.ids for e in self._tokenizer.encode_batch([prefix + t for t in texts])])

    def _run(self, ids_list: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in ids_list)
        ids = np.zeros((len(ids_list), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, row in enumerate(ids_list):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self._session.run(None, feed)[0]
        if self._pooling == "cls":
            return np.asarray(hidden[:, 0, :], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        return np.asarray(
            (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9), dtype=np.float32
        )
