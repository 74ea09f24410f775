"""Golden-value tests of the router: the mode and the exact one-line reason for each kind of
evidence and adapter state, thresholds saved and loaded as JSON, and threshold fitting."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from domain.errors import ConfigError
from domain.router import (
    AdapterState,
    RouteFeatures,
    RouterRow,
    RouterThresholds,
    best_modes,
    chosen,
    decide,
    hindsight_best,
    route,
    route_features,
    score_thresholds,
)
from domain.router_fit import fit_router, fit_thresholds
from domain.types import ALL_MODES, Mode, RouteDecision
from tests.fakes_answer import SAMPLE_CHUNKS, make_chunk, make_hit

LEAVE = make_chunk("c1", "hr/annual-leave.md", "Annual leave is 15 days.")
OVERTIME = make_chunk("c2", "hr/overtime.md", "Overtime is paid at 150%.")
ZH = make_chunk("c3", "hr/faq-zh.md", "年假十五天。", lang="zh")
V3 = AdapterState(active=True, label="v3", gate_passed=True)
NONE = AdapterState()
MODES = ("prompt", "rag", "tuned", "tuned_rag")
Q = "How many days of annual leave do I get?"


def hits(d1: float, d2: float = 0.6, b1: float = 2.0, first=LEAVE) -> list:
    return [make_hit(first, 1, dense=d1, bm25=b1), make_hit(OVERTIME, 2, dense=d2, bm25=1.0)]


def test_strong_dense_evidence_with_adapter_goes_tuned_rag() -> None:
    assert route(Q, hits(0.83), V3) == RouteDecision(
        Mode.TUNED_RAG, "Tuned + RAG: top passage 0.83 from hr/annual-leave.md; adapter v3 active"
    )


def test_strong_dense_evidence_without_adapter_goes_rag() -> None:
    assert (
        route(Q, hits(0.83), NONE).reason
        == "RAG: top passage 0.83 from hr/annual-leave.md; no adapter active"
    )


def test_weak_evidence_goes_prompt_or_tuned() -> None:
    assert route(Q, hits(0.62), NONE) == RouteDecision(
        Mode.PROMPT, "Prompt only: best passage 0.62 is below 0.82; no adapter active"
    )
    assert route(Q, hits(0.62), V3) == RouteDecision(
        Mode.TUNED, "Tuned (adapter): best passage 0.62 is below 0.82; adapter v3 active"
    )


def test_the_wording_of_a_question_does_not_move_the_bar() -> None:
    """The router reads the question's language, not its topic: with the same hits, a quiz-style
    question is routed exactly like a question about the documents."""
    quiz = "What is the capital of France?"
    assert (
        route(quiz, hits(0.82, d2=0.81), NONE)
        == route(Q, hits(0.82, d2=0.81), NONE)
        == RouteDecision(Mode.RAG, "RAG: top passage 0.82 from hr/annual-leave.md; no adapter active")
    )
    assert route(quiz, hits(0.81, d2=0.80), V3) == RouteDecision(
        Mode.TUNED, "Tuned (adapter): best passage 0.81 is below 0.82; adapter v3 active"
    )
    assert route("中国的首都是哪座城市？", hits(0.89, d2=0.88, first=ZH), NONE).reason == (
        "RAG: top passage 0.89 from hr/faq-zh.md; no adapter active"
    )


def test_chinese_questions_have_their_own_bars() -> None:
    zq = "员工一年有几天年假？"
    assert route(zq, hits(0.88, d2=0.87, b1=14.0, first=ZH), NONE) == RouteDecision(
        Mode.PROMPT, "Prompt only: best passage 0.88 is below 0.89; no adapter active"
    )
    assert route(zq, hits(0.88, d2=0.87, b1=15.0, first=ZH), NONE).reason == (
        "RAG: keyword match (BM25 15.0) in hr/faq-zh.md; no adapter active"
    )
    assert RouterThresholds().bars("zh") == (0.89, 15.0)
    assert RouterThresholds().bars("en") == RouterThresholds().bars("fr") == (0.82, 8.0)


def test_translated_passages_are_judged_by_the_bars_of_the_language_they_were_scored_in() -> None:
    zq = "年假有几天？"
    translated = {"en": "How many days of annual leave?"}
    en_hits = hits(0.85, d2=0.84)  # English passages, ranked by the translation
    # untranslated, a Chinese question is held to the Chinese bar (0.89)
    assert route(zq, en_hits, NONE).mode == Mode.PROMPT
    # translated into English, the English passages' scores are an English question's: bar 0.82
    assert route(zq, en_hits, NONE, searched_as=translated) == RouteDecision(
        Mode.RAG,
        "RAG: top passage 0.85 from hr/annual-leave.md under the question's English translation; "
        "no adapter active",
    )
    # and their BM25 score is a same-language keyword match
    assert route(zq, hits(0.7, d2=0.69, b1=9.5), NONE, searched_as=translated).reason.startswith(
        "RAG: keyword match (BM25 9.5)"
    )
    # an English question translated into Chinese: the Chinese pool ranked first is held to 0.89
    zh_first = [make_hit(ZH, 1, dense=0.87, bm25=3.0), make_hit(LEAVE, 2, dense=0.80, bm25=1.0)]
    assert route(Q, zh_first, NONE).mode == Mode.RAG  # untranslated: 0.87 against the English bar
    features = route_features(Q, zh_first, {"zh": "年假有几天？"})
    assert (features.lang, features.dense_top, features.n_hits, features.margin) == ("zh", 0.87, 1, None)
    assert route(Q, zh_first, NONE, searched_as={"zh": "年假有几天？"}).mode == Mode.PROMPT
    # the overridden mode's reason speaks of the same evidence
    assert chosen("rag", zq, en_hits, translated).reason == (
        "RAG: chosen by you; top passage 0.85 from hr/annual-leave.md under the question's English translation"
    )
    # features saved before the translated flag existed still load
    saved = {k: v for k, v in features.to_json().items() if k != "translated"}
    assert RouteFeatures.from_json(saved) == replace(features, translated=False)
    assert features.translated


def test_bm25_counts_only_in_the_question_language() -> None:
    assert route(Q, hits(0.7, b1=9.5), NONE) == RouteDecision(
        Mode.RAG, "RAG: keyword match (BM25 9.5) in hr/annual-leave.md; no adapter active"
    )
    # an English question whose best passage is Chinese: the BM25 score is ignored
    assert route(Q, hits(0.7, b1=9.5, first=ZH), NONE).mode == Mode.PROMPT


def test_a_clear_margin_lifts_a_gray_zone_score() -> None:
    assert route(Q, hits(0.80, d2=0.70), NONE) == RouteDecision(
        Mode.RAG, "RAG: top passage 0.80 from hr/annual-leave.md stands out by 0.10; no adapter active"
    )
    assert route(Q, hits(0.80, d2=0.78), NONE).mode == Mode.PROMPT


def test_adapter_that_failed_its_gate_is_not_used() -> None:
    failed = AdapterState(active=True, label="v4", gate_passed=False)
    assert route(Q, hits(0.9), failed).reason == (
        "RAG: top passage 0.90 from hr/annual-leave.md; adapter v4 failed its gate, not used"
    )


def test_fitted_flags_can_leave_the_adapter_out() -> None:
    t = RouterThresholds(adapter_with_rag=False)
    assert route(Q, hits(0.9), V3, t).reason == (
        "RAG: top passage 0.90 from hr/annual-leave.md; adapter v3 not used (it did not help here in evaluation)"
    )


def test_no_hits() -> None:
    assert route(Q, [], V3) == RouteDecision(
        Mode.TUNED, "Tuned (adapter): nothing retrieved; adapter v3 active"
    )


def test_user_choice_is_marked_overridden() -> None:
    assert chosen("rag", Q, hits(0.83)) == RouteDecision(
        Mode.RAG, "RAG: chosen by you; top passage 0.83 from hr/annual-leave.md", overridden=True
    )
    assert chosen(Mode.TUNED, Q, hits(0.83)) == RouteDecision(
        Mode.TUNED, "Tuned (adapter): chosen by you", overridden=True
    )


def test_route_features() -> None:
    leave, sick = SAMPLE_CHUNKS[:2]
    f = route_features(Q, [make_hit(sick, 2, dense=0.7, bm25=6.0), make_hit(leave, 1, dense=0.9, bm25=4.0)])
    assert f == RouteFeatures(
        dense_top=0.9,
        bm25_top=6.0,
        margin=pytest.approx(0.2),
        top_path="hr/annual-leave.md",
        lang="en",
        same_lang=True,
        n_hits=2,
    )
    assert RouteFeatures.from_json(json.loads(json.dumps(f.to_json()))) == f
    # rows saved by older versions carry a retired ``general_cue``; unknown keys are ignored
    assert RouteFeatures.from_json({**f.to_json(), "general_cue": True, "later": 1}) == f


def test_thresholds_round_trip_and_defaults(tmp_path) -> None:
    path = tmp_path / "router.json"
    assert RouterThresholds.load(path) == RouterThresholds()
    t = RouterThresholds(dense_min=0.871, bm25_min=11.0, adapter_without_rag=False)
    t.save(path)
    assert json.loads(path.read_text()) == {
        "dense_min": 0.871,
        "bm25_min": 11.0,
        "dense_min_zh": 0.89,
        "bm25_min_zh": 15.0,
        "margin_min": 0.05,
        "gray_band": 0.03,
        "adapter_with_rag": True,
        "adapter_without_rag": False,
    }
    assert RouterThresholds.load(path) == t
    assert RouterThresholds.from_json({"dense_min": 1}) == RouterThresholds(dense_min=1.0)


def test_an_old_router_file_with_the_retired_general_penalty_loads(tmp_path) -> None:
    path = tmp_path / "router.json"
    old = {
        "dense_min": 0.85,
        "bm25_min": 9.5,
        "dense_min_zh": 0.9,
        "bm25_min_zh": 14.0,
        "margin_min": 0.1,
        "gray_band": 0.02,
        "general_penalty": 0.05,
        "adapter_with_rag": False,
        "adapter_without_rag": True,
    }
    path.write_text(json.dumps(old))
    t = RouterThresholds.load(path)
    assert t == RouterThresholds(
        dense_min=0.85,
        bm25_min=9.5,
        dense_min_zh=0.9,
        bm25_min_zh=14.0,
        margin_min=0.1,
        gray_band=0.02,
        adapter_with_rag=False,
    )
    t.save(path)  # saving again drops the retired key
    assert json.loads(path.read_text()) == {k: v for k, v in old.items() if k != "general_penalty"}


def test_any_other_unknown_threshold_is_still_an_error(tmp_path) -> None:
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"general_penalty": 0.03, "dense_min": 0.8, "general_bonus": 0.1}))
    with pytest.raises(ConfigError) as raised:
        RouterThresholds.load(path)
    assert str(raised.value) == (
        "unknown router thresholds ['general_bonus'] — delete the file to use defaults"
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "unreadable"),
        ("[1]", "not a JSON object"),
        ('{"dense": 0.8}', "unknown router thresholds"),
        ('{"dense_min": "high"}', "is not a number"),
        ('{"adapter_with_rag": 1}', "is not true/false"),
        ('{"gray_band": -0.1}', "is negative"),
    ],
)
def test_bad_threshold_files_say_what_is_wrong(tmp_path, content, fragment) -> None:
    path = tmp_path / "router.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        RouterThresholds.load(path)


def test_hindsight_best_breaks_ties_toward_the_cheaper_mode() -> None:
    assert hindsight_best({"prompt": 0.5, "rag": 0.9, "tuned": 0.9, "tuned_rag": 0.9}) == Mode.RAG
    assert hindsight_best({"prompt": 1.0, "rag": 1.0, "tuned": 1.0, "tuned_rag": 1.0}) == Mode.PROMPT
    assert hindsight_best({"tuned_rag": 0.4, "tuned": 0.3}) == Mode.TUNED_RAG


def row(dense: float, best: str, adapter: AdapterState = NONE) -> RouterRow:
    f = RouteFeatures(
        dense_top=dense,
        bm25_top=None,
        margin=None,
        top_path="a.md",
        lang="en",
        same_lang=True,
        n_hits=1,
    )
    scores = {"prompt": 0.5, "rag": 0.5, "tuned": 0.5, "tuned_rag": 0.5}
    scores[best] = 1.0
    return RouterRow(f, adapter, scores)


def test_fit_router_moves_the_dense_threshold_to_the_observed_split() -> None:
    rows = [row(0.84, "prompt"), row(0.86, "prompt"), row(0.90, "rag"), row(0.95, "rag")]
    assert score_thresholds(rows, RouterThresholds()) == (0.5, 0.75)  # everything goes to rag
    fit = fit_router(rows)
    assert fit.thresholds == replace(RouterThresholds(), dense_min=0.9)
    assert (fit.agreement, fit.combined, fit.n_rows) == (1.0, 1.0, 4)


def test_fit_router_learns_where_the_adapter_helps() -> None:
    rows = [
        row(0.95, "tuned_rag", V3),
        row(0.93, "tuned_rag", V3),
        row(0.5, "prompt", V3),
        row(0.6, "prompt", V3),
    ]
    fit = fit_router(rows)
    assert (fit.thresholds.adapter_with_rag, fit.thresholds.adapter_without_rag) == (True, False)
    assert fit.agreement == 1.0


def test_fit_router_ignores_rows_missing_a_mode() -> None:
    partial = RouterRow(row(0.9, "rag").features, NONE, {"prompt": 1.0})
    fit = fit_router([partial])
    assert (fit.thresholds, fit.n_rows) == (RouterThresholds(), 0)


def test_fit_router_fits_a_collection_without_an_adapter_on_its_prompt_and_rag_scores() -> None:
    def plain(dense: float, best: str) -> RouterRow:
        scores = {"prompt": 0.5, "rag": 0.5}
        scores[best] = 1.0
        return RouterRow(row(dense, best).features, NONE, scores)

    rows = [plain(0.84, "prompt"), plain(0.86, "prompt"), plain(0.90, "rag"), plain(0.95, "rag")]
    fit = fit_router(rows)
    assert fit.thresholds.dense_min == 0.9
    assert (fit.agreement, fit.combined, fit.n_rows) == (1.0, 1.0, 4)
    # with an active adapter the tuned modes are pickable too, so rows without them are not used
    tuned_missing = [RouterRow(r.features, V3, r.scores) for r in rows]
    assert fit_router(tuned_missing).n_rows == 0


def zrow(dense: float, best: str, lang: str) -> RouterRow:
    r = row(dense, best)
    return RouterRow(replace(r.features, lang=lang), NONE, r.scores)


def test_fit_router_fits_each_language_on_its_own_rows() -> None:
    rows = [
        zrow(0.80, "prompt", "en"),
        zrow(0.83, "rag", "en"),
        zrow(0.85, "rag", "en"),
        zrow(0.88, "prompt", "zh"),
        zrow(0.90, "prompt", "zh"),
        zrow(0.91, "rag", "zh"),
        zrow(0.95, "rag", "zh"),
    ]
    fit = fit_router(rows)
    assert fit.thresholds == replace(RouterThresholds(), dense_min=0.82, dense_min_zh=0.91)
    assert (fit.agreement, fit.n_rows) == (1.0, 7)


def test_fit_router_keeps_the_routed_score_near_the_best_fixed_mode() -> None:
    # Identical evidence on every row: three rows where prompt-only is a little better and one
    # where tuned + RAG is much better. Agreement alone says "prompt" (3 of 4 rows) at a mean
    # score of (3 * 0.6 + 0) / 4 = 0.45, below always answering tuned + RAG: (3 * 0.5 + 1) / 4.
    small = {"prompt": 0.6, "rag": 0.5, "tuned": 0.5, "tuned_rag": 0.5}
    big = {"prompt": 0.0, "rag": 0.0, "tuned": 0.0, "tuned_rag": 1.0}
    f = row(0.5, "prompt", V3).features
    rows = [RouterRow(f, V3, small) for _ in range(3)] + [RouterRow(f, V3, big)]
    agreeing = fit_thresholds(rows, score_weight=1.0)
    assert (agreeing.agreement, agreeing.combined) == (0.75, pytest.approx(0.45))
    fit = fit_router(rows)
    assert (fit.agreement, fit.combined) == (0.25, 0.625)  # the best fixed mode's score, kept
    assert decide(rows[0].features, V3, fit.thresholds).mode == Mode.TUNED_RAG


def test_a_mode_tied_for_the_best_score_agrees() -> None:
    """Rows where tuned + RAG ties RAG (or every mode ties) count as agreeing when the router
    picks any tied mode; ``hindsight_best`` still names the cheapest one."""
    f = row(0.95, "rag", V3).features  # covered: the default thresholds route to tuned + RAG
    tie = RouterRow(f, V3, {"prompt": 0.5, "rag": 1.0, "tuned": 0.5, "tuned_rag": 1.0})
    flat = RouterRow(f, V3, dict.fromkeys(MODES, 0.5))
    lost = RouterRow(f, V3, {"prompt": 0.5, "rag": 1.0, "tuned": 0.5, "tuned_rag": 0.75})
    assert best_modes(tie.scores) == {Mode.RAG, Mode.TUNED_RAG}
    assert best_modes(flat.scores) == set(ALL_MODES)
    assert hindsight_best(tie.scores) == Mode.RAG
    assert score_thresholds([tie, flat, lost], RouterThresholds()) == (pytest.approx(2 / 3), 0.75)


def test_fit_router_is_never_beaten_by_other_bars() -> None:
    """Brute force as the oracle: random bars and flags never beat the fitted thresholds on the
    fit's objective, agreement plus mean routed score."""
    import random

    rng = random.Random(7)
    modes = ("prompt", "rag", "tuned", "tuned_rag")
    rows = []
    for _ in range(40):
        f = RouteFeatures(
            dense_top=round(rng.uniform(0.7, 0.95), 3),
            bm25_top=round(rng.uniform(0, 30), 1),
            margin=0.0,
            top_path="a.md",
            lang=rng.choice(["en", "zh"]),
            same_lang=rng.random() < 0.8,
            n_hits=5,
        )
        rows.append(RouterRow(f, V3, {m: rng.choice([0.0, 0.5, 1.0]) for m in modes}))
    base = RouterThresholds(margin_min=1e9)
    fit = fit_thresholds(rows, start=base, score_weight=1.0)
    for _ in range(300):
        other = replace(
            base,
            dense_min=rng.uniform(0.7, 0.96),
            dense_min_zh=rng.uniform(0.7, 0.96),
            bm25_min=rng.uniform(0, 31),
            bm25_min_zh=rng.uniform(0, 31),
            adapter_with_rag=rng.random() < 0.5,
            adapter_without_rag=rng.random() < 0.5,
        )
        agreement, combined = score_thresholds(rows, other)
        assert agreement + combined <= fit.agreement + fit.combined + 1e-9
