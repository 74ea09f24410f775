"""Constrained choice by likelihood: the model picks one of a few given strings, the one it finds
most likely as the continuation of its prompt (mean log-probability per token, the option's line
break included, so short and long options compete fairly).

Greedy decoding under a grammar of the same options commits to the first token that several
options share ("The ...") and can end in a sentence it would never have chosen whole; scoring
every option whole avoids that, and the output is always exactly one option. Both generation
backends score through ``best_option``, so they make the same choice from the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
