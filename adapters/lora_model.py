"""The peft LoRA model on a Hugging Face base, prepared for CPU training: loading (frozen linear
weights in bf16 when asked, LoRA weights fp32, only LoRA trainable), seeds, copying and restoring
LoRA weights, the answer-only loss, validation loss, and saving the adapter.

The training loop itself is ``adapters.trainer``'s.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.batching import Encoded, collate, distinct
from adapters.train_params import TrainingParams
from domain.errors import ModelMissingError, TrainingError


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_base(base_dir: Path, params: TrainingParams, *, init_adapter: Path | None = None) -> tuple[Any, Any]:
    """(peft model, tokenizer) from a local HF folder; only LoRA trains.

    The LoRA weights are fresh, or copied from ``init_adapter`` (a version folder with the same
    rank, alpha and target modules) to continue from it — retraining from corrections does that.

    Raises:
        ModelMissingError: the base folder is incomplete.
        TrainingError: unknown target modules, or ``init_adapter`` does not fit ``params``.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = Path(base_dir)
    if not (base_dir / "config.json").is_file():
        raise ModelMissingError(
            f"training base {base_dir} has no config.json — run `hybrid setup --only base_hf`"
        )
    seed_everything(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, local_files_only=True)
    model.config.use_cache = False
    if params.precision == "bf16":
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.to(torch.bfloat16)
            # copy what stays fp32 out of the safetensors memory map, so the map (and the file
            # pages the cast touched) is released and only the cast model stays resident
            for tensor in (*model.parameters(), *model.buffers()):
                if tensor.dtype == torch.float32:
                    tensor.data = tensor.data.clone()
        gc.collect()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in params.target_modules if m not in present]
    if missing:
        raise TrainingError(
            f"target module(s) {', '.join(missing)} not found in {base_dir.name} — "
            f"pick from {', '.join(sorted(p for p in present if p.endswith('_proj')))}"
        )
    config = LoraConfig(
        r=params.r,
        lora_alpha=params.alpha,
        lora_dropout=params.dropout,
        target_modules=list(params.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if init_adapter is not None:
        _load_lora_weights(peft_model, Path(init_adapter))
    for name, p in peft_model.named_parameters():
        if p.requires_grad:
            if "lora_" not in name:
                raise TrainingError(f"non-LoRA parameter {name} is trainable — report this")
            p.data = p.data.float()
    return peft_model, tokenizer


def _load_lora_weights(peft_model: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / "adapter_model.safetensors"
    if not path.is_file():
        raise TrainingError(f"cannot continue from {folder}: it has no adapter_model.safetensors")
    state = load_file(str(path))
    expected = {k: v.shape for k, v in peft_model.state_dict().items() if "lora_" in k}
    try:
        result = set_peft_model_state_dict(peft_model, state)
    except RuntimeError as e:  # shape mismatch: another rank
        raise TrainingError(
            f"adapter {folder.name} does not fit these parameters ({e}) — train with its "
            "rank, alpha and target modules"
        ) from e
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or len(state) != len(expected):
        raise TrainingError(
            f"adapter {folder.name} has {len(state)} LoRA tensors, the model expects "
            f"{len(expected)} (missing e.g. {missing[:1]}) — train with its target modules"
        )


def trainable_state(model: Any) -> dict[str, Any]:
    """A detached copy of the LoRA weights."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore_state(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in state:
                p.copy_(state[n])


def autocast(params: TrainingParams) -> Any:
    import torch

    if params.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# A batch whose rows begin with at least this many identical prompt tokens runs them once.
MIN_SHARED_PREFIX = 16


def shared_prefix_len(ids: Any, labels: Any) -> int:
    """How many leading tokens ``batch_loss_sum`` runs once for the batch: those every row shares
    and no row is scored on (the last shared position must not predict an answer token) — the
    system prompt and worked example every example of one mode carries. 0 for a single row or
    fewer than ``MIN_SHARED_PREFIX`` tokens."""
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0).long()
    common = int(same.cumprod(0).sum())
    scored = labels != -100
    first_answer = int(scored.float().argmax(dim=1).min()) if bool(scored.any()) else ids.shape[1]
    shared = max(0, min(common, first_answer - 1))
    return shared if shared >= MIN_SHARED_PREFIX else 0


def step_work(items: Sequence[Encoded]) -> int:
    """Token positions one micro-batch of ``items`` computes: its distinct rows only, their shared
    prompt prefix once (as ``batch_loss_sum`` runs it), then every row's rest padded to the longest
    — the weight a progress estimate gives its step."""
    items, _ = distinct(items)
    ids, labels = collate(items, pad_id=0)  # pads lie past the answers, beyond any shared prefix
    shared = shared_prefix_len(ids, labels)
    return shared + len(items) * (ids.shape[1] - shared)


def batch_loss_sum(
    model: Any, ids: Any, labels: Any, params: TrainingParams, *, counts: Sequence[int] | None = None
) -> tuple[Any, int]:
    """(summed cross-entropy over answer tokens, number of answer tokens) for one batch; with
    ``counts``, row i stands for ``counts[i]`` identical rows (``batching.distinct``) and its loss
    and tokens count that many times — the same sum as the full batch, computed once.

    The decoder runs on every position, but the lm_head only on the positions whose next token is an
    answer token — a prompt of 900 tokens with a 90-token answer computes 90 rows of logits, not 990.
    The prompt tokens all rows share (``shared_prefix_len``) run once, as one row whose keys and
    values every row then attends to; gradients flow through them as through the full batch, so the
    loss and its gradient are the same (a plain example's system prompt is most of its tokens).
    """
    import torch

    causal_lm = model.get_base_model()
    shared = shared_prefix_len(ids, labels)
    targets = labels[:, shared + 1 :]
    where = targets != -100
    with autocast(params):
        if shared:
            prefix = causal_lm.model(input_ids=ids[:1, :shared], use_cache=True).past_key_values
            prefix.batch_repeat_interleave(ids.shape[0])
            hidden = causal_lm.model(
                input_ids=ids[:, shared:], past_key_values=prefix, use_cache=True
            ).last_hidden_state
        else:
            hidden = causal_lm.model(input_ids=ids, use_cache=False).last_hidden_state
        picked = hidden[:, :-1][where]
        logits = causal_lm.lm_head(picked)
    if counts is None:
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[where], reduction="sum")
        return loss, int(where.sum())
    row_weight = torch.tensor(list(counts), dtype=torch.float32)[:, None].expand(where.shape)[where]
    per_token = torch.nn.functional.cross_entropy(logits.float(), targets[where], reduction="none")
    return (per_token * row_weight).sum(), int(row_weight.sum())


def evaluate_loss(model: Any, data: Sequence[Encoded], params: TrainingParams, pad_id: int) -> float | None:
    """Mean answer-token loss over ``data`` (no gradients), or None when ``data`` is empty."""
    import torch

    if not data:
        return None
    total, count = 0.0, 0
    order = sorted(range(len(data)), key=lambda i: len(data[i].ids))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), params.batch_size):
            ids, labels = collate([data[i] for i in order[start : start + params.batch_size]], pad_id=pad_id)
            loss, n = batch_loss_sum(model, ids, labels, params)
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)


def save_adapter(model: Any, out_dir: Path) -> None:
    """Write the LoRA weights and config (peft ``save_pretrained``: adapter_model.safetensors +
    adapter_config.json) into ``out_dir``; peft's generated model card is not kept."""
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (Path(out_dir) / "README.md").unlink(missing_ok=True)
