"""The LoRA trainer on the tiny Llama: only LoRA trains, the loss on a tiny overfit set is finite and
falls, logits-only-at-answers equals the full-logits loss, resume equals an uninterrupted run,
stop saves a checkpoint, early stopping keeps the best weights, and parameters are validated."""

from __future__ import annotations

import math

import pytest

from adapters.batching import collate, encode_examples
from adapters.train_params import TrainingParams
from adapters.trainer import batch_loss_sum, load_base, train_lora, trainable_state
from adapters.training_data import TrainRow, build_examples, default_build_messages
from domain.errors import ConfigError, TrainingError

FAST = dict(
    epochs=6,
    batch_size=4,
    lr=5e-3,
    val_share=0.0,
    precision="fp32",
    max_length=256,
    seed=11,
    warmup_ratio=0.0,
)


def _examples(n: int = 8):
    rows = [
        TrainRow(
            id=f"r{i}",
            lang="en",
            question=f"How many leave days in team {i}?",
            answer=f"Conclusion: {20 + i % 3} days.\nBasis: [leave.md]\nNote: ask your manager.",
        )
        for i in range(n)
    ]
    return build_examples(rows, build_messages=default_build_messages)[0]


def test_only_lora_parameters_are_trainable(tiny_llama_dir):
    model, _ = load_base(tiny_llama_dir, TrainingParams(**FAST))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    # 2 layers x 4 target modules x (A, B)
    assert len(trainable) == 16
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == 2 * (
        16 * (256 + 256) + 16 * (256 + 128) * 2 + 16 * (256 + 256)
    )


def test_loss_is_finite_and_falls_on_a_tiny_overfit_set(tiny_llama_dir):
    # no dropout: which dropout masks a seeded run draws depends on how the batch is computed (a
    # shared prompt prefix draws one mask for all rows), and this checks the optimiser, not them
    params = TrainingParams(**{**FAST, "dropout": 0.0})
    model, tok = load_base(tiny_llama_dir, params)
    result = train_lora(model, tok, _examples(), [], params)
    losses = [h["loss"] for h in result.history]
    assert result.steps == result.total_steps == 12
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.25 * losses[0]
    assert sum(losses[-3:]) < sum(losses[:3])


def test_answer_only_logits_give_the_full_logits_loss(tiny_llama_dir):
    import torch

    params = TrainingParams(**FAST)
    model, tok = load_base(tiny_llama_dir, params)
    enc, _ = encode_examples(tok, _examples(3), max_length=256)
    ids, labels = collate(enc, pad_id=0)
    with torch.no_grad():
        ours, n = batch_loss_sum(model, ids, labels, params)
        logits = model(input_ids=ids).logits[:, :-1]
        full = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels[:, 1:].reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
    assert n == sum(e.n_answer for e in enc)
    assert abs(float(ours) - float(full)) < 1e-3 * float(full)


def test_a_shared_prompt_prefix_runs_once_with_the_same_loss_and_gradients(tiny_llama_dir, monkeypatch):
    """Rows that start with the same system prompt: the prefix runs as one row, and the loss and
    every LoRA gradient equal those of the full batch (the prefix's keys and values still train)."""
    import torch

    from adapters import lora_model

    params = TrainingParams(**{**FAST, "dropout": 0.0})  # the same computation, not the same noise
    model, tok = load_base(tiny_llama_dir, params)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if ".lora_B." in name:  # zero at init: make the A gradients non-zero too
            p.data.normal_(0.0, 0.05)
    enc, _ = encode_examples(tok, _examples(4), max_length=256)
    ids, labels = collate(enc, pad_id=0)
    shared = lora_model.shared_prefix_len(ids, labels)
    assert shared >= lora_model.MIN_SHARED_PREFIX
    # the progress estimate weighs the step by what runs: the prefix once, the rest per row
    assert lora_model.step_work(enc) == shared + len(enc) * (ids.shape[1] - shared)

    def loss_and_grads() -> tuple[float, dict]:
        model.zero_grad(set_to_none=True)
        loss, _ = batch_loss_sum(model, ids, labels, params)
        loss.backward()
        return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    shared_loss, shared_grads = loss_and_grads()
    monkeypatch.setattr(lora_model, "MIN_SHARED_PREFIX", 10**9)  # the whole batch, as before
    full_loss, full_grads = loss_and_grads()
    assert shared_loss == pytest.approx(full_loss, rel=1e-5)
    for name, grad in full_grads.items():
        scale = float(grad.abs().max())
        assert scale > 0, name
        assert float((shared_grads[name] - grad).abs().max()) <= 1e-4 * scale, name


