"""The router behind ``auto``: picks a mode from the retrieval evidence (top dense and BM25
scores, the dense margin between the two best passages), the language those scores were computed
in (the question's, or its translation's) and the adapter's state, and says why in one line a
user can read.

Owns the rule, its thresholds (per language, saved as JSON in the workspace) and the
shapes ``domain.router_fit.fit_router`` works on (fitting lives there). Running the
evaluation is ``domain.evaluation``'s job. Above ~300 lines because the features, the
rule that reads them and the thresholds it reads them against change together (a feature that
changes meaning, such as the language of translated scores, changes all three).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from domain.atomic import write_json_atomic
from domain.crosslingual import LANGUAGE_NAMES
from domain.errors import ConfigError
from domain.style import detect_lang
from domain.types import ALL_MODES, Hit, Mode, RouteDecision

# Cheapest first: the hindsight-best mode breaks ties toward the front.
COST_ORDER: tuple[Mode, ...] = (Mode.PROMPT, Mode.RAG, Mode.TUNED, Mode.TUNED_RAG)
# What the pages, the CLI and the router's reasons call each mode (keyed by ``Mode.value``).
MODE_LABELS = {
    "auto": "Auto (router picks)",
    "prompt": "Prompt only",
    "rag": "RAG",
    "tuned": "Tuned (adapter)",
    "tuned_rag": "Tuned + RAG",
}
MODE_CHOICES = tuple(MODE_LABELS)  # what a user may ask for: "auto", then the four modes


@dataclass(frozen=True)
class AdapterState:
    """The LoRA adapter the generator would apply: loaded at all, its label, its gate verdict
    (None when it was never gated, e.g. the bundled default)."""

    active: bool = False
    label: str | None = None
    gate_passed: bool | None = None
    note: str | None = None  # why there is none (e.g. the only adapter fits another base model)

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
    lang: str  # the language the scores were computed in: the question's, or its translation's
    same_lang: bool  # the best passage is in that language (BM25 means little otherwise)
    n_hits: int
    translated: bool = False  # the scores are those of the question's translation into ``lang``

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteFeatures:
        """Features from a saved evaluation row; keys it does not know (such as ``general_cue``
        in rows saved by older versions) are ignored, keys it lacks take their defaults."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def scored_in(hit: Hit, question_lang: str, searched_as: Mapping[str, str]) -> str:
    """The language of the text ``hit``'s scores were computed against: the passage's own when the
    question was translated into it for searching (``domain.crosslingual``), else the question's."""
    return hit.chunk.lang if hit.chunk.lang in searched_as else question_lang


def route_features(
    question: str, hits: Sequence[Hit], searched_as: Mapping[str, str] | None = None
) -> RouteFeatures:
    """Summarise ``hits`` (any order) for the router.

    Scores are only comparable with the bars of the language they were computed in: when the
    question was translated for some languages (``searched_as``, language -> translation), the
    hits are summarised within the group scored in the same language as the best-ranked hit, and
    ``lang`` is that language (a translated group's passages count as same-language matches).

    >>> from domain.types import Chunk
    >>> def hit(lang, rank, dense):
    ...     return Hit(Chunk(f"c{rank}", f"{lang}.md", "", "", "x", 0, 1, lang=lang), 0.5, rank, dense, 9.0)
    >>> hits = [hit("en", 1, 0.86), hit("zh", 2, 0.91)]
    >>> f = route_features("如何设置代理？", hits, {"en": "How do I set a proxy?"})
    >>> f.lang, f.same_lang, f.dense_top, f.top_path
    ('en', True, 0.86, 'en.md')
    >>> route_features("如何设置代理？", hits).dense_top  # untranslated: one group, the question's
    0.91
    """
    own = lang = detect_lang(question)
    if searched_as and hits:
        first = min(hits, key=lambda h: h.rank)
        lang = scored_in(first, own, searched_as)
        hits = [h for h in hits if scored_in(h, own, searched_as) == lang]
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
        n_hits=len(hits),
        translated=lang != own,
    )


# Keys older versions wrote to router.json that no longer mean anything; loading skips them.
RETIRED_THRESHOLDS = frozenset({"general_penalty"})


