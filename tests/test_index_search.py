"""BM25 tokenisation and scoring, the FAISS store against a brute-force oracle, and RRF fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.types import Chunk
from index.bm25 import BM25Index, tokenize, top_k
from index.hybrid import FusionSettings, HybridRetriever
from index.vector_store import AnnReport, VectorStore
from tests.fakes_index import FakeEmbedder


def test_tokenize_english_and_chinese() -> None:
    assert tokenize("The Policies on travel expenses, 2024 edition") == [
        "policy",
        "travel",
        "expense",
        "2024",
        "edition",
    ]
    assert tokenize("出差费用需要报销") == [
        "出差",
        "费用",
        "需要",
        "报销",
        "出",
        "差",
        "费",
        "用",
        "需",
        "要",
        "报",
        "销",
    ]


def test_bm25_scores_match_bm25s_and_top_k_orders() -> None:
    docs = ["annual leave days", "travel expense days", "出差费用报销", "disk alert"]
    index = BM25Index.build([tokenize(d) for d in docs])
    scores = index.scores("leave days")
    expected = index._model.get_scores(tokenize("leave days"))
    assert np.allclose(scores, expected)
    rows, values = index.top("leave days", 3)
    assert rows.tolist() == [0, 1]  # doc 2 and 3 score 0 and are left out
    assert values[0] > values[1] > 0
    assert index.scores("nothing matches").tolist() == [0.0, 0.0, 0.0, 0.0]


def test_top_k_breaks_ties_by_row() -> None:
    rows, values = top_k(np.array([0.0, 2.0, 1.0, 2.0, 3.0], dtype=np.float32), 3)
    assert rows.tolist() == [4, 1, 3]
    assert values.tolist() == [3.0, 2.0, 2.0]


def _random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_store_matches_brute_force(tmp_path: Path) -> None:
    vecs = _random_unit(300, 16)
    store = VectorStore.build(vecs, ann_threshold=1000)
    assert store.report.kind == "flat"
    q = _random_unit(5, 16, seed=1)
    scores, rows = store.search(q, 7)
    truth = np.argsort(-(q @ vecs.T), axis=1)[:, :7]
    assert rows.tolist() == truth.tolist()
    assert np.allclose(scores, np.take_along_axis(q @ vecs.T, truth, axis=1), atol=1e-5)
    np.save(tmp_path / "vectors.npy", vecs)
    again = VectorStore.load(tmp_path, store.report)
    assert again.search(q, 7)[1].tolist() == rows.tolist()
    assert np.allclose(again.score_rows(q[0], np.array([3, 9])), vecs[[3, 9]] @ q[0], atol=1e-5)


def test_hnsw_above_threshold_reaches_recall_target(tmp_path: Path) -> None:
    vecs = _random_unit(3000, 32)
    store = VectorStore.build(vecs, ann_threshold=1000)
    assert store.report.kind == "hnsw"
    assert store.report.recall_at_10 >= 0.95
    assert store.report.ef_search in (64, 128, 256, 512, 1024)
    store.save(tmp_path)
    again = VectorStore.load(tmp_path, AnnReport(**store.report.to_dict()))
    q = _random_unit(3, 32, seed=2)
    assert again.search(q, 5)[1].tolist() == store.search(q, 5)[1].tolist()


def _chunks(texts: list[str]) -> list[Chunk]:
    return [Chunk(f"c{i}", f"doc{i}.md", "", "", t, 0, len(t)) for i, t in enumerate(texts)]


class _FixedStore:
    """A store whose dense ranking is given: rows in ``order`` with scores 0.9, 0.8, ..."""

    def __init__(self, order: list[int], n: int) -> None:
        self.order = order
        self.n = n

    def search(self, _q: np.ndarray, k: int, **_ignored: object) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[:k]
        return np.array([[0.9 - 0.1 * i for i in range(len(rows))]], np.float32), np.array([rows])

    def score_rows(self, _q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.array([0.1 for _ in rows], np.float32)


def test_rrf_fusion_worked_example() -> None:
    texts = ["alpha beta", "beta gamma", "gamma delta", "delta epsilon"]
    bm25 = BM25Index.build([tokenize(t) for t in texts])
    # Dense ranks rows 2, 0, 1; BM25 for "gamma" ranks rows 1 and 2 (equal scores, tie by row).
    retriever = HybridRetriever(
        chunks=_chunks(texts),
        vectors=_FixedStore([2, 0, 1], 4),
        bm25=bm25,
        embedder=FakeEmbedder(),
        fusion=FusionSettings(rrf_k=60, candidates=3),
    )
    hits = retriever.search("gamma", k=3)
    # row 2: 1/61 + 1/62; row 1: 1/63 + 1/61; row 0: 1/62 only.
    assert [h.chunk.chunk_id for h in hits] == ["c2", "c1", "c0"]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert hits[1].score == pytest.approx(1 / 63 + 1 / 61)
    assert hits[2].score == pytest.approx(1 / 62)
    assert [(h.dense_rank, h.bm25_rank) for h in hits] == [(1, 2), (3, 1), (2, None)]
    assert [h.dense_score for h in hits] == pytest.approx([0.9, 0.7, 0.8])
    assert hits[2].bm25_score == 0.0 and hits[0].bm25_score > 0


def test_dense_and_bm25_only_searches() -> None:
    texts = ["alpha beta", "beta gamma", "gamma delta", "delta epsilon"]
    bm25 = BM25Index.build([tokenize(t) for t in texts])
    retriever = HybridRetriever(
        chunks=_chunks(texts), vectors=_FixedStore([3, 1], 4), bm25=bm25, embedder=FakeEmbedder()
    )
    dense = retriever.search_many(["epsilon"], k=2, method="dense")[0]
    assert [(h.chunk.chunk_id, h.rank, h.dense_rank, h.bm25_rank) for h in dense] == [
        ("c3", 1, 1, None),
        ("c1", 2, 2, None),
    ]
    lexical = retriever.search_many(["epsilon"], k=2, method="bm25")[0]
    assert [(h.chunk.chunk_id, h.rank, h.bm25_rank) for h in lexical] == [("c3", 1, 1)]
    assert lexical[0].dense_score is None


def test_bm25_match_reports_query_term_coverage() -> None:
    docs = ["annual leave days", "travel expense days", "leave"]
    index = BM25Index.build([tokenize(d) for d in docs])
    # distinct query terms: leave, day, unknownword -> doc 0 has 2 of 3, doc 1 has 1, doc 2 has 1
    _, coverage = index.match("leave days unknownword")
    assert coverage.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])


def test_english_chunks_count_only_latin_terms_of_a_chinese_question() -> None:
    docs = [
        "Error E-417 on the LT-350 means the humidity sensor is not responding.",
        "LT-350 屏幕显示 E-417 时请晾干传感器",
        "年假 规定",
    ]
    index = BM25Index.build([tokenize(d) for d in docs])
    latin = np.array([True, False, False])
    question = "LT-350 屏幕显示 E-417，应该怎么处理？"
    _, plain = index.match(question)
    _, pooled = index.match(question, latin)
    assert pooled[0] == pytest.approx(1.0)  # lt, 350, e, 417 all present in the English chunk
    assert plain[0] < 0.3  # the Chinese words would otherwise count against it
    assert pooled[1] == pytest.approx(plain[1])  # Chinese chunks keep the whole question's share
    # a single Latin term ("2") is too weak a sign: the share stays the plain one
    _, one = index.match("会员回访打了 2 分", latin)
    _, one_plain = index.match("会员回访打了 2 分")
    assert one.tolist() == pytest.approx(one_plain.tolist())


def test_partial_bm25_matches_get_less_weight() -> None:
    texts = ["alpha beta", "beta gamma", "gamma delta", "delta epsilon"]
    bm25 = BM25Index.build([tokenize(t) for t in texts])
    retriever = HybridRetriever(
        chunks=_chunks(texts),
        vectors=_FixedStore([2, 0, 1], 4),
        bm25=bm25,
        embedder=FakeEmbedder(),
        fusion=FusionSettings(rrf_k=60, candidates=3, coverage_power=2.0),
    )
    # "omega" is in no chunk: rows 1 and 2 cover half the query, so BM25 votes with (1/2)^2.
    hits = retriever.search("gamma omega", k=3)
    assert [h.chunk.chunk_id for h in hits] == ["c2", "c1", "c0"]
    assert [h.score for h in hits] == pytest.approx([1 / 61 + 0.25 / 62, 1 / 63 + 0.25 / 61, 1 / 62])


def _store_and_retriever(
    texts: list[str], paths: list[str], langs: list[str], **fusion: object
) -> HybridRetriever:
    emb = FakeEmbedder()
    chunks = [
        Chunk(f"c{i}", p, "", "", t, 0, len(t), lang=lang)
        for i, (t, p, lang) in enumerate(zip(texts, paths, langs, strict=True))
    ]
    vecs = emb.embed_passages(texts)
    return HybridRetriever(
        chunks=chunks,
        vectors=VectorStore.build(vecs, ann_threshold=1000),
        bm25=BM25Index.build([tokenize(t) for t in texts]),
        embedder=emb,
        fusion=FusionSettings(**fusion),  # type: ignore[arg-type]
    )


def test_each_language_is_its_own_pool() -> None:
    texts = ["员工年假十五天", "员工病假八天", "年假申请流程", "Annual leave is fifteen days"]
    r = _store_and_retriever(texts, ["a.md", "b.md", "c.md", "d.md"], ["zh", "zh", "zh", "en"])
    hits = r.search("年假", k=4)
    english = next(h for h in hits if h.chunk.path == "d.md")
    # The only English chunk tops the English pool's dense list whatever its raw score.
    assert english.dense_rank == 1
    assert english.score == pytest.approx(1 / (10 + 1))  # rrf_k 10, dense only (no BM25 match)
    flat = _store_and_retriever(
        texts, ["a.md", "b.md", "c.md", "d.md"], ["zh", "zh", "zh", "en"], language_pools=False
    ).search("年假", k=4)
    assert next(h for h in flat if h.chunk.path == "d.md").dense_rank == 4


def test_a_few_stray_chunks_of_another_language_get_no_pool_of_their_own() -> None:
    """Seen on Debian Reference in Chinese: four chunks labelled English among a thousand Chinese
    ones formed an "English" pool whose best two took places 4 and 5 of every Chinese search."""
    topics = ["年假", "病假", "出差", "报销", "加班", "采购", "培训", "考勤", "招聘", "合同"]
    texts = [f"{t}规定第{i}条：员工{t}需要提前申请并由部门负责人审批" for t in topics for i in range(4)]
    texts.append("password requisite pam_cracklib.so retry=3 minlen=8")
    paths = [f"doc{i}.md" for i in range(len(texts))]
    langs = ["zh"] * (len(texts) - 1) + ["en"]
    stray = paths[-1]
    pooled = _store_and_retriever(texts, paths, langs, min_pool_share=0.0).search("年假怎么申请", k=5)
    assert stray in [h.chunk.path for h in pooled]  # a pool of one: its only chunk ranks first in it
    hits = _store_and_retriever(texts, paths, langs).search("年假怎么申请", k=5)
    assert stray not in [h.chunk.path for h in hits]
    assert all("年假" in h.chunk.text for h in hits[:4])


def test_top_k_keeps_one_chunk_per_document_then_tops_up() -> None:
    texts = ["leave days one", "leave days two", "leave days three", "travel days"]
    r = _store_and_retriever(texts, ["a.md", "a.md", "a.md", "b.md"], ["en"] * 4)
    hits = r.search_many(["leave days"], k=2, method="bm25")[0]
    assert [h.chunk.path for h in hits] == ["a.md", "b.md"]
    hits = r.search_many(["leave days"], k=3, method="bm25")[0]
    # only two documents: the third place goes to the best remaining chunk, in score order
    assert sorted(h.chunk.path for h in hits) == ["a.md", "a.md", "b.md"]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    uncapped = _store_and_retriever(texts, ["a.md", "a.md", "a.md", "b.md"], ["en"] * 4, max_per_doc=0)
    assert [h.chunk.path for h in uncapped.search_many(["leave days"], k=3, method="bm25")[0]] == [
        "a.md",
        "a.md",
        "a.md",
    ]


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_foreign_pool_is_ranked_without_the_question_language_direction() -> None:
    # Axis 0 stands for "written in Chinese", axes 1 and 2 for two topics. The Chinese question is
    # about topic 2; of the English chunks, "mixed" merely shares some Chinese-ness, "relevant"
    # is about topic 2.
    vecs = np.vstack(
        [
            _unit(1.0, 0.3, 0.0),  # zh chunk, topic 1
            _unit(1.0, 0.0, 0.3),  # zh chunk, topic 2
            _unit(0.6, 0.3, 0.3),  # en chunk "mixed"
            _unit(0.0, 0.1, 1.0),  # en chunk "relevant"
        ]
    )
    texts = ["甲", "乙", "alpha", "beta"]
    chunks = [
        Chunk(f"c{i}", f"d{i}.md", "", "", t, 0, len(t), lang=lang)
        for i, (t, lang) in enumerate(zip(texts, ["zh", "zh", "en", "en"], strict=True))
    ]
    q = _unit(1.0, 0.0, 0.5)
    plain_cos = vecs @ q
    assert plain_cos[2] > plain_cos[3]  # without centering the mixed chunk looks closer

    def en_pool_top(shift: float) -> list:
        retriever = HybridRetriever(
            chunks=chunks,
            vectors=VectorStore.build(vecs, ann_threshold=1000),
            bm25=BM25Index.build([tokenize(t) for t in texts]),
            embedder=FakeEmbedder(),
            fusion=FusionSettings(cross_lingual_centering=shift),
        )
        hits = retriever.search_with("丙丁怎么算", q, k=4, method="hybrid")
        return sorted((h for h in hits if h.chunk.lang == "en"), key=lambda h: h.dense_rank)

    centered = en_pool_top(1.0)
    assert [h.chunk.chunk_id for h in centered] == ["c3", "c2"]
    # reported dense scores stay the plain cosines of the question's own vector
    assert [h.dense_score for h in centered] == pytest.approx([plain_cos[3], plain_cos[2]])
    assert [h.chunk.chunk_id for h in en_pool_top(0.0)] == ["c2", "c3"]
