"""`hybrid train`: start, follow, resume or cancel a LoRA training job, with a progress bar and ETA
(the versions it makes are listed and switched by `hybrid adapters`, ``app.commands.adapters_cmd``).
The work lives in ``app.wiring.training`` and ``adapters``; this module parses arguments and renders
results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.commands.args import add_collection, count, positive_float, positive_int, share
from app.commands.progress import add_json_option, emit_json, progress_bar
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a new LoRA adapter version (gated by the evaluation set)")
    p.add_argument(
        "--from-corrections",
        action="store_true",
        help="train on the stored corrections plus a replay sample of the training set",
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="training JSONL file(s) (default: the collection's training set)",
    )
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate")
    p.add_argument("--r", type=positive_int, default=None, help="LoRA rank")
    p.add_argument("--alpha", type=positive_int, default=None, help="LoRA alpha")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="longest row in tokens (longer rows are left out)",
    )
    p.add_argument("--max-rows", type=positive_int, default=None, help="train on a seeded sample of N rows")
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default=None,
        help="auto (default): bf16 where the CPU has native bf16 (AVX-512 BF16 or AMX), else fp32",
    )
    p.add_argument(
        "--val-share",
        type=share,
        default=None,
        help="share of rows held out for validation and early stopping (default 0.1; 0 with "
        "--from-corrections: the gate guards quality, and best-validation weights on replayed rows "
        "would undo the corrections)",
    )
    p.add_argument(
        "--correction-repeats",
        type=count,
        default=None,
        help="copies of each correction in the form it was corrected in (default 8)",
    )
    p.add_argument(
        "--replay-rows", type=count, default=None, help="training-set rows replayed per correction"
    )
    p.add_argument("--target-modules", default=None, help="comma-separated, e.g. q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--seed", type=count, default=None)
    p.add_argument("--version", default=None, help="name of the new version (default: v<N+1>)")
    add_collection(p, "--index")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads (default: settings.generation.n_threads)",
    )
    gate = p.add_mutually_exclusive_group()
    gate.add_argument("--no-gate", action="store_true", help="skip the evaluation gate and do not activate")
    gate.add_argument(
        "--force-activate", action="store_true", help="run the gate but activate whatever it says"
    )
    p.add_argument("--detach", action="store_true", help="start the job and return (follow it with --follow)")
    p.add_argument("--follow", metavar="JOB", default=None, help="follow a running job ('last' = newest)")
    p.add_argument("--resume", metavar="JOB", default=None, help="resume a stopped job from its checkpoint")
    p.add_argument(
        "--cancel", metavar="JOB", default=None, help="cancel a running job (no version is created)"
    )
    p.add_argument("--jobs", action="store_true", help="list training jobs")
    add_json_option(p, "the result")
    p.set_defaults(func=run_train)


def _params(args: argparse.Namespace) -> Any:
    from app.wiring.training import training_params

    modules = (
        tuple(m.strip() for m in args.target_modules.split(",") if m.strip()) if args.target_modules else None
    )
    return training_params(
        for_corrections=getattr(args, "from_corrections", False) and args.val_share is None,
        epochs=args.epochs,
        lr=args.lr,
        r=args.r,
        alpha=args.alpha,
        batch_size=args.batch_size,
        max_length=args.max_length,
        max_rows=args.max_rows,
        precision=args.precision,
        target_modules=modules,
        seed=args.seed,
        correction_repeats=args.correction_repeats,
        replay_rows=args.replay_rows,
        val_share=args.val_share,
    )


def _print_estimate(settings: Settings, job_dir: Path) -> None:
    """The job's expected time and memory on the model that trains, from its spec."""
    from app.wiring.estimates import correction_rows, training_estimate
    from app.wiring.models import base_name
    from domain.atomic import read_json

    try:
        spec = read_json(job_dir / "spec.json")
        params = spec["params"]
        rows = int(spec["data"]["rows"])
        rows = min(rows, int(params.get("max_rows") or rows))
        if spec["data"].get("from_corrections"):
            rows = correction_rows(params, int(spec["data"]["corrections"]))
        epochs = int(params.get("epochs") or 1)
    except (OSError, ValueError, KeyError, TypeError):
        return
    estimate = training_estimate(settings, rows, epochs=epochs)
    print(f"{rows} rows × {epochs} epoch(s) on {base_name(settings)}: {estimate.describe()}", file=sys.stderr)


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring import jobs
    from app.wiring.training import TRAIN, start_training

    if args.jobs:
        return _print_jobs(jobs.listing(settings, TRAIN), args.json_path)
    if args.cancel:
        job_dir = jobs.find(settings, TRAIN, args.cancel)
        if not jobs.cancel(settings, TRAIN, job_dir.name):
            state = jobs.status(settings, TRAIN, job_dir.name)["status"]
            print(f"job {job_dir.name} is not running ({state})")
            return 0
        print(f"cancelling {job_dir.name}…", file=sys.stderr)
        return _report(jobs.wait(job_dir), args.json_path)
    if args.resume:
        job_dir = jobs.resume(settings, TRAIN, args.resume)
    elif args.follow:
        job_dir = jobs.find(settings, TRAIN, args.follow)
    else:
        activate = "never" if args.no_gate else "force" if args.force_activate else "gate"
        job_dir = start_training(
            settings,
            _params(args),
            data=args.data,
            from_corrections=args.from_corrections,
            activate=activate,
            version=args.version,
            num_threads=args.threads,
        )
        _print_estimate(settings, job_dir)
    print(f"training job {job_dir.name} (log: {job_dir / 'log.txt'})", file=sys.stderr)
    if args.detach:
        if args.json_path:
            emit_json({"job": job_dir.name, "dir": str(job_dir), "status": "started"}, args.json_path)
        return 0
    try:
        with progress_bar("training", quiet=args.json_path == "-", job_eta=True) as on_progress:
            status = jobs.wait(job_dir, on_progress=on_progress)
    except KeyboardInterrupt:
        jobs.cancel(settings, TRAIN, job_dir.name)
        status = jobs.wait(job_dir)
        print(
            f"training cancelled at step {status.get('step')}; no version was created — resume with "
            f"`hybrid train --resume {job_dir.name}`",
            file=sys.stderr,
        )
        return 130
    return _report(status, args.json_path)


