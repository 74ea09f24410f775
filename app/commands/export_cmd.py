"""`hybrid export --quant f16|q8_0|q4_k_m`: merge the adapter in use into the base, convert and
quantize to a GGUF for llama.cpp / Ollama, and print the checks (golden answers, size, speed,
perplexity). The work lives in ``app.wiring.export`` and ``adapters.export``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.commands.args import add_collection, positive_int
from app.commands.progress import add_json_option, emit_or_show, progress_bar
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the tuned model as a quantized GGUF (llama.cpp, Ollama)")
    p.add_argument("--quant", choices=("f16", "q8_0", "q4_k_m"), default="q8_0")
    p.add_argument(
        "--adapter",
        default=None,
        help="version to merge ('default' = the bundled adapter, 'none' = base model; default: the one in use)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads (default: settings.generation.n_threads)",
    )
    add_collection(p)
    add_json_option(p, "the report")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.estimates import export_estimate
    from app.wiring.export import export_current
    from app.wiring.models import base_name

    if args.json_path != "-":
        print(f"export of {base_name(settings)}: {export_estimate(settings).describe()}", file=sys.stderr)
    with progress_bar(f"export {args.quant}", quiet=args.json_path == "-") as on_progress:
        report = export_current(
            settings, quant=args.quant, adapter=args.adapter, n_threads=args.threads, on_progress=on_progress
        )
    return emit_or_show(report, args.json_path, _print)


def _print(r: dict[str, Any]) -> None:
    g = r["golden"]
    emb = r.get("embedding_type", r.get("quant"))
    print(f"{r['path']}  ({r['bytes'] / 1e6:.1f} MB, embeddings {emb}; f16 {r['f16_bytes'] / 1e6:.1f} MB)")
    asked = f" (asked as {g['mode']})" if g.get("mode") else ""
    print(f"  golden prompts{asked} identical to transformers + peft: {g['identical']}/{g['n']}")
    ppl = ", ".join(f"{k} {v:.3f}" for k, v in r["perplexity"].items())
    print(
        f"  perplexity on {r['heldout_tokens']} held-out tokens: {ppl} (ratio {r['perplexity_ratio_vs_f16']:.4f})"
    )
    if r.get("imatrix"):
        print("  quantized with an importance matrix measured on the training text")
    if r.get("base_blocks"):
        print(f"  {r['base_blocks']['tensors']} weights the adapter left alone: the base GGUF's own blocks")
    if r.get("adapter_tensors"):
        a = r["adapter_tensors"]
        print(f"  weights the adapter changed ({a['pattern']}) kept at {a['type']}")
    served = r.get("served")
    if served:
        print(
            f"  served by the app (base GGUF + GGUF LoRA, not merged): ratio {served['perplexity_ratio_vs_f16']:.4f}"
            + (
                f", golden identical {served['golden_identical']}/{g['n']}"
                if "golden_identical" in served
                else ""
            )
        )
    print(f"  speed: {r['tokens_per_s']:.1f} tokens/s")
    print(f"  Ollama: {r['modelfile']}")
    print(f"  llama.cpp commands: {r['commands']}")
