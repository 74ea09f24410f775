"""Greedy agreement of exported GGUFs with transformers + peft on prompts the export's own golden
check never uses: a tuning set for choosing how the export is made (issue 28), so the golden
prompts stay a held-out check.

The prompts are one mode's prompts (``--mode``, default tuned; tuned_rag retrieves from the
collection's index as the assistant does) for the collection's evaluation rows of the ``tune``
split, every k-th by id, leaving out the export's golden rows (``app.evaluation.gate.gate_rows``
with 5). Each ``--gguf`` (optionally ``PATH+LORA``: a base GGUF with a GGUF LoRA at run time) is
compared token by token with the reference; ``--variant TYPE`` first writes a q4_k_m file from the
export's cached f16 with the adapter's weights at TYPE and the base's own blocks elsewhere.

    python bench/export_golden.py --collection sample --profile qwen-1.5b --adapter q15-v1 --n 10 \
        --variant q8_0 --variant f16

Prints one line per file: identical answers of n, and the mean length of the agreeing prefix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path.pop(0)  # bench/index.py is not the index package
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def variant(f16: Path, base_gguf: Path, adapter_dir: Path, kind: str, out: Path) -> Path:
    """A q4_k_m file made as the export makes it, with the adapter's weights at ``kind``."""
    from adapters.export import quantize_merged

    quantize_merged(
        f16, out, "q4_k_m", adapter_dir=adapter_dir, base_gguf=base_gguf, n_threads=2, adapter_type=kind
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="sample")
    ap.add_argument("--profile")
    ap.add_argument("--adapter", required=True, help="a version of the collection's adapters")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--mode", default="tuned", choices=("tuned", "tuned_rag"))
    ap.add_argument("--gguf", action="append", default=[], help="PATH or BASE+LORA")
    ap.add_argument("--variant", action="append", default=[], help="adapter weights' type: q8_0 or f16")
    ap.add_argument("--work", type=Path, default=Path("/tmp/export-golden"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from adapters.export import _cut, reference_answers, reference_model
    from adapters.gguf_checks import answers_and_speed
    from app.evaluation.gate import gate_rows
    from app.settings import load_settings
    from app.wiring.active_adapter import registry_root
    from app.wiring.collections import with_collection
    from app.wiring.dataset_rows import load_rows
    from app.wiring.export import golden_messages
    from app.wiring.models import base_gguf_path, base_hf_path, with_profile

    settings = with_profile(with_collection(load_settings(), args.collection), args.profile)
    adapter_dir = registry_root(settings) / args.adapter
    golden = {r["id"] for r in gate_rows(settings, 5)}
    tune = sorted(
        (r for r in load_rows(settings, "eval") if r["split"] == "tune" and r["id"] not in golden),
        key=lambda r: r["id"],
    )
    step = max(1, len(tune) // args.n)
    rows = tune[::step][: args.n]
    prompts = golden_messages(settings, rows, args.mode)

    t0 = time.perf_counter()
    tok, model = reference_model(base_hf_path(settings), adapter_dir)
    prompt_ids, reference, stops = reference_answers(tok, model, prompts, args.max_new_tokens)
    del model
    print(f"reference: {len(rows)} tune prompts in {time.perf_counter() - t0:.0f} s")

    files: list[tuple[str, Path, Path | None]] = []
    args.work.mkdir(parents=True, exist_ok=True)
    f16 = settings.ws.exports / args.adapter / "model-f16.gguf"
    for kind in args.variant:
        out = variant(
            f16, base_gguf_path(settings), adapter_dir, kind, args.work / f"q4_k_m-adapter-{kind}.gguf"
        )
        files.append((f"q4_k_m, adapter weights {kind}, base blocks", out, None))
    for spec in args.gguf:
        path, _, lora = spec.partition("+")
        files.append((spec, Path(path), Path(lora) if lora else None))

    results = []
    for label, path, lora in files:
        answers, tps = answers_and_speed(
            path, prompt_ids, max_new_tokens=args.max_new_tokens, n_threads=2, lora_path=lora
        )
        answers = [_cut(a, stops) for a in answers]
        same = [a == r for a, r in zip(answers, reference, strict=True)]
        prefix = []
        for a, r in zip(answers, reference, strict=True):
            i = 0
            while i < min(len(a), len(r)) and a[i] == r[i]:
                i += 1
            prefix.append(i)
        print(
            f"{label}: identical {sum(same)} of {len(same)}; agreeing prefix mean {sum(prefix) / len(prefix):.1f} tokens; {tps:.1f} tokens/s"
        )
        results.append(
            {"file": label, "identical": sum(same), "n": len(same), "per_prompt": same, "prefix": prefix}
        )
    if args.out:
        args.out.write_text(
            json.dumps({"mode": args.mode, "rows": [r["id"] for r in rows], "results": results}, indent=1)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
