"""The training parameters: one frozen dataclass, validated on construction, saved as JSON beside
every adapter version (with the base model's identity and the data's hash, added by the job).

The defaults are the ones measured on the Qwen2.5-Coder-0.5B base on a 2-core CPU (see the
adapters issue's closing note); the trainer and the data builder read them from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from domain.errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")
KNOWN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainingParams:
    """Everything that decides what a training run produces.

    LoRA: ``r``, ``alpha``, ``dropout``, ``target_modules``. Optimisation: ``lr`` (AdamW, linear
    warm-up over ``warmup_ratio`` of the steps, then cosine decay to 10%), ``epochs``,
    ``batch_size`` rows per batch, ``grad_accum`` batches per optimizer step, ``max_length``
    tokens per row (longer rows are left out and reported), ``max_batch_tokens`` padded tokens per
    forward pass (a batch of long rows is cut into micro-batches; the update is the same). Validation: ``val_share`` of the rows,
    ``evals_per_epoch`` validation passes, stop after ``patience`` passes without an improvement of
    ``min_delta``; the best weights are kept. ``precision``: "auto" is resolved when a job starts (bf16 where the CPU does bf16 natively, else fp32); "bf16" stores the frozen linear weights
    in bfloat16 and runs matmuls under bf16 autocast (LoRA weights, norms, residuals and the loss
    stay fp32); "fp32" everywhere. Data: ``rag_share``, ``source_prob``, ``distractors_min/max``,
    ``correction_repeats``, ``replay_rows`` per correction, ``max_rows`` (0 = all), and
    ``context_tokens``, the passage budget of RAG-form rows (the answering prompt's own estimate;
    smaller than at answering time to keep rows short on a CPU).
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2e-4
    epochs: int = 3
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    max_batch_tokens: int = 1024
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    val_share: float = 0.1
    evals_per_epoch: int = 2
    patience: int = 2
    min_delta: float = 0.005
    precision: str = "auto"
    seed: int = 1234
    checkpoint_every: int = 25
    rag_share: float = 0.4
    context_tokens: int = 800
    source_prob: float = 0.7
    distractors_min: int = 2
    distractors_max: int = 4
    # Copies of each correction (in the form it was corrected in) and training rows replayed per
    # correction: more copies and less replay make the new version repeat the corrections
    # (bench/retrain_corrections.py measures it; corpus/measured/retrain/ has the choice of 8).
    correction_repeats: int = 8
    replay_rows: int = 1
    max_rows: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(
                f"training parameter {name}={getattr(self, name)!r} is invalid: {rule} — "
                f"pass a valid --{name.replace('_', '-')} value"
            )

        positive_ints = (
            "r",
            "alpha",
            "epochs",
            "batch_size",
            "grad_accum",
            "max_length",
            "evals_per_epoch",
            "checkpoint_every",
            "max_batch_tokens",
            "context_tokens",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "must be a whole number ≥ 1")
        for name in (
            "patience",
            "correction_repeats",
            "replay_rows",
            "max_rows",
            "seed",
            "distractors_min",
            "distractors_max",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(name, "must be a whole number ≥ 0")
        for name in ("dropout", "source_prob", "rag_share", "warmup_ratio"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise bad(name, "must be between 0 and 1")
        if not 0.0 <= self.val_share < 0.5:
            raise bad("val_share", "must be in [0, 0.5)")
        if not 0.0 < self.lr <= 0.1:
            raise bad("lr", "must be in (0, 0.1]")
        for name in ("weight_decay", "max_grad_norm", "min_delta"):
            if float(getattr(self, name)) < 0:
                raise bad(name, "must be ≥ 0")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.distractors_min > self.distractors_max:
            raise bad("distractors_min", f"must be ≤ distractors_max={self.distractors_max}")
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise bad("target_modules", "must name at least one linear layer, e.g. q_proj,v_proj")
        if self.max_length < 32:
            raise bad("max_length", "must be ≥ 32 tokens")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainingParams:
        """Build from saved JSON; unknown keys are an error (they would be silently ignored)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise ConfigError(
                f"unknown training parameter(s) {', '.join(unknown)} — known: {', '.join(sorted(names))}"
            )
        return cls(**obj)

    def for_corrections(self) -> TrainingParams:
        """The parameters for training from corrections: no validation rows. Validation would
        run on replayed base rows only, and restoring the best-validation weights then undoes the
        corrections; the evaluation gate guards quality instead."""
        return self.replace(val_share=0.0)

    def replace(self, **changes: Any) -> TrainingParams:
        """A copy with ``changes`` (None values are ignored, so CLI options can be passed through)."""
        data = self.to_json()
        data.update({k: v for k, v in changes.items() if v is not None})
        return TrainingParams.from_json(data)
