"""Searching across languages: each language pool is ranked against the question translated into
it, a single-language index against the question in its language, and a translation the model got
wrong is not used. Fakes only (a hashing embedder, a scripted translator)."""

from __future__ import annotations

import numpy as np
import pytest

from domain.crosslingual import TranslatingRetriever, clean_translation, translation_messages
from domain.serialize import answer_from_json, answer_to_json
from domain.types import Chunk
from index.bm25 import BM25Index, tokenize
from index.hybrid import FusionSettings, HybridRetriever
from index.vector_store import VectorStore
from tests.fakes_index import FakeEmbedder
from tests.models_kit import set_up_profile

EN = [
    ("proxy.md", "Set the APT proxy with Acquire::http::Proxy in /etc/apt/apt.conf.d/"),
    ("locale.md", "Run dpkg-reconfigure locales to choose the system locale."),
    ("users.md", "Add a user to the sudo group to grant administrator rights."),
    ("disk.md", "Check free disk space with df -h before upgrading."),
]
ZH = [
    ("网络.md", "网络接口的配置文件在 /etc/network/interfaces 中。"),
    ("时区.md", "使用 timedatectl 设置系统时区。"),
    ("打印.md", "打印机通过 CUPS 网页界面添加。"),
    ("备份.md", "定期备份用户主目录到外部磁盘。"),
]
QUESTION = "怎样给软件包管理器设置网络代理？"  # shares no word with proxy.md
IN_ENGLISH = "How do I set the APT proxy?"


def _retriever(docs: list[tuple[str, str]], **fusion: object) -> HybridRetriever:
    emb = FakeEmbedder()
    chunks = [
        Chunk(
            f"c{i}",
            path,
            "",
            "",
            text,
            0,
            len(text),
            lang="zh" if "/" not in path and not path.isascii() else "en",
        )
        for i, (path, text) in enumerate(docs)
    ]
    return HybridRetriever(
        chunks=chunks,
        vectors=VectorStore.build(emb.embed_passages([c.text for c in chunks]), ann_threshold=1000),
        bm25=BM25Index.build([tokenize(c.text) for c in chunks]),
        embedder=emb,
        fusion=FusionSettings(**fusion),  # type: ignore[arg-type]
    )


def test_an_english_index_is_searched_with_the_question_in_english() -> None:
    r = _retriever(EN)
    assert r.search_languages() == ["en"]
    before = [h.chunk.path for h in r.search(QUESTION, k=4)]
    after = r.search(QUESTION, k=4, translations={"en": IN_ENGLISH})
    assert before[0] != "proxy.md"
    assert after[0].chunk.path == "proxy.md"
    # the hit's scores are those of the text it was found with
    assert after[0].bm25_score == pytest.approx(float(r.bm25.match(IN_ENGLISH)[0][0]))
    assert after[0].dense_score == pytest.approx(
        float(r.vectors.score_rows(r.embed_query(IN_ENGLISH), np.array([0]))[0]), abs=1e-5
    )
    # a translation into a language the index does not hold changes nothing
    assert [h.chunk.path for h in r.search(QUESTION, k=4, translations={"zh": "无关"})] == before


def test_a_bilingual_index_translates_only_the_other_languages_pool() -> None:
    r = _retriever(EN + ZH)
    assert r.search_languages() == ["en", "zh"]
    plain = r.search(QUESTION, k=8)
    translated = r.search(QUESTION, k=8, translations={"en": IN_ENGLISH})
    english = [h for h in translated if h.chunk.lang == "en"]
    assert english[0].chunk.path == "proxy.md" and english[0].dense_rank == 1 and english[0].bm25_rank == 1
    # the Chinese pool keeps the question as asked: same ranks and scores there
    zh_plain = {
        h.chunk.chunk_id: (h.dense_rank, h.bm25_rank, h.bm25_score) for h in plain if h.chunk.lang == "zh"
    }
    zh_after = {
        h.chunk.chunk_id: (h.dense_rank, h.bm25_rank, h.bm25_score)
        for h in translated
        if h.chunk.lang == "zh"
    }
    assert zh_after == zh_plain
    assert translated[0].chunk.path == "proxy.md"


class _Inner:
    """Records what it was asked; searches nothing."""

    def __init__(self, languages: list[str]) -> None:
        self.languages = languages
        self.asked: list[tuple[str, dict | None]] = []

    def search(self, query: str, *, k: int = 5, translations: dict | None = None) -> list:
        assert k > 0
        self.asked.append((query, translations))
        return []

    def search_languages(self) -> list[str]:
        return self.languages


def test_the_question_is_translated_once_into_each_other_language() -> None:
    calls: list[tuple[str, str]] = []

    def translate(question: str, lang: str) -> str:
        calls.append((question, lang))
        return IN_ENGLISH + "\n(extra words after the first line are dropped)"

    inner = _Inner(["en", "zh"])
    r = TranslatingRetriever(inner, translate)
    r.search(QUESTION, k=3)
    r.search(QUESTION, k=3)
    assert calls == [(QUESTION, "en")]  # not into its own language; cached the second time
    assert inner.asked == [(QUESTION, {"en": IN_ENGLISH})] * 2
    r.search("How do I set the APT proxy?", k=3)  # an English question: translated into Chinese
    assert calls[-1] == ("How do I set the APT proxy?", "zh")


