"""The LoRA trainer: a plain PyTorch loop over a peft model of the HF base, built for CPUs.

What makes it cheap: logits only at answer positions (``adapters.lora_model``), right padding
without an attention mask (the fast causal kernel), length-grouped batches cut into micro-batches
by a token budget (bounded memory), and bf16 matmuls on frozen bf16 weights. Owns the loop:
optimizer and schedule, validation with early stopping (best weights kept) and checkpoints for
resume. Where the result goes (versions, the registry) is the job's business.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.batching import collate, distinct, encode_examples, length_grouped_batches
from adapters.lora_model import (  # noqa: F401  (load_base and save_adapter: one import for callers)
    batch_loss_sum,
    evaluate_loss,
    load_base,
    restore_state,
    save_adapter,
    step_work,
    trainable_state,
)
from adapters.train_params import TrainingParams
from adapters.training_data import ChatExample
from domain.errors import TrainingError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

LossFn = Callable[[dict[str, Any]], None]
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    """What a finished run did; ``history`` holds one dict per optimizer step (and validation);
    ``tokens`` and ``seconds`` count this process's share of the run (not the resumed part)."""

    steps: int
    total_steps: int
    history: list[dict[str, Any]]
    best_val_loss: float | None
    final_train_loss: float | None
    stopped_early: bool
    n_train: int
    n_val: int
    dropped_too_long: list[str]
    tokens: int
    answer_tokens: int
    seconds: float
    trainable_params: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def split_by_tokens(batch: Sequence[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Cut a batch into micro-batches whose padded size (rows × longest row) stays within
    ``max_tokens``; the step's loss is normalised over all of them, so the update is the same as one
    big batch, but activation memory is bounded (long RAG rows would otherwise need gigabytes)."""
    out: list[list[int]] = []
    for i in sorted(batch, key=lambda j: -lengths[j]):
        if out and (len(out[-1]) + 1) * lengths[out[-1][0]] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_lora(
    model: Any,
    tokenizer: Any,
    train: Sequence[ChatExample],
    val: Sequence[ChatExample],
    params: TrainingParams,
    *,
    checkpoint_dir: Path | None = None,
    on_progress: ProgressFn = no_progress,
    on_loss: LossFn | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_plan: Callable[[list[int]], None] | None = None,
) -> TrainResult:
    """Train the LoRA weights of ``model`` (from ``load_base``) on ``train``; validate on ``val``.

    Resumes from ``checkpoint_dir/checkpoint.pt`` when present; writes it every
    ``params.checkpoint_every`` steps and when ``should_stop`` turns true.

    Args:
        on_progress: (step, total_steps, "loss 1.234").
        on_loss: called with each history record {"step", "epoch", "loss", "lr", "val_loss"?}.
        should_stop: polled between batches; True saves a checkpoint and raises TrainingError.
        on_plan: called once before the first step with the token positions every step of the run
            computes (``step_work``; resumed steps included), the work a progress estimate can
            weigh steps by.

    Raises:
        TrainingError: no example fits ``max_length``, the loss is not finite, or the run was stopped.
    """
    import torch

    t0 = time.perf_counter()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    train_enc, dropped = encode_examples(tokenizer, train, max_length=params.max_length)
    val_enc, dropped_val = encode_examples(tokenizer, val, max_length=params.max_length)
    if not train_enc:
        raise TrainingError(
            f"no training example fits max_length={params.max_length} tokens — raise --max-length"
        )
    lengths = [len(e.ids) for e in train_enc]
    n_batches = math.ceil(len(train_enc) / params.batch_size)
    steps_per_epoch = math.ceil(n_batches / params.grad_accum)
    total = steps_per_epoch * params.epochs
    eval_points = {
        round(steps_per_epoch * (k + 1) / params.evals_per_epoch) for k in range(params.evals_per_epoch)
    }

    epoch_batches = [
        length_grouped_batches(lengths, batch_size=params.batch_size, seed=params.seed, epoch=e)
        for e in range(params.epochs)
    ]
    if on_plan is not None:
        on_plan(
            [
                sum(
                    step_work([train_enc[i] for i in m])
                    for full in batches[s * params.grad_accum : (s + 1) * params.grad_accum]
                    for m in split_by_tokens(full, lengths, params.max_batch_tokens)
                )
                for batches in epoch_batches
                for s in range(steps_per_epoch)
            ]
        )

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total, max(1, round(total * params.warmup_ratio)))
    )
    history: list[dict[str, Any]] = []
    step, best_val, best_state, bad_evals, tokens, answer_tokens = 0, None, None, 0, 0, 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        restore_state(model, state["lora"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, history, best_val, best_state = (
            state["step"],
            state["history"],
            state["best_val"],
            state["best_state"],
        )
        bad_evals, tokens, answer_tokens = state["bad_evals"], state["tokens"], state["answer_tokens"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resumed from %s at step %d/%d", ckpt, step, total)
        for record in history if on_loss else ():
            on_loss(record)  # the caller's loss chart starts from the checkpoint's history

    def checkpoint() -> None:
        if ckpt:
            _save_checkpoint(
                ckpt,
                {
                    "lora": trainable_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "history": history,
                    "best_val": best_val,
                    "best_state": best_state,
                    "bad_evals": bad_evals,
                    "tokens": tokens,
                    "answer_tokens": answer_tokens,
                    "torch_rng": torch.get_rng_state(),
                },
            )

    start_step, start_tokens, stopped_early = step, tokens, False
    model.train()
    on_progress(step, total, "starting")
    for epoch in range(params.epochs):
        batches = epoch_batches[epoch]
        for s in range(steps_per_epoch):
            if epoch * steps_per_epoch + s < step:
                continue  # done before the resume point
            group = batches[s * params.grad_accum : (s + 1) * params.grad_accum]
            n_answer = sum(train_enc[i].n_answer for b in group for i in b)
            loss_total, step_tokens, step_t0 = 0.0, 0, time.perf_counter()
            for b in (m for full in group for m in split_by_tokens(full, lengths, params.max_batch_tokens)):
                if should_stop():
                    checkpoint()
                    raise TrainingError(f"training stopped at step {step}/{total}; resume it to continue")
                unique, counts = distinct([train_enc[i] for i in b])
                ids, labels = collate(unique, pad_id=pad_id)
                loss_sum, _ = batch_loss_sum(model, ids, labels, params, counts=counts)
                (loss_sum / n_answer).backward()
                loss_total += float(loss_sum.detach())
                step_tokens += sum(len(train_enc[i].ids) for i in b)
            tokens += step_tokens
            answer_tokens += n_answer
            torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss = loss_total / n_answer
            if not math.isfinite(loss):
                raise TrainingError(f"loss became {loss} at step {step} — lower --lr or use --precision fp32")
            record: dict[str, Any] = {
                "step": step,
                "epoch": round(epoch + (s + 1) / steps_per_epoch, 3),
                "loss": round(loss, 5),
                "lr": scheduler.get_last_lr()[0],
                "tokens": step_tokens,
                "seconds": round(time.perf_counter() - step_t0, 3),
            }
            if (s + 1) in eval_points and val_enc:
                val_loss = evaluate_loss(model, val_enc, params, pad_id)
                record["val_loss"] = round(val_loss, 5) if val_loss is not None else None
                if best_val is None or (val_loss is not None and val_loss < best_val - params.min_delta):
                    best_val, best_state, bad_evals = val_loss, trainable_state(model), 0
                else:
                    bad_evals += 1
            history.append(record)
            if on_loss:
                on_loss(record)
            on_progress(step, total, f"loss {loss:.3f}")
            if step % params.checkpoint_every == 0:
                checkpoint()
            if val_enc and bad_evals >= params.patience and params.patience > 0:
                stopped_early = True
                logger.info(
                    "early stop at step %d: validation loss did not improve %d times", step, bad_evals
                )
                break
        if stopped_early:
            break
    if best_state is not None:
        restore_state(model, best_state)
    seconds = time.perf_counter() - t0
    train_losses = [h["loss"] for h in history]
    logger.info("trained %d steps (%d this run) in %.1f s", step, step - start_step, seconds)
    return TrainResult(
        steps=step,
        total_steps=total,
        history=history,
        best_val_loss=best_val,
        final_train_loss=train_losses[-1] if train_losses else None,
        stopped_early=stopped_early,
        n_train=len(train_enc),
        n_val=len(val_enc),
        dropped_too_long=dropped + dropped_val,
        tokens=tokens - start_tokens,
        answer_tokens=answer_tokens,
        seconds=seconds,
        trainable_params=sum(p.numel() for p in trainable),
    )
