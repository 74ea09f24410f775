"""The router behind ``auto``: picks a mode from the retrieval evidence (top dense and BM25
scores, the dense margin between the two best passages), the adapter's state and cues in the
question, and says why in one line a user can read.

Owns the rule, its thresholds (saved as JSON in the workspace) and ``fit_router``, a grid search
that fits the thresholds to per-row evaluation results. Running the evaluation is
``domain.evaluation``'s job.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from domain.atomic import write_json_atomic
from domain.errors import ConfigError
from domain.style import detect_lang
from domain.types import ALL_MODES, Hit, Mode, RouteDecision

# Cheapest first: the hindsight-best mode breaks ties toward the front.
COST_ORDER: tuple[Mode, ...] = (Mode.PROMPT, Mode.RAG, Mode.TUNED, Mode.TUNED_RAG)
MODE_LABELS = {Mode.PROMPT: "Prompt", Mode.RAG: "RAG", Mode.TUNED: "Tuned", Mode.TUNED_RAG: "Tuned + RAG"}

# Questions about the world rather than about the organisation's documents.
GENERAL_CUES = re.compile(
    r"capital of|boiling point|freezing point|speed of light|who (wrote|invented|painted|discovered)|"
    r"how many (seconds|minutes|hours|days) (are )?in|convert .* (celsius|fahrenheit)|largest (ocean|planet|country)|"
    r"首都|沸点|光速|换算|作者是谁|谁写的|谁发明|最大的(大洋|海洋|行星|国家)|多少秒|省会",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AdapterState:
    """The LoRA adapter the generator would apply: loaded at all, its label, its gate verdict
    (None when it was never gated, e.g. the bundled default)."""

    active: bool = False
    label: str | None = None
    gate_passed: bool | None = None

    @property
    def usable(self) -> bool:
        return self.active and self.gate_passed is not False


@dataclass(frozen=True)
class RouteFeatures:
    """What the router looks at for one question."""

    dense_top: float | None
    bm25_top: float | None
    margin: float | None  # best dense score minus the second best
    top_path: str
    lang: str
    same_lang: bool  # the best passage is in the question's language (BM25 means little otherwise)
    general_cue: bool
    n_hits: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteFeatures:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def route_features(question: str, hits: Sequence[Hit]) -> RouteFeatures:
    """Summarise ``hits`` (any order) for the router."""
    lang = detect_lang(question)
    dense = sorted((h.dense_score for h in hits if h.dense_score is not None), reverse=True)
    bm25 = [h.bm25_score for h in hits if h.bm25_score is not None]
    best = min(hits, key=lambda h: h.rank) if hits else None
    if hits and dense:
        best = max((h for h in hits if h.dense_score is not None), key=lambda h: h.dense_score or 0.0)
    return RouteFeatures(
        dense_top=dense[0] if dense else None,
        bm25_top=max(bm25) if bm25 else None,
        margin=dense[0] - dense[1] if len(dense) > 1 else None,
        top_path=best.chunk.path if best else "",
        lang=lang,
        same_lang=best is not None and best.chunk.lang == lang,
        general_cue=bool(GENERAL_CUES.search(question)),
        n_hits=len(hits),
    )


@dataclass(frozen=True)
class RouterThresholds:
    """The router's knobs; ``fit_router`` chooses them, ``save``/``load`` keep them as JSON.

    Retrieval counts as covering the question when the best dense score reaches ``dense_min``
    (raised by ``general_penalty`` for general-knowledge questions), or the best BM25 score reaches
    ``bm25_min`` with the passage in the question's language, or the best dense score is within
    ``gray_band`` below the bar and leads the next passage by at least ``margin_min``.
    """

    dense_min: float = 0.82
    bm25_min: float = 8.0
    margin_min: float = 0.05
    gray_band: float = 0.03
    general_penalty: float = 0.03
    adapter_with_rag: bool = True
    adapter_without_rag: bool = True

    def __post_init__(self) -> None:
        for name in ("gray_band", "general_penalty", "margin_min"):
            if getattr(self, name) < 0:
                raise ConfigError(f"router threshold {name}={getattr(self, name)} is negative — use 0 or more")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouterThresholds:
        """Thresholds from JSON; missing keys keep their defaults.

        Raises:
            ConfigError: an unknown key or a value of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown router thresholds {sorted(unknown)} — delete the file to use defaults")
        values: dict[str, Any] = {}
        for name, value in data.items():
            want = bool if known[name].type in ("bool", bool) else float
            if want is bool and not isinstance(value, bool):
                raise ConfigError(f"router threshold {name}={value!r} is not true/false")
            if want is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(f"router threshold {name}={value!r} is not a number")
            values[name] = want(value)
        return cls(**values)

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> RouterThresholds:
        """Thresholds stored at ``path``, or the defaults when there is no file.

        Raises:
            ConfigError: the file is not valid JSON or holds bad values.
        """
        p = Path(path)
        if not p.is_file():
            return cls()
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"router thresholds {p} unreadable ({e}) — delete it or run `hybrid eval --fit-router`") from e
        if not isinstance(data, dict):
            raise ConfigError(f"router thresholds {p} is not a JSON object — delete it or refit")
        return cls.from_json(data)


