"""Benchmark: our LoRA trainer against a plain transformers ``Trainer`` + peft with default settings,
on the same training rows and the same LoRA configuration, in one run.

Reports tokens/s (non-padding tokens through forward + backward) and peak RSS of each (each runs in
its own process, so the peaks are separate), their ratio, the achieved GFLOP/s of each against a
torch matmul peak measured in the same run, and — with ``--precision-check`` — how closely the bf16
loss curve follows the fp32 one over the same steps.

    python bench/train.py --steps 30 --precision-check --json bench_train.json

With ``--profiles qwen,qwen-1.5b`` it instead trains the same rows on each profile's base (its
training copy in the workspace), in one run, and reports tokens/s, seconds per training row and
peak RSS of each, and the time-per-row ratio to the first profile.

    python bench/train.py --profiles qwen,qwen-1.5b --steps 8 --json bench_profiles.json

Above ~300 lines because it is a benchmark script: our trainer and the plain ``Trainer`` baseline
(and the profiles) run side by side in one run, so they live in one file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_BASE = REPO / "workspace" / "models" / "qwen2.5-coder-0.5b-instruct-hf"


# --------------------------------------------------------------------------- data
def _paragraphs(docs: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted(docs.rglob("*")):
        if p.suffix.lower() not in (".md", ".txt") or not p.is_file():
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        for para in re.split(r"\n\s*\n", text):
            para = para.strip()
            if len(para) > 80:
                out.append((p.relative_to(docs).as_posix(), para[:700]))
    return out


def _search_fn(docs: Path):
    """A small lexical search over the corpus documents' paragraphs (no index needed)."""
    from domain.types import Chunk, Hit

    paras = _paragraphs(docs)

    def grams(s: str) -> set[str]:
        s = re.sub(r"\s+", "", s.lower())
        return {s[i : i + 2] for i in range(len(s) - 1)}

    pgrams = [grams(t) for _, t in paras]

    def search(query: str, k: int) -> list[Hit]:
        q = grams(query)
        scored = sorted(range(len(paras)), key=lambda i: -len(q & pgrams[i]))[:k]
        return [
            Hit(
                chunk=Chunk(
                    chunk_id=str(i),
                    path=paras[i][0],
                    title="",
                    heading="",
                    text=paras[i][1],
                    start=0,
                    end=len(paras[i][1]),
                ),
                score=0.0,
                rank=r + 1,
            )
            for r, i in enumerate(scored)
        ]

    return search


def build_bench_examples(data: list[Path], docs: Path, n_rows: int, seed: int, index: str | None = None):
    """The training job's own examples: the answering prompts (``domain.prompts``) with the training
    passage budget, RAG rows through the real index when ``index`` is built, else a lexical search."""
    from adapters.train_params import TrainingParams
    from adapters.training_data import build_examples, load_train_rows
    from domain.prompts import build_messages

    rows = load_train_rows(data)
    random.Random(seed).shuffle(rows)
    rows = rows[:n_rows]
    p = TrainingParams()
    search = None
    if index:
        from app.settings import load_settings
        from app.wiring.index import build_retriever

        retriever = build_retriever(load_settings(), index)
        search = lambda q, k: retriever.search(q, k=k)  # noqa: E731
    elif docs.is_dir():
        search = _search_fn(docs)
    ex, _ = build_examples(
        rows,
        build_messages=lambda m, q, h: build_messages(m, q, h, context_tokens=p.context_tokens),
        search=search,
        rag_share=p.rag_share,
        source_prob=p.source_prob,
        distractors=(p.distractors_min, p.distractors_max),
        seed=seed,
    )
    return ex


# --------------------------------------------------------------------------- flops
def flops_per_token(config, n_tokens: int, n_answer: int, avg_len: float) -> float:
    """Useful training FLOPs for a LoRA run (frozen weights: no weight gradients): forward 2·P and
    backward 2·P over the linear layers for every token, attention scores both ways, and the lm_head
    (forward + backward) only where the loss is taken. Returned per processed token."""
    h, L, inter, vocab = (
        config.hidden_size,
        config.num_hidden_layers,
        config.intermediate_size,
        config.vocab_size,
    )
    kv = h // config.num_attention_heads * config.num_key_value_heads
    p_lin = L * (h * h * 2 + h * kv * 2 + 3 * h * inter)
    attn = L * 2 * 2 * avg_len / 2 * h  # QK^T and AV, average causal span
    total = n_tokens * (4 * p_lin + 3 * attn) + n_answer * 4 * h * vocab
    return total / n_tokens


