"""SentenceTransformerEmbedder on the tiny locally-built model: shapes, normalisation, prefixes,
token counts, progress, errors; and the embedder wiring (resolution, one instance per folder)."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from app.settings import ModelSettings, Settings
from domain.errors import ModelMissingError
from index.embedder import MINILM_NAME, SentenceTransformerEmbedder, locate_minilm


@pytest.fixture(scope="module")
def embedder(tiny_st_dir):
    import torch

    torch.set_num_threads(1)
    return SentenceTransformerEmbedder(tiny_st_dir)


@pytest.fixture(scope="module")
def reference_model(tiny_st_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_st_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def no_prompt_dir(tiny_st_dir, tmp_path_factory):
    """The tiny model with its prompts removed from the sentence-transformers config."""
    folder = tmp_path_factory.mktemp("no_prompts") / "tiny-plain"
    shutil.copytree(tiny_st_dir, folder)
    cfg_path = folder / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["prompts"] = {}
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_name_dim_and_prefixes_come_from_the_folder(embedder) -> None:
    assert embedder.name == "tiny-st"
    assert embedder.dim == 32
    assert embedder.query_prefix == "query: "
    assert embedder.passage_prefix == "passage: "


def test_vectors_are_float32_unit_rows(embedder) -> None:
    vecs = embedder.embed_passages(["hello world", "员工每年有十五天年假", "disk alert"])
    assert vecs.shape == (3, 32)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), np.ones(3), atol=1e-6)


def test_queries_and_passages_get_their_prefix(embedder, reference_model) -> None:
    expected_q = reference_model.encode(["query: x"], convert_to_numpy=True)
    expected_p = reference_model.encode(["passage: x"], convert_to_numpy=True)
    np.testing.assert_allclose(embedder.embed_queries(["x"]), expected_q, atol=1e-6)
    np.testing.assert_allclose(embedder.embed_passages(["x"]), expected_p, atol=1e-6)
    assert not np.allclose(expected_q, expected_p, atol=1e-3)


def test_folder_without_prompts_gets_no_prefix(no_prompt_dir, reference_model) -> None:
    plain = SentenceTransformerEmbedder(no_prompt_dir)
    assert (plain.query_prefix, plain.passage_prefix) == ("", "")
    expected = reference_model.encode(["x"], convert_to_numpy=True)
    np.testing.assert_allclose(plain.embed_queries(["x"]), expected, atol=1e-6)
    np.testing.assert_allclose(plain.embed_passages(["x"]), expected, atol=1e-6)


def test_batches_keep_input_order(embedder) -> None:
    texts = ["hello", "the server sends an alert when the disk is full", "你好", "annual leave days"]
    together = embedder.embed_passages(texts, batch_size=2)
    one_by_one = np.vstack([embedder.embed_passages([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_progress_is_reported_after_every_batch(embedder) -> None:
    calls: list[tuple[int, int, str]] = []
    embedder.embed_passages(
        ["a", "b", "c", "d", "e"],
        batch_size=2,
        on_progress=lambda done, total, message="": calls.append((done, total, message)),
    )
    assert calls == [(2, 5, "embedding"), (4, 5, "embedding"), (5, 5, "embedding")]


def test_empty_input_gives_an_empty_matrix(embedder) -> None:
    assert embedder.embed_passages([]).shape == (0, 32)
    assert embedder.embed_queries([]).shape == (0, 32)


def test_count_tokens_counts_the_text_alone_without_truncation(embedder) -> None:
    # "hello world 你好世界" -> hello, world, 你, 好, 世, 界 (Chinese characters are split one by one)
    assert embedder.count_tokens("hello world 你好世界") == 6
    assert embedder.count_tokens("") == 0
    # 600 words is beyond the model's 128-token window; counting must not truncate.
    assert embedder.count_tokens("hello " * 600) == 600


def test_concurrent_callers_get_the_serial_results(embedder) -> None:
    texts = ["hello world", "你好世界", "disk alert", "annual leave"]
    expected = embedder.embed_queries(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed_queries(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_bf16_gives_float32_unit_rows_close_to_fp32(tiny_st_dir, embedder) -> None:
    import torch

    half = SentenceTransformerEmbedder(tiny_st_dir, precision="bf16")
    assert half.precision == "bf16"
    assert next(half._model.parameters()).dtype == torch.bfloat16
    texts = ["hello world", "员工每年有十五天年假", "disk alert on the LT-350"]
    low, full = half.embed_passages(texts), embedder.embed_passages(texts)
    assert low.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), np.ones(3), atol=1e-5)
    cos = (low * full).sum(axis=1)
    assert cos.min() > 0.99
    assert not np.array_equal(low, full)


def test_unknown_precision_is_refused(tiny_st_dir) -> None:
    with pytest.raises(ValueError, match="fp32, bf16"):
        SentenceTransformerEmbedder(tiny_st_dir, precision="int8")


def test_wiring_applies_the_precision_setting(tmp_path, tiny_st_dir, monkeypatch) -> None:
    import index.embedder
    from app.settings import IndexSettings
    from app.wiring.embedder import build_embedder, clear_embedder_cache

    clear_embedder_cache()
    made = {
        p: build_embedder(
            Settings(
                workspace=tmp_path,
                models=ModelSettings(embedder=str(tiny_st_dir)),
                index=IndexSettings(embed_precision=p),
            )
        )
        for p in ("fp32", "bf16")
    }
    assert {p: e.precision for p, e in made.items()} == {"fp32": "fp32", "bf16": "bf16"}
    for native, expected in ((False, "fp32"), (True, "bf16")):
        clear_embedder_cache()
        monkeypatch.setattr(index.embedder, "fast_bf16_cpu", lambda native=native: native)
        auto = build_embedder(Settings(workspace=tmp_path, models=ModelSettings(embedder=str(tiny_st_dir))))
        assert auto.precision == expected
    clear_embedder_cache()


def test_missing_folder_says_to_run_setup(tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="hybrid setup"):
        SentenceTransformerEmbedder(tmp_path / "nowhere")


def test_broken_folder_says_to_run_setup(tmp_path) -> None:
    (tmp_path / "modules.json").write_text("not json", encoding="utf-8")
    with pytest.raises(ModelMissingError, match="hybrid setup"):
        SentenceTransformerEmbedder(tmp_path)


def test_locate_minilm_finds_the_packaged_folder() -> None:
    folder = locate_minilm()
    assert folder.name == "model"
    assert (folder / "modules.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_wiring_resolves_each_choice(tmp_path, tiny_st_dir) -> None:
    from app.wiring.embedder import resolve_embedder

    e5 = Settings(workspace=tmp_path, models=ModelSettings(embedder="e5"))
    assert resolve_embedder(e5) == (
        tmp_path.resolve() / "models" / "multilingual-e5-small-st",
        "multilingual-e5-small-st",
    )
    minilm = Settings(workspace=tmp_path, models=ModelSettings(embedder="minilm"))
    assert resolve_embedder(minilm) == (locate_minilm(), MINILM_NAME)
    own = Settings(workspace=tmp_path, models=ModelSettings(embedder=str(tiny_st_dir)))
    assert resolve_embedder(own) == (tiny_st_dir.resolve(), "tiny-st")


def test_wiring_builds_one_embedder_per_folder_across_threads(tmp_path, tiny_st_dir) -> None:
    from app.wiring.embedder import build_embedder, clear_embedder_cache

    clear_embedder_cache()
    settings = Settings(workspace=tmp_path, models=ModelSettings(embedder=str(tiny_st_dir)))
    built: list[object] = []
    threads = [threading.Thread(target=lambda: built.append(build_embedder(settings))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 4
    assert all(b is built[0] for b in built)
    assert isinstance(built[0], SentenceTransformerEmbedder)
    clear_embedder_cache()


def test_wiring_reports_a_missing_e5_folder(tmp_path) -> None:
    from app.wiring.embedder import build_embedder

    settings = Settings(workspace=tmp_path, models=ModelSettings(embedder="e5"))
    with pytest.raises(ModelMissingError, match="hybrid setup"):
        build_embedder(settings)