def _evidence(f: RouteFeatures, t: RouterThresholds) -> tuple[bool, str]:
    """Whether retrieval covers the question, and the phrase that says why."""
    if f.n_hits == 0 or (f.dense_top is None and f.bm25_top is None):
        return False, "nothing retrieved"
    bar = t.dense_min + (t.general_penalty if f.general_cue else 0.0)
    dense = f.dense_top
    if dense is not None and dense >= bar:
        return True, f"top passage {dense:.2f} from {f.top_path}"
    if f.same_lang and f.bm25_top is not None and f.bm25_top >= t.bm25_min:
        return True, f"keyword match (BM25 {f.bm25_top:.1f}) in {f.top_path}"
    if dense is not None and f.margin is not None and dense >= bar - t.gray_band and f.margin >= t.margin_min:
        return True, f"top passage {dense:.2f} from {f.top_path} stands out by {f.margin:.2f}"
    cue = "general-knowledge question, " if f.general_cue else ""
    shown = "n/a" if dense is None else f"{dense:.2f}"
    return False, f"{cue}best passage {shown} is below {bar:.2f}"


def decide(features: RouteFeatures, adapter: AdapterState, thresholds: RouterThresholds) -> RouteDecision:
    """The mode for these features, with the one-line reason."""
    covered, why = _evidence(features, thresholds)
    wants = thresholds.adapter_with_rag if covered else thresholds.adapter_without_rag
    use_adapter = adapter.usable and wants
    if covered:
        mode = Mode.TUNED_RAG if use_adapter else Mode.RAG
    else:
        mode = Mode.TUNED if use_adapter else Mode.PROMPT
    name = adapter.label or "adapter"
    if not adapter.active:
        note = "no adapter active"
    elif adapter.gate_passed is False:
        note = f"adapter {name} failed its gate, not used"
    elif use_adapter:
        note = f"adapter {name} active"
    else:
        note = f"adapter {name} not used (it did not help here in evaluation)"
    return RouteDecision(mode, f"{MODE_LABELS[mode]}: {why}; {note}")


def route(
    question: str, hits: Sequence[Hit], adapter: AdapterState, thresholds: RouterThresholds | None = None
) -> RouteDecision:
    """Pick a mode for ``question`` given its retrieved ``hits``."""
    return decide(route_features(question, hits), adapter, thresholds or RouterThresholds())


def chosen(mode: Mode | str, question: str, hits: Sequence[Hit]) -> RouteDecision:
    """A user's explicit mode, marked as overridden, with the evidence for context."""
    m = Mode(mode)
    _, why = _evidence(route_features(question, hits), RouterThresholds()) if hits else (False, "")
    suffix = f"; {why}" if hits and m.uses_retrieval else ""
    return RouteDecision(m, f"{MODE_LABELS[m]}: chosen by you{suffix}", overridden=True)


# ----------------------------------------------------------------------------- fitting
def hindsight_best(scores: Mapping[str, float]) -> Mode:
    """The mode with the highest score; ties go to the cheaper mode (prompt, rag, tuned, tuned_rag).

    >>> hindsight_best({"prompt": 0.5, "rag": 1.0, "tuned": 1.0, "tuned_rag": 0.75}).value
    'rag'
    """
    present = [m for m in COST_ORDER if m.value in scores]
    if not present:
        raise ValueError("no mode scores to compare")
    return max(present, key=lambda m: (scores[m.value], -COST_ORDER.index(m)))


@dataclass(frozen=True)
class RouterRow:
    """One evaluation row for fitting: the router's inputs and each mode's score (``combined``)."""

    features: RouteFeatures
    adapter: AdapterState
    scores: Mapping[str, float]


@dataclass(frozen=True)
class RouterFit:
    thresholds: RouterThresholds
    agreement: float
    combined: float
    n_rows: int


def score_thresholds(rows: Sequence[RouterRow], t: RouterThresholds) -> tuple[float, float]:
    """(agreement with the hindsight-best mode, mean score of the routed modes) over ``rows``."""
    if not rows:
        return 0.0, 0.0
    agree = total = 0.0
    for r in rows:
        picked = decide(r.features, r.adapter, t).mode
        agree += picked == hindsight_best(r.scores)
        total += r.scores.get(picked.value, 0.0)
    return agree / len(rows), total / len(rows)


