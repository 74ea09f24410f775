"""Checks on an exported GGUF through llama-cpp-python: greedy answers from given prompt token ids,
generation speed, and perplexity on held-out text (full logits, one window at a time).

The reference answers (transformers + peft) and the choice of prompts and text are the export's
business; this module only runs llama.cpp and counts.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from domain.errors import ExportError

logger = logging.getLogger(__name__)


@contextmanager
def open_gguf(
    path: Path,
    *,
    n_ctx: int = 2048,
    n_threads: int = 2,
    logits_all: bool = False,
    lora_path: Path | None = None,
) -> Any:
    """A quiet ``llama_cpp.Llama`` on ``path`` (closed on exit)."""
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise ExportError("llama-cpp-python is not installed — run `make install`") from e
    try:
        llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=logits_all,
            verbose=False,
            seed=0,
            lora_path=str(lora_path) if lora_path else None,
        )
    except (ValueError, RuntimeError) as e:
        raise ExportError(f"llama.cpp cannot load {path} ({e}) — re-run the export") from e
    try:
        yield llm
    finally:
        llm.close()


def greedy_ids(llm: Any, prompt_ids: Sequence[int], max_new_tokens: int) -> tuple[list[int], float]:
    """(generated token ids up to the first end-of-generation token, seconds spent generating)."""
    import llama_cpp

    out: list[int] = []
    t0 = time.perf_counter()
    llm.reset()
    for tok in llm.generate(list(prompt_ids), temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
        out.append(int(tok))
        if len(out) >= max_new_tokens:
            break
    return out, time.perf_counter() - t0


def answers_and_speed(
    path: Path,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    n_threads: int,
    lora_path: Path | None = None,
) -> tuple[list[list[int]], float]:
    """Greedy answers to each prompt and the median generation speed (tokens/s, prompt included)."""
    answers, speeds = [], []
    n_ctx = max(len(p) for p in prompts) + max_new_tokens + 8
    with open_gguf(path, n_ctx=max(512, n_ctx), n_threads=n_threads, lora_path=lora_path) as llm:
        for p in prompts:
            ids, seconds = greedy_ids(llm, p, max_new_tokens)
            answers.append(ids)
            if ids and seconds > 0:
                speeds.append(len(ids) / seconds)
    return answers, statistics.median(speeds) if speeds else 0.0


def perplexity(
    path: Path,
    token_ids: Sequence[int],
    *,
    window: int = 512,
    n_threads: int = 2,
    lora_path: Path | None = None,
) -> float:
    """exp(mean next-token NLL) of ``token_ids``, in independent windows of ``window`` tokens
    (with ``lora_path``, a GGUF LoRA applied to the model at full scale).

    Raises:
        ExportError: fewer than two tokens.
    """
    import numpy as np

    if len(token_ids) < 2:
        raise ExportError("held-out text is too short for perplexity — give at least a few sentences")
    nll, count = 0.0, 0
    with open_gguf(path, n_ctx=window, n_threads=n_threads, logits_all=True, lora_path=lora_path) as llm:
        for start in range(0, len(token_ids) - 1, window):
            chunk = list(token_ids[start : start + window])
            if len(chunk) < 2:
                break
            llm.reset()
            llm.eval(chunk)
            logits = np.asarray(llm.scores[: len(chunk) - 1], dtype=np.float64)
            peak = logits.max(axis=1, keepdims=True)
            logz = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
            picked = logits[np.arange(len(chunk) - 1), chunk[1:]]
            nll += float((logz - picked).sum())
            count += len(chunk) - 1
    return math.exp(nll / count)