def matmul_peak_gflops(dtype: str, threads: int, n: int = 2048, reps: int = 5) -> float:
    import torch

    torch.set_num_threads(threads)
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


# --------------------------------------------------------------------------- workers
def _rss_peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _cpu_rate(cpu: list[tuple[float, int]], threads: int) -> float:
    """Tokens per second of process CPU time, times ``threads``: the throughput the run would have
    on ``threads`` otherwise idle cores. Other processes' load on shared cores barely moves it,
    unlike wall-clock rates. The first step (warm-up) is left out."""
    (t0, n0), (t1, n1) = cpu[1] if len(cpu) > 2 else cpu[0], cpu[-1]
    return (n1 - n0) / (t1 - t0) * threads if t1 > t0 else 0.0


def run_ours(args, examples, kind: str) -> dict:
    """kind: "bf16", "fp32" or "bf16-all" (LoRA on all seven linear layers)."""
    import torch

    from adapters.train_params import TrainingParams
    from adapters.trainer import load_base, train_lora

    torch.set_num_threads(args.threads)
    all_linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    params = TrainingParams(
        precision=kind.split("-")[0],
        target_modules=all_linear if kind.endswith("-all") else TrainingParams().target_modules,
        epochs=1,
        val_share=0.0,
        max_length=args.max_length,
        checkpoint_every=10_000,
        **({"max_batch_tokens": args.max_batch_tokens} if args.max_batch_tokens else {}),
        warmup_ratio=0.0,
    )
    model, tok = load_base(Path(args.base), params)
    n = args.steps * params.batch_size
    stamps: list[float] = []
    losses: list[float] = []
    step_rates: list[float] = []
    cpu: list[tuple[float, int]] = [(time.process_time(), 0)]

    def on_loss(r: dict) -> None:
        losses.append(r["loss"])
        step_rates.append(r["tokens"] / r["seconds"])
        cpu.append((time.process_time(), cpu[-1][1] + r["tokens"]))

    result = train_lora(
        model,
        tok,
        examples[:n],
        [],
        params,
        on_progress=lambda _d, _t, _m="": stamps.append(time.perf_counter()),
        on_loss=on_loss,
    )
    return {
        "tokens": result.tokens,
        "answer_tokens": result.answer_tokens,
        "seconds": result.seconds,
        "steps": result.steps,
        "losses": losses,
        "tokens_per_s": result.tokens_per_s,
        "step_seconds": [round(b - a, 3) for a, b in zip(stamps, stamps[1:], strict=False)],
        "median_step_tokens_per_s": statistics.median(step_rates[1:] or step_rates),
        "cpu_tokens_per_s": _cpu_rate(cpu, args.threads),
        "n_examples": result.n_train,
        "dropped": len(result.dropped_too_long),
    }