def _candidates(first: float, values: Sequence[float], never: float, most: int = 24) -> list[float]:
    """``first``, then observed values (a threshold exactly at a value splits the rows there; at
    most ``most`` of them, evenly spread), then ``never``."""
    observed = sorted({round(v, 4) for v in values})
    if len(observed) > most:
        step = (len(observed) - 1) / (most - 1)
        observed = [observed[round(i * step)] for i in range(most)]
    return list(dict.fromkeys([first, *observed, never]))


def _pick_adapter_flag(
    first: bool, mask: np.ndarray, agree: dict[bool, np.ndarray], score: dict[bool, np.ndarray]
) -> tuple[bool, float, float]:
    """The adapter flag with the most agreement (then score) on the masked rows; ties keep ``first``."""
    best: tuple[bool, float, float] | None = None
    for flag in (first, not first):
        a, s = float(agree[flag][mask].sum()), float(score[flag][mask].sum())
        if best is None or (a, s) > (best[1], best[2]):
            best = (flag, a, s)
    assert best is not None
    return best


def fit_router(rows: Sequence[RouterRow], start: RouterThresholds | None = None) -> RouterFit:
    """Grid-search thresholds that maximise agreement with the hindsight-best mode per row, then
    the routed mean score. Only rows scored in all four modes count.

    Threshold candidates are observed top scores (so any split of the rows is reachable) plus a
    "never" value; the two adapter flags are chosen per split (covered rows decide
    ``adapter_with_rag``, the rest ``adapter_without_rag``). Ties keep the earlier candidate, and
    every grid starts at ``start``'s value.
    """
    base = start or RouterThresholds()
    full = [r for r in rows if all(m.value in r.scores for m in ALL_MODES)]
    if not full:
        return RouterFit(base, 0.0, 0.0, 0)
    low = -1e18

    def col(values: Sequence[float | None]) -> np.ndarray:
        return np.array([low if v is None else v for v in values], dtype=np.float64)

    dense = col([r.features.dense_top for r in full])
    bm25 = col([r.features.bm25_top for r in full])
    margin = col([r.features.margin for r in full])
    same = np.array([r.features.same_lang for r in full])
    cue = np.array([r.features.general_cue for r in full])
    any_hits = np.array([r.features.n_hits > 0 for r in full])
    usable = np.array([r.adapter.usable for r in full])
    best = np.array([COST_ORDER.index(hindsight_best(r.scores)) for r in full])
    table = np.array([[r.scores[m.value] for m in COST_ORDER] for r in full], dtype=np.float64)
    rows_idx = np.arange(len(full))
    agree: dict[str, dict[bool, np.ndarray]] = {"cov": {}, "unc": {}}
    score: dict[str, dict[bool, np.ndarray]] = {"cov": {}, "unc": {}}
    for flag in (True, False):
        for part, plain, tuned in (("cov", Mode.RAG, Mode.TUNED_RAG), ("unc", Mode.PROMPT, Mode.TUNED)):
            picked = np.where(usable & flag, COST_ORDER.index(tuned), COST_ORDER.index(plain))
            agree[part][flag] = (picked == best).astype(np.float64)
            score[part][flag] = table[rows_idx, picked]

    n = float(len(full))
    best_t = base
    agreement0, combined0 = score_thresholds(full, base)
    best_key = (round(agreement0, 9), round(combined0, 9))
    grid = itertools.product(
        _candidates(base.dense_min, [v for v in dense if v > low], 2.0),
        _candidates(base.bm25_min, [v for v in bm25 if v > low], 1e9),
        _candidates(base.margin_min, [v for v in margin if v > low], 1e9, most=8),
        list(dict.fromkeys([base.general_penalty, 0.0, 0.02, 0.05])),
    )
    for d, b, m, g in grid:
        bar = d + np.where(cue, g, 0.0)
        covered = any_hits & (
            (dense >= bar) | (same & (bm25 >= b)) | ((dense >= bar - base.gray_band) & (margin >= m))
        )
        awr, a1, s1 = _pick_adapter_flag(base.adapter_with_rag, covered, agree["cov"], score["cov"])
        awo, a2, s2 = _pick_adapter_flag(base.adapter_without_rag, ~covered, agree["unc"], score["unc"])
        key = (round((a1 + a2) / n, 9), round((s1 + s2) / n, 9))
        if key > best_key:
            best_key = key
            best_t = replace(base, dense_min=d, bm25_min=b, margin_min=m, general_penalty=g,
                             adapter_with_rag=awr, adapter_without_rag=awo)
    return RouterFit(best_t, *score_thresholds(full, best_t), len(full))