def test_an_unusable_translation_is_not_used() -> None:
    inner = _Inner(["en"])
    long_answer = "The proxy is set in apt.conf. " * 20
    for reply in ("```json", long_answer, "代理怎么设置"):  # a code block, an answer, not English
        TranslatingRetriever(inner, lambda _q, _lang, reply=reply: reply).search(QUESTION, k=3)
    assert inner.asked == [(QUESTION, None)] * 3


def test_a_failed_translation_searches_with_the_question_alone_and_is_tried_again() -> None:
    inner = _Inner(["en"])
    calls = []

    def broken(question: str, lang: str) -> str:
        calls.append((question, lang))
        raise RuntimeError("llama_decode returned -3")

    r = TranslatingRetriever(inner, broken)
    r.search(QUESTION, k=3)
    assert r.search_translated(QUESTION, k=3) == ([], {})
    assert inner.asked == [(QUESTION, None)] * 2 and len(calls) == 2  # one try per search


def test_clean_translation_takes_the_first_line_without_label_or_quotes() -> None:
    assert clean_translation("Translation: “How do I set the APT proxy?”", QUESTION, "en") == IN_ENGLISH
    assert clean_translation("\n\n译文：如何设置代理？\n", "How do I set a proxy?", "zh") == "如何设置代理？"
    assert clean_translation("", QUESTION, "en") is None
    assert clean_translation(QUESTION, QUESTION, "zh") is None


def test_the_translation_request_names_the_language_and_keeps_codes() -> None:
    system, user = translation_messages("LT-350 显示 E-417？", "en")
    assert "English" in system["content"] and "codes" in system["content"]
    assert user == {"role": "user", "content": "LT-350 显示 E-417？"}


def test_answers_keep_what_the_question_was_searched_as() -> None:
    from domain.types import Answer, Mode

    a = Answer(QUESTION, Mode.RAG, "text", searched_as={"en": IN_ENGLISH})
    assert answer_from_json(answer_to_json(a)).searched_as == {"en": IN_ENGLISH}
    old = answer_to_json(a)
    del old["searched_as"]  # answers saved before translations read as before
    assert answer_from_json(old).searched_as == {}


def test_a_profile_that_translates_well_translates_when_set_up(cli_env, tiny_models, monkeypatch) -> None:  # noqa: ARG001
    """The 0.5B's translations made search worse on the sample's tuning rows and the 1.5B's better
    (corpus/measured/crosslingual), so "auto" translates only with a profile marked as translating."""
    from adapters.base_model import PROFILES
    from app.settings import load_settings
    from app.wiring import generation

    class Scripted:
        has_adapter = False
        name = "scripted"

        def generate(self, messages, *, adapter, max_new_tokens=256, temperature=0.0, prefill=""):  # noqa: ANN001, ARG002
            assert adapter is False and "English" in messages[0]["content"]
            yield "How do I set "
            yield "the APT proxy?\nMore"
            raise AssertionError("read past the first line")

    monkeypatch.delenv("HYBRID_MODELS__BASE_GGUF", raising=False)
    monkeypatch.setattr(generation, "build_generator", lambda _settings: Scripted())
    models = load_settings().ws.models

    def set_up(key: str) -> None:
        set_up_profile(models, key, tiny_models["gguf"])

    set_up("qwen")
    assert generation.build_translator(load_settings()) is None  # auto: no translating profile set up
    hint = generation.translate_hint(load_settings())
    assert hint is not None and PROFILES["qwen-1.5b"].install_hint in hint
    monkeypatch.setenv("HYBRID_INDEX__TRANSLATE_QUESTIONS", "on")  # on: the answering model translates
    translate = generation.build_translator(load_settings())
    assert translate is not None and translate(QUESTION, "en") == "How do I set the APT proxy?\nMore"
    set_up("qwen-1.5b")
    monkeypatch.setenv("HYBRID_INDEX__TRANSLATE_QUESTIONS", "auto")
    translate = generation.build_translator(load_settings())
    assert translate is not None and isinstance(translate(QUESTION, "en"), str)  # the tiny model, untrained
    assert generation.translate_hint(load_settings()) is None
    monkeypatch.setenv("HYBRID_INDEX__TRANSLATE_QUESTIONS", "off")
    assert generation.build_translator(load_settings()) is None


def test_the_modes_report_scores_search_with_and_without_translation() -> None:
    """Seen in this session's held-out run: with translation on, the modes report had lost its
    retrieval section (the wrapper has no search_many)."""
    from types import SimpleNamespace

    from app.evaluation.modes import _retrieval_section

    rows = [{"id": "q1", "kind": "cross_lingual", "lang": "zh", "question": QUESTION, "source": "proxy.md"}]
    plain = _retriever(EN)
    wrapped = TranslatingRetriever(plain, lambda _q, _lang: IN_ENGLISH)
    section = _retrieval_section(SimpleNamespace(retriever=wrapped), rows, 1)
    assert section is not None and set(section) == {"dense", "bm25", "hybrid", "translated"}
    assert section["translated"]["mrr"] == 1.0 and section["hybrid"]["mrr"] < 1.0
    assert set(_retrieval_section(SimpleNamespace(retriever=plain), rows, 1)) == {"dense", "bm25", "hybrid"}