def _report(status: dict[str, Any], json_path: str | None) -> int:
    result = status.get("result") or {}
    out = {
        "job": status.get("id"),
        "status": status.get("status"),
        "error": status.get("error"),
        "version": result.get("version"),
        "activated": result.get("activated"),
        "metrics": result.get("metrics"),
        "steps": status.get("step"),
        "total": status.get("total"),
        "loss_history": status.get("loss_history"),
    }
    if json_path:
        emit_json(out, json_path)
    if json_path != "-":
        if status.get("status") != "succeeded":
            print(f"training {status.get('status')}: {status.get('error')}", file=sys.stderr)
        else:
            m = result["metrics"]
            gate = m.get("gate") or {}
            print(
                f"version {result['version']}: {m['steps']} steps in {m['train_seconds']:.0f} s "
                f"({m['tokens_per_s']:.0f} tokens/s), final loss {m['final_train_loss']}, "
                f"best validation loss {m['best_val_loss']}"
            )
            if gate:
                print(f"gate: {gate.get('reason')}")
            print(
                f"{'activated' if result['activated'] else 'not activated'} "
                f"({'`hybrid adapters activate ' + result['version'] + '` to use it anyway' if not result['activated'] else 'now in use'})"
            )
    return 0 if status.get("status") == "succeeded" else 2


def _print_jobs(found: list[dict[str, Any]], json_path: str | None) -> int:
    if json_path:
        emit_json(found, json_path)
        return 0
    if not found:
        print("no training jobs yet")
    for j in found:
        version = (j.get("result") or {}).get("version") or ""
        print(
            f"{j['id']:<34} {j['status']:<10} step {j.get('step', 0)}/{j.get('total', 0)} {version}"
            + (f"  {j['error']}" if j.get("error") else "")
        )
    return 0