def test_copies_in_a_batch_run_once_and_count_as_many_times(tiny_llama_dir):
    """A batch holding three copies of one example and one other: computed as two rows weighted 3
    and 1, with the loss, token count and gradients of the four rows."""
    import torch

    from adapters.batching import distinct

    params = TrainingParams(**{**FAST, "dropout": 0.0})
    model, tok = load_base(tiny_llama_dir, params)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            p.data.normal_(0.0, 0.05)
    enc, _ = encode_examples(tok, _examples(2), max_length=256)
    batch = [enc[0], enc[1], enc[0], enc[0]]
    unique, counts = distinct(batch)
    assert (len(unique), counts) == (2, [3, 1])

    def loss_and_grads(ids, labels, counts=None) -> tuple[float, int, dict]:
        model.zero_grad(set_to_none=True)
        loss, n = batch_loss_sum(model, ids, labels, params, counts=counts)
        loss.backward()
        return float(loss), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}

    once = loss_and_grads(*collate(unique, pad_id=0), counts=counts)
    full = loss_and_grads(*collate(batch, pad_id=0))
    assert once[0] == pytest.approx(full[0], rel=1e-5) and once[1] == full[1]
    for name, grad in full[2].items():
        assert float((once[2][name] - grad).abs().max()) <= 1e-4 * float(grad.abs().max()), name


def test_resume_from_checkpoint_matches_an_uninterrupted_run(tiny_llama_dir, tmp_path):
    import torch

    params = TrainingParams(**{**FAST, "checkpoint_every": 1})
    model, tok = load_base(tiny_llama_dir, params)
    straight = train_lora(model, tok, _examples(), [], params)
    reference = trainable_state(model)

    model, tok = load_base(tiny_llama_dir, params)
    calls = {"n": 0}

    def stop_after_five_batches() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(TrainingError, match="stopped at step 5/12"):
        train_lora(
            model, tok, _examples(), [], params, checkpoint_dir=tmp_path, should_stop=stop_after_five_batches
        )
    assert (tmp_path / "checkpoint.pt").is_file()

    model, tok = load_base(tiny_llama_dir, params)
    seen: list[int] = []
    resumed = train_lora(
        model, tok, _examples(), [], params, checkpoint_dir=tmp_path, on_loss=lambda r: seen.append(r["step"])
    )
    assert seen == list(range(1, 13))
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in straight.history], rel=1e-4
    )
    state = trainable_state(model)
    assert all(torch.allclose(state[k], reference[k], atol=1e-5) for k in reference)


def test_early_stopping_keeps_the_best_validation_weights(tiny_llama_dir):
    """With min_delta larger than any possible gain, only the first validation pass counts as an
    improvement: training stops after 1 + patience passes (epochs 1-3 of 2 steps each) and the
    weights of the first pass come back, so their validation loss is the best one."""
    from adapters.trainer import evaluate_loss

    params = TrainingParams(**{**FAST, "epochs": 10, "evals_per_epoch": 1, "patience": 2, "min_delta": 100.0})
    model, tok = load_base(tiny_llama_dir, params)
    val_rows = [
        TrainRow(id=f"v{i}", lang="en", question=f"Leave days in team {i}?", answer="Conclusion: 30.")
        for i in range(4)
    ]
    val = build_examples(val_rows, build_messages=default_build_messages)[0]
    result = train_lora(model, tok, _examples(), val, params)
    vals = [h["val_loss"] for h in result.history if "val_loss" in h]
    assert result.stopped_early and result.steps == 6 and len(vals) == 3
    assert result.best_val_loss == pytest.approx(vals[0], abs=1e-5)
    val_enc, _ = encode_examples(tok, val, max_length=256)
    assert evaluate_loss(model, val_enc, params, pad_id=0) == pytest.approx(vals[0], abs=1e-4)


def test_bf16_loss_curve_stays_close_to_fp32(tiny_llama_dir):
    curves = {}
    for precision in ("fp32", "bf16"):
        params = TrainingParams(**{**FAST, "precision": precision})
        model, tok = load_base(tiny_llama_dir, params)
        curves[precision] = [h["loss"] for h in train_lora(model, tok, _examples(), [], params).history]
    diffs = [abs(a - b) / a for a, b in zip(curves["fp32"], curves["bf16"], strict=True)]
    assert max(diffs[:6]) < 0.05


