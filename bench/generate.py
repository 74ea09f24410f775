"""Generation speed of our llama.cpp pipeline against two baselines measured in the same run: raw
``llama_cpp.Llama`` (streaming ``create_completion`` of the very same prompt string, same threads)
and the transformers reference backend. Greedy, the same chat prompt, ``--new-tokens`` new tokens.

Per run: first-token latency, decode tokens/s (tokens after the first / time after the first) and
end-to-end tokens/s (all tokens / whole request). Tokens are counted by re-tokenizing each output
with the base model's tokenizer, the same way for every contender. Runs are interleaved (ours, raw,
transformers, then the reverse order) so machine noise hits all alike; the medians are compared,
and so is the median of per-run ratios (neighbours in time share the machine's load). Raw llama.cpp
and ours are reset before each run, so neither reuses the previous run's prompt (ours would: it
keeps the prefix a request shares with the previous one).

torch runs its threads through libgomp. With its default (spinning) wait policy, two threads on
two cores shared with other work collapse (an OpenMP build of llama.cpp measured 2.6 tok/s instead
of 23); the bench therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless told otherwise, as the app and
the Makefile do, which helps transformers (1.2 → 3.0 tok/s on a shared machine). Our llama.cpp is
built with ggml's own thread pool (``-DGGML_OPENMP=OFF``), which the setting does not touch.

Run: ``python bench/generate.py [--runs 3] [--new-tokens 128] [--threads 2] [--json FILE]``
(about 3 minutes on 2 cores; needs `hybrid setup`). When an adapter is in use, our pipeline is also
timed with it switched on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MESSAGES = [
    {"role": "system", "content": "You are a careful senior Python engineer."},
    {
        "role": "user",
        "content": "Write a Python module with a least-recently-used cache class (get, put, delete, "
        "type hints, docstrings) and a usage example, then explain the time complexity of each method.",
    },
]


def timed(stream: Iterator[str], count_tokens: Callable[[str], int]) -> dict[str, float]:
    """Consume ``stream``; return first-token seconds, decode and end-to-end tokens/s."""
    t0 = time.perf_counter()
    first = last = 0.0
    pieces: list[str] = []
    for piece in stream:
        now = time.perf_counter()
        if not pieces:
            first = now
        pieces.append(piece)
        last = now
    n_tokens = count_tokens("".join(pieces))
    return {
        "tokens": n_tokens,
        "first_token_s": first - t0,
        "decode_tokens_per_s": (n_tokens - 1) / (last - first) if last > first else 0.0,
        "e2e_tokens_per_s": n_tokens / (last - t0) if last > t0 else 0.0,
    }


def raw_stream(llm: Any, prompt: str, new_tokens: int) -> Iterator[str]:
    llm.reset()  # no prompt-cache reuse between runs (ours is reset too)
    for chunk in llm.create_completion(
        prompt, max_tokens=new_tokens, temperature=0.0, top_k=1, repeat_penalty=1.0, stream=True
    ):
        text = chunk["choices"][0]["text"]
        if text:
            yield text


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument(
        "--lora", type=Path, default=None, help="time this GGUF LoRA instead of the one in use"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE", "inherit"],
        default="PASSIVE",
        help="OpenMP wait policy for llama.cpp and torch (both use libgomp); 'inherit' keeps the environment's",
    )
    args = parser.parse_args(argv)
    if args.omp_wait_policy != "inherit":  # read once, when the first OpenMP library loads (below)
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    import llama_cpp
    import torch

    from adapters.hf_generator import TransformersGenerator
    from adapters.llamacpp_generator import LlamaCppGenerator
    from app.settings import load_settings
    from app.wiring.active_adapter import current_adapter
    from app.wiring.generation import LORA_GGUF
    from app.wiring.models import base_gguf_path, base_hf_path

    torch.set_num_threads(args.threads)
    settings = load_settings()
    gguf = base_gguf_path(settings)
    folder, label = current_adapter(settings)
    lora = folder / LORA_GGUF if folder is not None and (folder / LORA_GGUF).is_file() else None
    if args.lora is not None:
        lora, label = args.lora, args.lora.parent.name
    n_ctx = 2048

    ours = LlamaCppGenerator(gguf, lora_path=lora, n_threads=args.threads, n_ctx=n_ctx, adapter_label=label)
    prompt = ours.format_prompt(MESSAGES)
    raw = llama_cpp.Llama(
        str(gguf), n_threads=args.threads, n_threads_batch=args.threads, n_ctx=n_ctx, verbose=False
    )
    hf = (
        None
        if args.skip_transformers
        else TransformersGenerator(base_hf_path(settings), n_threads=args.threads)
    )
    count = ours.count_tokens

    def cold(adapter: bool) -> Iterator[str]:
        ours.forget()
        return ours.generate(MESSAGES, adapter=adapter, max_new_tokens=args.new_tokens)

    contenders: dict[str, Callable[[], Iterator[str]]] = {
        "ours": lambda: cold(False),
        "raw": lambda: raw_stream(raw, prompt, args.new_tokens),
    }
    if ours.has_adapter:
        contenders["ours+adapter"] = lambda: cold(True)
    if hf is not None:
        contenders["transformers"] = lambda: hf.generate(
            MESSAGES, adapter=False, max_new_tokens=args.new_tokens
        )

    for make in contenders.values():  # warm-up: page in the weights, build compute graphs
        for _ in zip(range(4), make(), strict=False):
            pass
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    order = list(contenders)
    for run in range(args.runs):
        for name in order if run % 2 == 0 else reversed(order):  # alternate who goes first
            rows[name].append(timed(contenders[name](), count))
    medians = {name: median_row(r) for name, r in rows.items()}

    print(
        f"model {gguf.name}; prompt {len(ours.encode_prompt(MESSAGES))} tokens; up to {args.new_tokens} new "
        f"tokens, greedy; {args.threads} threads; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}; "
        f"medians of {args.runs} interleaved runs"
        + (f"; adapter {label}" if ours.has_adapter else "; no adapter in use")
    )
    names = {
        "ours": "ours (LlamaCppGenerator)",
        "ours+adapter": "ours, adapter on",
        "raw": "raw llama_cpp.Llama",
        "transformers": "transformers (TransformersGenerator)",
    }
    for name, m in medians.items():
        print(
            f"{names[name]:<38} {m['tokens']:>5.0f} tokens  decode {m['decode_tokens_per_s']:6.1f} tok/s  "
            f"end-to-end {m['e2e_tokens_per_s']:6.1f} tok/s  first token {m['first_token_s']:.2f} s"
        )
    ratios = {}
    for base in ("raw", "transformers"):
        if base in medians:
            for kind in ("decode", "e2e"):
                key = f"{kind}_tokens_per_s"
                ratios[f"ours/{base}_{kind}"] = medians["ours"][key] / medians[base][key]
                ratios[f"ours/{base}_{kind}_paired"] = statistics.median(
                    a[key] / b[key] for a, b in zip(rows["ours"], rows[base], strict=True)
                )
            print(
                f"ours/{base} = {ratios[f'ours/{base}_decode']:.2f} "
                f"(end-to-end {ratios[f'ours/{base}_e2e']:.2f}; median of per-run ratios "
                f"{ratios[f'ours/{base}_decode_paired']:.2f}, "
                f"end-to-end {ratios[f'ours/{base}_e2e_paired']:.2f})"
            )
    if args.json:
        args.json.write_text(
            json.dumps({"runs": rows, "medians": medians, "ratios": ratios}, indent=2), encoding="utf-8"
        )
    ours.close()
    raw.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
