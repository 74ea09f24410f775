"""Turning chat examples into token ids with an answer mask, and into length-grouped batches.

The prompt and the answer are tokenized separately, exactly as at inference (the prompt is encoded,
then the answer is generated after it), and the loss is taken on the answer tokens only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.chat_pieces import Piece, encode_chat, hf_encoder, render_masked, split_masked
from adapters.training_data import ChatExample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    """One example as ids; the first ``n_prompt`` ids are context, the rest is the answer."""

    id: str
    ids: tuple[int, ...]
    n_prompt: int

    @property
    def n_answer(self) -> int:
        return len(self.ids) - self.n_prompt


def encode_example(tokenizer: Any, example: ChatExample) -> Encoded:
    """Ids of ``example``: the chat-templated prompt (with the generation cue), then the answer up to
    and including the template's end-of-turn marker (trailing whitespace dropped). Message text is
    tokenized as text, as at inference (``adapters.chat_pieces``)."""
    messages = [dict(m) for m in example.messages]
    contents = [str(m["content"]) for m in messages]
    prompt = render_masked(
        lambda ms: tokenizer.apply_chat_template(ms, add_generation_prompt=True, tokenize=False),
        messages[:-1],
    )
    full = render_masked(lambda ms: tokenizer.apply_chat_template(ms, tokenize=False), messages)
    if full.startswith(prompt):
        completion = split_masked(full[len(prompt) :].rstrip(), contents, expected=[len(messages) - 1])
    else:  # a template that renders the last turn differently: fall back to answer + eos
        completion = [Piece(contents[-1], False), Piece(tokenizer.eos_token or "", True)]
    encode = hf_encoder(tokenizer)

    def whole(text: str) -> list[int]:
        return encode(text, True)

    prompt_ids = encode_chat(split_masked(prompt, contents[:-1]), encode, whole)
    answer_ids = encode_chat(completion, encode, whole)
    return Encoded(id=example.id, ids=tuple(prompt_ids) + tuple(answer_ids), n_prompt=len(prompt_ids))


def encode_examples(
    tokenizer: Any, examples: Sequence[ChatExample], *, max_length: int
) -> tuple[list[Encoded], list[str]]:
    """(encoded examples that fit in ``max_length``, ids of those that did not and were left out)."""
    kept: list[Encoded] = []
    dropped: list[str] = []
    for ex in examples:
        enc = encode_example(tokenizer, ex)
        if len(enc.ids) > max_length or enc.n_answer < 1:
            dropped.append(ex.id)
        else:
            kept.append(enc)
    if dropped:
        logger.warning(
            "%d example(s) longer than max_length=%d tokens were left out (first: %s)",
            len(dropped),
            max_length,
            dropped[0],
        )
    return kept, dropped


def length_grouped_batches(
    lengths: Sequence[int], *, batch_size: int, seed: int, epoch: int, group_batches: int = 16
) -> list[list[int]]:
    """Batches of indices for one epoch: shuffle, cut into groups of ``group_batches`` batches, sort
    each group by length (so padding stays small), cut into batches, shuffle the batch order.

    Deterministic in (seed, epoch), so a resumed run sees the same batches.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * group_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        group = sorted(order[start : start + span], key=lambda i: -lengths[i])
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def distinct(items: Sequence[Encoded]) -> tuple[list[Encoded], list[int]]:
    """The different token sequences among ``items`` (first seen first) and how often each occurs:
    copies of one correction in a batch run once and count as many times."""
    seen: dict[tuple[int, ...], int] = {}
    unique: list[Encoded] = []
    counts: list[int] = []
    for it in items:
        at = seen.get(it.ids)
        if at is None:
            seen[it.ids] = len(unique)
            unique.append(it)
            counts.append(1)
        else:
            counts[at] += 1
    return unique, counts


def collate(items: Sequence[Encoded], *, pad_id: int) -> tuple[Any, Any]:
    """(input_ids, labels) tensors, right-padded to the longest item; labels are -100 except on
    answer tokens.

    Right padding with causal attention needs no attention mask: real tokens never attend to the
    pads after them and positions count from 0 as without padding, so the fast causal kernel is used.
    """
    import torch

    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    for row, it in enumerate(items):
        seq = torch.tensor(it.ids, dtype=torch.long)
        ids[row, : len(seq)] = seq
        labels[row, it.n_prompt : len(seq)] = seq[it.n_prompt :]
    return ids, labels