def test_rows_longer_than_max_length_are_left_out_and_reported(tiny_llama_dir):
    params = TrainingParams(**{**FAST, "epochs": 1})
    model, tok = load_base(tiny_llama_dir, params)
    short = _examples(2)
    fit = max(len(e.ids) for e in encode_examples(tok, short, max_length=10_000)[0])
    long_row = TrainRow(id="long", lang="en", question="word " * 200, answer="A.")
    ex = short + build_examples([long_row], build_messages=default_build_messages)[0]
    with pytest.raises(TrainingError, match=f"no training example fits max_length={fit - 1} tokens"):
        train_lora(model, tok, ex, [], TrainingParams(**{**FAST, "max_length": fit - 1}))
    result = train_lora(model, tok, ex, [], TrainingParams(**{**FAST, "max_length": fit, "epochs": 1}))
    assert result.dropped_too_long == ["long:plain"] and result.n_train == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("r", 0, "training parameter r=0 is invalid: must be a whole number ≥ 1"),
        ("lr", 0.0, "training parameter lr=0.0 is invalid: must be in (0, 0.1]"),
        (
            "precision",
            "fp8",
            "training parameter precision='fp8' is invalid: must be one of auto, bf16, fp32",
        ),
        ("dropout", 1.5, "training parameter dropout=1.5 is invalid: must be between 0 and 1"),
    ],
)
def test_parameters_are_validated_on_construction(field, value, message):
    with pytest.raises(ConfigError) as info:
        TrainingParams(**{field: value})
    assert str(info.value).startswith(message)


def test_parameters_round_trip_and_replace_ignores_none():
    p = TrainingParams(target_modules=["q_proj", "v_proj"])
    assert p.target_modules == ("q_proj", "v_proj")
    assert TrainingParams.from_json(p.to_json()) == p
    assert p.replace(lr=None, epochs=2).epochs == 2 and p.replace(lr=None).lr == 2e-4
    with pytest.raises(ConfigError, match="unknown training parameter"):
        TrainingParams.from_json({"rank": 4})


def test_long_batches_are_cut_into_micro_batches_within_the_token_budget():
    """Rows of 900, 500, 450 and 100 tokens with a 1024-token budget: 900 alone, then 500 + 450
    (2 × 500 = 1000 ≤ 1024), then 100 alone would fit too, but (3 × 500) does not, so it starts anew."""
    from adapters.trainer import split_by_tokens

    lengths = [100, 900, 450, 500]
    assert split_by_tokens([0, 1, 2, 3], lengths, 1024) == [[1], [3, 2], [0]]
    assert split_by_tokens([0, 1, 2, 3], lengths, 100_000) == [[1, 3, 2, 0]]


def test_micro_batches_give_the_same_update_as_one_batch(tiny_llama_dir):
    import torch

    results = []
    for budget in (100_000, 64):
        params = TrainingParams(**{**FAST, "epochs": 1, "max_batch_tokens": budget, "dropout": 0.0})
        model, tok = load_base(tiny_llama_dir, params)
        res = train_lora(model, tok, _examples(), [], params)
        results.append(([h["loss"] for h in res.history], trainable_state(model)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    # Float sums in another order. Adam divides by the root of the squared gradient, so where a
    # gradient is near zero (lora_A while lora_B is still ~0) that noise becomes a visible share of
    # one step: measured up to 1.8e-4 (3.5% of lr 5e-3) on a Sapphire Rapids CPU, ~1e-5 elsewhere.
    # A wrong micro-batch weighting shows in the second loss, and in weights by whole steps (>= lr).
    assert all(torch.allclose(results[0][1][k], results[1][1][k], atol=5e-4) for k in results[0][1])


def test_training_can_continue_from_a_saved_adapter(tiny_llama_dir, tmp_path):
    from adapters.trainer import save_adapter

    params = TrainingParams(**{**FAST, "epochs": 2})
    model, tok = load_base(tiny_llama_dir, params)
    train_lora(model, tok, _examples(), [], params)
    saved = trainable_state(model)
    save_adapter(model, tmp_path)
    again, _ = load_base(tiny_llama_dir, params, init_adapter=tmp_path)
    loaded = trainable_state(again)
    assert loaded.keys() == saved.keys()
    assert all(float((loaded[k] - saved[k]).abs().max()) == 0.0 for k in saved)
    with pytest.raises(TrainingError, match="does not fit these parameters"):
        load_base(tiny_llama_dir, TrainingParams(**{**FAST, "r": 8}), init_adapter=tmp_path)


def test_auto_precision_is_bf16_only_where_the_cpu_does_it_natively(monkeypatch) -> None:
    from app.wiring.training import resolve_precision

    params = TrainingParams()
    assert params.precision == "auto"
    monkeypatch.setattr("index.embedder.fast_bf16_cpu", lambda: False)
    assert resolve_precision(params).precision == "fp32"
    monkeypatch.setattr("index.embedder.fast_bf16_cpu", lambda: True)
    assert resolve_precision(params).precision == "bf16"
    assert resolve_precision(params.replace(precision="fp32")).precision == "fp32"  # a choice stands
