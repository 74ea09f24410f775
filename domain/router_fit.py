"""Fitting the router's thresholds to evaluation results: a vectorised grid search that maximises
agreement with each row's hindsight-best modes (any mode tied for the row's best score agrees)
plus a weight times the routed score (both summed over the rows). ``fit_router`` runs it for
rising weights and keeps the most agreeing fit whose routed score stays within ``SCORE_SLACK`` of
the best fixed mode: maximising agreement alone can fit a router that agrees more but scores below
always answering in the best fixed mode.

The dense and BM25 bars are fitted per language (each row's features name the language its scores
were computed in, the question's or its translation's, and depend only on that language's bars);
the margin rule and the two adapter flags are shared. A row counts when it was scored in every mode
the router may pick for it (``fittable``): all four with a usable adapter, prompt and RAG without.
Candidate bars are the observed scores themselves, so every split of the rows is reachable; ties
keep the earliest candidate, and every candidate list starts with the starting thresholds' value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from domain.router import (
    COST_ORDER,
    TIE_EPS,
    AdapterState,
    RouterFit,
    RouterRow,
    RouterThresholds,
    score_thresholds,
)
from domain.types import ALL_MODES, Mode

SCORE_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 64.0)
SCORE_SLACK = 0.02  # routed score may trail the best fixed mode by this much
_LOW = -1e18
_NEVER_DENSE = 2.0  # cosine scores never reach it
_NEVER = 1e9


def candidates(first: float, values: Sequence[float], never: float, most: int = 24) -> list[float]:
    """``first``, then up to ``most`` observed values (evenly spread, ascending), then ``never``.

    >>> candidates(0.8, [0.9, 0.7, 0.9], 2.0)
    [0.8, 0.7, 0.9, 2.0]
    """
    observed = sorted({round(v, 4) for v in values if v > _LOW})
    if len(observed) > most:
        step = (len(observed) - 1) / (most - 1)
        observed = [observed[round(i * step)] for i in range(most)]
    return list(dict.fromkeys([first, *observed, never]))


class _Rows:
    """Column arrays of the rows and, per adapter flag, each row's agreement and score when
    routed to a retrieval mode ("cov") or not ("unc")."""

    def __init__(self, rows: Sequence[RouterRow]) -> None:
        def col(values: Sequence[float | None]) -> np.ndarray:
            return np.array([_LOW if v is None else v for v in values], dtype=np.float64)

        self.n = len(rows)
        self.dense = col([r.features.dense_top for r in rows])
        self.bm25 = col([r.features.bm25_top for r in rows])
        self.margin = col([r.features.margin for r in rows])
        self.same = np.array([r.features.same_lang for r in rows], dtype=bool)
        self.any_hits = np.array([r.features.n_hits > 0 for r in rows], dtype=bool)
        self.zh = np.array([r.features.lang == "zh" for r in rows], dtype=bool)
        usable = np.array([r.adapter.usable for r in rows], dtype=bool)
        table = np.array([[r.scores.get(m.value, _LOW) for m in COST_ORDER] for r in rows], dtype=np.float64)
        top = table.max(axis=1)
        idx = np.arange(self.n)
        self.agree: dict[tuple[str, bool], np.ndarray] = {}
        self.score: dict[tuple[str, bool], np.ndarray] = {}
        for flag in (True, False):
            for part, plain, tuned in (("cov", Mode.RAG, Mode.TUNED_RAG), ("unc", Mode.PROMPT, Mode.TUNED)):
                picked = np.where(usable & flag, COST_ORDER.index(tuned), COST_ORDER.index(plain))
                self.agree[part, flag] = (table[idx, picked] >= top - TIE_EPS).astype(np.float64)
                self.score[part, flag] = table[idx, picked]


def _group_keys(
    r: _Rows,
    mask: np.ndarray,
    dense_c: list[float],
    bm25_c: list[float],
    margin_min: float,
    gray: float,
    score_weight: float,
) -> dict[tuple[bool, bool], np.ndarray]:
    """For each (adapter_with_rag, adapter_without_rag): a (dense, bm25) grid of keys
    agreement + ``score_weight`` × score, summed over the masked rows."""
    dense, bm25, margin = r.dense[mask], r.bm25[mask], r.margin[mask]
    bar = np.array(dense_c)[:, None, None]
    covered = (
        (dense[None, None, :] >= bar)
        | (r.same[mask][None, None, :] & (bm25[None, None, :] >= np.array(bm25_c)[None, :, None]))
        | ((dense[None, None, :] >= bar - gray) & (margin[None, None, :] >= margin_min))
    ) & r.any_hits[mask][None, None, :]
    cov = covered.astype(np.float64)
    unc = 1.0 - cov
    out: dict[tuple[bool, bool], np.ndarray] = {}
    for awr in (True, False):
        for awo in (True, False):
            agree = cov @ r.agree["cov", awr][mask] + unc @ r.agree["unc", awo][mask]
            score = cov @ r.score["cov", awr][mask] + unc @ r.score["unc", awo][mask]
            out[awr, awo] = agree + score_weight * score
    return out


def pickable(adapter: AdapterState) -> tuple[Mode, ...]:
    """The modes ``decide`` may pick for a row: all four with a usable adapter, else prompt and RAG."""
    return ALL_MODES if adapter.usable else (Mode.PROMPT, Mode.RAG)


def fittable(rows: Sequence[RouterRow]) -> list[RouterRow]:
    """The rows a fit can learn from: those scored in every mode the router may pick for them (a
    collection without an adapter yet is fitted on its prompt and RAG scores)."""
    return [r for r in rows if all(m.value in r.scores for m in pickable(r.adapter))]


def fit_thresholds(
    rows: Sequence[RouterRow], start: RouterThresholds | None = None, *, score_weight: float = 1.0
) -> RouterFit:
    """The grid search behind ``fit_router`` for one weight of the routed score
    against agreement; only ``fittable`` rows count."""
    base = start or RouterThresholds()
    full = fittable(rows)
    if not full:
        return RouterFit(base, 0.0, 0.0, 0)
    r = _Rows(full)
    groups = [(name, mask) for name, mask in (("en", ~r.zh), ("zh", r.zh)) if mask.any()]
    grids = {
        name: (
            candidates(base.bars(name)[0], list(r.dense[mask]), _NEVER_DENSE),
            candidates(base.bars(name)[1], list(r.bm25[mask]), _NEVER),
        )
        for name, mask in groups
    }
    flag_order = list(
        dict.fromkeys(
            [
                (base.adapter_with_rag, base.adapter_without_rag),
                (True, True),
                (True, False),
                (False, True),
                (False, False),
            ]
        )
    )
    best_key: float | None = None
    best_t = base
    for margin_min in candidates(base.margin_min, list(r.margin), _NEVER, most=8):
        keys = {
            name: _group_keys(r, mask, *grids[name], margin_min, base.gray_band, score_weight)
            for name, mask in groups
        }
        for flags in flag_order:
            total, bars = 0.0, {}
            for name, _ in groups:
                grid = keys[name][flags]
                i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
                total += float(grid[i, j])
                bars[name] = (grids[name][0][i], grids[name][1][j])
            if best_key is None or total > best_key + 1e-9:
                best_key = total
                en = bars.get("en", base.bars("en"))
                zh = bars.get("zh", base.bars("zh"))
                best_t = replace(
                    base,
                    dense_min=en[0],
                    bm25_min=en[1],
                    dense_min_zh=zh[0],
                    bm25_min_zh=zh[1],
                    margin_min=margin_min,
                    adapter_with_rag=flags[0],
                    adapter_without_rag=flags[1],
                )
    return RouterFit(best_t, *score_thresholds(full, best_t), len(full))


def fit_router(rows: Sequence[RouterRow], start: RouterThresholds | None = None) -> RouterFit:
    """Thresholds that agree best with the hindsight-best mode on ``rows`` while the routed score
    stays within ``SCORE_SLACK`` of the best fixed mode's (see ``domain.router_fit``): fits for
    each weight in ``SCORE_WEIGHTS``, the most agreeing one that keeps the score; when none does,
    the best-scoring one."""
    fits = [fit_thresholds(rows, start, score_weight=w) for w in SCORE_WEIGHTS]
    full = fittable(rows)
    if not full:
        return fits[0]
    fixed = [m for m in ALL_MODES if all(m.value in r.scores for r in full)]
    best_fixed = max(sum(r.scores[m.value] for r in full) / len(full) for m in fixed)
    keeping = [f for f in fits if f.combined >= best_fixed - SCORE_SLACK - 1e-9]
    if keeping:
        return max(keeping, key=lambda f: f.agreement)  # max keeps the first (lowest weight) on ties
    return max(fits, key=lambda f: f.combined)