def run_baseline(args, examples) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from adapters.batching import encode_examples
    from adapters.train_params import TrainingParams

    torch.set_num_threads(args.threads)
    p = TrainingParams()
    tok = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=list(p.target_modules),
            task_type="CAUSAL_LM",
        ),
    )
    enc, _ = encode_examples(tok, examples[: args.steps * p.batch_size], max_length=args.max_length)
    data = [
        {
            "input_ids": list(e.ids),
            "attention_mask": [1] * len(e.ids),
            "labels": [-100] * e.n_prompt + list(e.ids[e.n_prompt :]),
        }
        for e in enc
    ]
    counted = {"tokens": 0, "answer": 0}
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)

    def collate(features):
        counted["tokens"] += sum(len(f["input_ids"]) for f in features)
        counted["answer"] += sum(sum(1 for x in f["labels"] if x != -100) for f in features)
        return collator(features)

    stamps: list[tuple[float, int]] = []

    cpu: list[tuple[float, int]] = []

    class Stamp(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):  # noqa: ARG002
            if not cpu:
                cpu.append((time.process_time(), 0))

        def on_step_end(self, a, state, control, **kw):  # noqa: ARG002
            stamps.append((time.perf_counter(), counted["tokens"]))
            cpu.append((time.process_time(), counted["tokens"]))

    out = tempfile.mkdtemp(prefix="bench-hf-")
    targs = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=p.batch_size,
        learning_rate=p.lr,
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=p.seed,
        disable_tqdm=True,
    )
    t0 = time.perf_counter()
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collate, callbacks=[Stamp()])
    trainer.train()
    seconds = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "tokens": counted["tokens"],
        "answer_tokens": counted["answer"],
        "seconds": seconds,
        "steps": len(stamps),
        "losses": losses,
        "tokens_per_s": counted["tokens"] / seconds,
        "median_step_tokens_per_s": statistics.median(
            (b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(stamps, stamps[1:], strict=False)
        ),
        "cpu_tokens_per_s": _cpu_rate(cpu, args.threads),
        "n_examples": len(data),
    }


def worker(args) -> None:
    from adapters.training_data import read_examples

    examples = read_examples(args.examples)
    if args.worker == "baseline":
        res = run_baseline(args, examples)
    else:
        res = run_ours(args, examples, args.worker.split("-", 1)[1])
    res["peak_rss_gb"] = round(_rss_peak_gb(), 3)
    print("RESULT " + json.dumps(res))


