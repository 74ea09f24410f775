"""Constrained choice: the model picks one of a few given strings, always exactly one of them.
Two ways, measured against each other (``corpus/measured/evidence-tune``):

- ``likelihood``: the option it finds most likely as the continuation of its prompt (mean
  log-probability per token, the option's line break included, so short and long options compete
  fairly). Every option is scored whole, so a shared first token ("The ...") does not commit it,
  but sentences that are easy to predict whatever the question (document headers) score well;
- ``greedy``: decoding under a grammar of the options — at each step the best-scoring token among
  those that continue some option, until one option is left (``greedy_option``). The model starts
  writing the sentence it wants to quote, as it would unconstrained, and the walk keeps it verbatim.

Both generation backends choose through these functions, so they make the same choice from the
same scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from domain.errors import GenerationError


def log_softmax(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    top = rows.max(axis=-1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=-1, keepdims=True))


def option_score(first_logp: np.ndarray, rows: np.ndarray, tokens: Sequence[int]) -> float:
    """Mean log-probability of ``tokens``: ``first_logp`` holds the first token's log-probabilities
    (``log_softmax`` of the prompt's last row, computed once for all options), ``rows[i]`` the
    scores of the token after ``tokens[i]``.

    >>> first, rows = np.log([0.5, 0.5]), np.log([[0.9, 0.1], [0.2, 0.8]])
    >>> round(option_score(first, rows, [0, 0]), 4) == round(float(np.log([0.5, 0.9]).mean()), 4)
    True
    """
    if not tokens:
        return float("-inf")
    logp = [float(first_logp[tokens[0]])]
    table = log_softmax(rows[: len(tokens) - 1]) if len(tokens) > 1 else np.zeros((0, 0))
    logp += [float(table[i, t]) for i, t in enumerate(tokens[1:])]
    return float(np.mean(logp))


def best_option(scores: Sequence[float]) -> int:
    """The index of the best score (the first on ties).

    >>> best_option([-1.5, -0.25, -0.25])
    1
    """
    return int(np.argmax(np.asarray(scores)))


CHOICE_METHODS = ("likelihood", "greedy")


def check_choice(method: str, encoded: Sequence[Sequence[int]], *, adapter_missing: bool) -> None:
    """Refuse a choice no backend can make: an unknown ``method``, the adapter asked for but not
    loaded (``adapter_missing``), or no option.

    Raises:
        GenerationError: naming which.
    """
    if method not in CHOICE_METHODS:
        raise GenerationError(f"choice method {method!r} is not one of {', '.join(CHOICE_METHODS)}")
    if adapter_missing:
        raise GenerationError(
            "no adapter is loaded — train one (`hybrid train`) or answer in mode prompt or rag"
        )
    if not encoded:
        raise GenerationError("a constrained choice needs at least one option")


def greedy_option(next_scores: Callable[[int | None], np.ndarray], encoded: Sequence[Sequence[int]]) -> int:
    """The option greedy decoding under a grammar of ``encoded`` ends in: from the prompt's scores
    (``next_scores(None)``), take the best-scoring token among the next tokens of the options still
    alive, keep the options that have it, and feed it (``next_scores(token)`` returns the scores
    after it); stop when one option is left or one has ended (the first of those on ties).

    >>> table = {None: [0.0, 2.0, 1.0], 1: [3.0, 0.0, 0.0]}
    >>> greedy_option(lambda t: np.asarray(table[t]), [[2, 0], [1, 2], [1, 0]])
    2
    """
    alive = list(range(len(encoded)))
    scores, pos = next_scores(None), 0
    while len(alive) > 1:
        ended = [i for i in alive if len(encoded[i]) <= pos]
        if ended:
            return ended[0]
        allowed = sorted({encoded[i][pos] for i in alive})
        token = allowed[int(np.argmax([scores[t] for t in allowed]))]
        alive = [i for i in alive if encoded[i][pos] == token]
        pos += 1
        if len(alive) > 1:
            scores = next_scores(token)
    return alive[0]