@dataclass(frozen=True)
class RouterThresholds:
    """The router's knobs; ``fit_router`` chooses them, ``save``/``load`` keep them as JSON.

    Retrieval counts as covering the question when the best dense score reaches the dense bar of
    the language the scores were computed in (the question's, or its translation's: see
    ``route_features``), or the best BM25 score reaches its bar with the passage in that language,
    or the best dense score is within ``gray_band`` below the bar and leads the next passage by at
    least ``margin_min``.
    Chinese has its own bars (``*_zh``): embedders score Chinese text higher across the board and
    BM25 sees more (word-segmented) terms.
    """

    dense_min: float = 0.82
    bm25_min: float = 8.0
    dense_min_zh: float = 0.89
    bm25_min_zh: float = 15.0
    margin_min: float = 0.05
    gray_band: float = 0.03
    adapter_with_rag: bool = True
    adapter_without_rag: bool = True

    def __post_init__(self) -> None:
        for name in ("gray_band", "margin_min"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"router threshold {name}={getattr(self, name)} is negative — use 0 or more"
                )

    def bars(self, lang: str) -> tuple[float, float]:
        """(dense bar, BM25 bar) for scores computed with a question in ``lang``."""
        if lang == "zh":
            return self.dense_min_zh, self.bm25_min_zh
        return self.dense_min, self.bm25_min

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouterThresholds:
        """Thresholds from JSON; missing keys keep their defaults and ``RETIRED_THRESHOLDS``
        (written by older versions) are ignored.

        Raises:
            ConfigError: an unknown key or a value of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_THRESHOLDS}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(
                f"unknown router thresholds {sorted(unknown)} — delete the file to use defaults"
            )
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
            raise ConfigError(
                f"router thresholds {p} unreadable ({e}) — delete it or run `hybrid eval --fit-router`"
            ) from e
        if not isinstance(data, dict):
            raise ConfigError(f"router thresholds {p} is not a JSON object — delete it or refit")
        return cls.from_json(data)


def _evidence(f: RouteFeatures, t: RouterThresholds) -> tuple[bool, str]:
    """Whether retrieval covers the question, and the phrase that says why."""
    if f.n_hits == 0 or (f.dense_top is None and f.bm25_top is None):
        return False, "nothing retrieved"
    bar, bm25_min = t.bars(f.lang)  # the dense bar and the BM25 bar
    dense = f.dense_top
    via = f" under the question's {LANGUAGE_NAMES.get(f.lang, f.lang)} translation" if f.translated else ""
    if dense is not None and dense >= bar:
        return True, f"top passage {dense:.2f} from {f.top_path}{via}"
    if f.same_lang and f.bm25_top is not None and f.bm25_top >= bm25_min:
        return True, f"keyword match (BM25 {f.bm25_top:.1f}) in {f.top_path}{via}"
    if dense is not None and f.margin is not None and dense >= bar - t.gray_band and f.margin >= t.margin_min:
        return True, f"top passage {dense:.2f} from {f.top_path} stands out by {f.margin:.2f}{via}"
    shown = "n/a" if dense is None else f"{dense:.2f}"
    return False, f"best passage {shown} is below {bar:.2f}{via}"


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
        note = "no adapter fits this base model" if adapter.note else "no adapter active"
    elif adapter.gate_passed is False:
        note = f"adapter {name} failed its gate, not used"
    elif use_adapter:
        note = f"adapter {name} active"
    else:
        note = f"adapter {name} not used (it did not help here in evaluation)"
    return RouteDecision(mode, f"{MODE_LABELS[mode.value]}: {why}; {note}")


def route(
    question: str,
    hits: Sequence[Hit],
    adapter: AdapterState,
    thresholds: RouterThresholds | None = None,
    searched_as: Mapping[str, str] | None = None,
) -> RouteDecision:
    """Pick a mode for ``question`` given its retrieved ``hits`` (and what it was translated to
    for searching, see ``route_features``)."""
    return decide(route_features(question, hits, searched_as), adapter, thresholds or RouterThresholds())


def chosen(
    mode: Mode | str, question: str, hits: Sequence[Hit], searched_as: Mapping[str, str] | None = None
) -> RouteDecision:
    """A user's explicit mode, marked as overridden, with the evidence for context."""
    m = Mode(mode)
    features = route_features(question, hits, searched_as)
    _, why = _evidence(features, RouterThresholds()) if hits else (False, "")
    suffix = f"; {why}" if hits and m.uses_retrieval else ""
    return RouteDecision(m, f"{MODE_LABELS[m.value]}: chosen by you{suffix}", overridden=True)


def compared(mode: Mode, picked: RouteDecision) -> RouteDecision:
    """The decision a comparison answers ``mode`` under: the router's own when it picked ``mode``,
    else ``mode`` marked as overridden and "shown for comparison"."""
    if mode == picked.mode:
        return picked
    return RouteDecision(mode, f"{MODE_LABELS[mode.value]}: shown for comparison", overridden=True)


# ----------------------------------------------------------------------------- fitting
TIE_EPS = 1e-9


def hindsight_best(scores: Mapping[str, float]) -> Mode:
    """The cheapest of the ``best_modes`` (cost order: prompt, rag, tuned, tuned_rag).

    >>> hindsight_best({"prompt": 0.5, "rag": 1.0, "tuned": 1.0, "tuned_rag": 0.75}).value
    'rag'
    """
    best = best_modes(scores)
    return next(m for m in COST_ORDER if m in best)


def best_modes(scores: Mapping[str, float]) -> frozenset[Mode]:
    """Every mode whose score equals the row's highest: each one is a hindsight-best choice. The
    router agrees with hindsight on a row when it picks any of them (it lost nothing there);
    ``hindsight_best`` names the cheapest of them for counts and tables.

    >>> sorted(m.value for m in best_modes({"prompt": 0.5, "rag": 1.0, "tuned": 1.0, "tuned_rag": 0.75}))
    ['rag', 'tuned']
    """
    present = {m: scores[m.value] for m in ALL_MODES if m.value in scores}
    if not present:
        raise ValueError("no mode scores to compare")
    top = max(present.values())
    return frozenset(m for m, v in present.items() if v >= top - TIE_EPS)


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
    """(agreement with the hindsight-best modes, mean score of the routed modes) over ``rows``."""
    if not rows:
        return 0.0, 0.0
    agree = total = 0.0
    for r in rows:
        picked = decide(r.features, r.adapter, t).mode
        agree += picked in best_modes(r.scores)
        total += r.scores.get(picked.value, 0.0)
    return agree / len(rows), total / len(rows)