def _spawn(args, kind: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--base",
        args.base,
        "--seed",
        str(args.seed),
        "--max-length",
        str(args.max_length),
        "--max-batch-tokens",
        str(args.max_batch_tokens),
        "--examples",
        args.examples,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base", default=str(DEFAULT_BASE))
    ap.add_argument(
        "--data", nargs="+", default=None, help="train JSONL file(s) (default: corpus/train*.jsonl)"
    )
    ap.add_argument("--docs", default=str(REPO / "corpus" / "docs"))
    ap.add_argument(
        "--index",
        default="sample",
        help="collection whose index gives RAG rows ('' = lexical search over --docs)",
    )
    ap.add_argument("--rows", type=int, default=420)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument(
        "--max-batch-tokens", type=int, default=0, help="ours: padded tokens per pass (0 = default)"
    )
    ap.add_argument("--precision-check", action="store_true", help="also run ours in fp32 and compare losses")
    ap.add_argument("--all-linear", action="store_true", help="also run ours with LoRA on all linear layers")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--profiles", default=None, help="comma-separated model profiles to compare (ours only, same rows)"
    )
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16", "fp32"),
        help="with --profiles (auto: this CPU's)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--examples", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.data is None:
        merged = REPO / "corpus" / "train.jsonl"
        args.data = (
            [str(merged)]
            if merged.is_file()
            else [str(p) for p in sorted((REPO / "corpus").glob("train_*.jsonl"))]
        )
    if args.worker:
        worker(args)
        return

    from adapters.training_data import write_examples

    # the examples are built once here (the index stays out of the measured processes)
    examples = build_bench_examples(
        [Path(d) for d in args.data], Path(args.docs), args.rows, args.seed, args.index
    )
    random.Random(args.seed).shuffle(examples)
    args.examples = str(Path(tempfile.mkdtemp(prefix="bench-train-")) / "examples.jsonl")
    write_examples(args.examples, examples)

    if args.profiles:
        compare_profiles(args)
        return

    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(args.base)
    peaks = {d: round(matmul_peak_gflops(d, args.threads), 1) for d in ("bf16", "fp32")}
    report: dict = {
        "steps": args.steps,
        "threads": args.threads,
        "matmul_peak_gflops": peaks,
        "load_avg_start": os.getloadavg()[0],
    }
    runs = {"ours-bf16": _spawn(args, "ours-bf16")}
    if args.precision_check:
        runs["ours-fp32"] = _spawn(args, "ours-fp32")
    if args.all_linear:
        runs["ours-bf16-all"] = _spawn(args, "ours-bf16-all")
    if not args.skip_baseline:
        runs["baseline"] = _spawn(args, "baseline")
    for name, r in runs.items():
        avg_len = r["tokens"] / max(1, r["n_examples"])
        fpt = flops_per_token(config, r["tokens"], r["answer_tokens"], avg_len)
        r["achieved_gflops"] = round(fpt * r["tokens_per_s"] / 1e9, 1)
        r["achieved_gflops_median_step"] = round(fpt * r["median_step_tokens_per_s"] / 1e9, 1)
        peak = peaks["bf16" if name.startswith("ours-bf16") else "fp32"]
        r["share_of_peak"] = round(r["achieved_gflops"] / peak, 3)
        r["tokens_per_s"] = round(r["tokens_per_s"], 1)
        r["median_step_tokens_per_s"] = round(r["median_step_tokens_per_s"], 1)
        r["achieved_gflops_cpu"] = round(fpt * r["cpu_tokens_per_s"] / 1e9, 1)
        r["cpu_tokens_per_s"] = round(r["cpu_tokens_per_s"], 1)
    report["runs"] = runs
    if "baseline" in runs:
        ours, base = runs["ours-bf16"], runs["baseline"]
        report["speedup_vs_baseline"] = round(ours["tokens_per_s"] / base["tokens_per_s"], 2)
        report["speedup_vs_baseline_median_step"] = round(
            ours["median_step_tokens_per_s"] / base["median_step_tokens_per_s"], 2
        )
        report["speedup_vs_baseline_cpu"] = round(ours["cpu_tokens_per_s"] / base["cpu_tokens_per_s"], 2)
    if "ours-fp32" in runs:
        a, b = runs["ours-fp32"]["losses"], runs["ours-bf16"]["losses"]
        rel = [abs(x - y) / x for x, y in zip(a, b, strict=False)]
        report["bf16_vs_fp32"] = {
            "max_rel_diff": round(max(rel), 4),
            "mean_rel_diff": round(sum(rel) / len(rel), 4),
            "final_fp32": a[-1],
            "final_bf16": b[-1],
            "speedup": round(runs["ours-bf16"]["tokens_per_s"] / runs["ours-fp32"]["tokens_per_s"], 2),
        }
    report["load_avg_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


def compare_profiles(args) -> None:
    """Our trainer on each profile's training copy, the same examples and steps, one process each."""
    from transformers import AutoConfig

    from adapters.base_model import PROFILES
    from adapters.train_params import TrainingParams
    from app.settings import load_settings
    from app.wiring.training import resolve_precision

    precision = resolve_precision(TrainingParams(precision=args.precision)).precision
    models = load_settings().ws.models
    peak = round(matmul_peak_gflops(precision, args.threads), 1)
    report: dict = {
        "steps": args.steps,
        "threads": args.threads,
        "precision": precision,
        "matmul_peak_gflops": peak,
        "load_avg_start": os.getloadavg()[0],
        "runs": {},
    }
    for key in args.profiles.split(","):
        base = models / PROFILES[key].hf_name
        if not (base / "config.json").is_file():
            raise SystemExit(f"{base} missing — run `hybrid setup --profile {key}`")
        args.base = str(base)
        r = _spawn(args, f"ours-{precision}")
        config = AutoConfig.from_pretrained(base)
        fpt = flops_per_token(config, r["tokens"], r["answer_tokens"], r["tokens"] / max(1, r["n_examples"]))
        r.pop("losses", None)
        r.pop("step_seconds", None)
        r.update(
            base=str(base),
            seconds_per_row=round(r["seconds"] / max(1, r["n_examples"]), 2),
            tokens_per_s=round(r["tokens_per_s"], 1),
            achieved_gflops=round(fpt * r["tokens_per_s"] / 1e9, 1),
        )
        report["runs"][key] = r
    first, *rest = report["runs"]
    for key in rest:
        report["runs"][key]["time_per_row_vs_" + first] = round(
            report["runs"][key]["seconds_per_row"] / report["runs"][first]["seconds_per_row"], 2
        )
    report["load_avg_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
