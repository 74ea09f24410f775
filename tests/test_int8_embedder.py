"""The int8 embedder on the tiny locally-built encoder: export, parity with fp32, its refusal with
the measured cosine, the setup step, and int8 and float indexes refusing to mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.errors import IndexMismatchError
from index import store
from index.bm25 import TOKENIZER_VERSION
from index.embedder import SentenceTransformerEmbedder
from index.int8_embedder import INT8_MARKER, Int8Embedder, int8_ready
from index.int8_export import ParityError, export_int8, int8_parity, setup_int8
from index.splitter import SplitterSettings
from index.sync import sync_folder
from tests.fakes_index import FakeEmbedder

SPLIT = SplitterSettings(32, 0.15)
TEXTS = ["hello world", "员工每年有十五天年假", "the server sends an alert when the disk is full", "你好"]


@pytest.fixture(scope="module")
def fp32(tiny_st_dir):
    import torch

    torch.set_num_threads(1)
    return SentenceTransformerEmbedder(tiny_st_dir)


@pytest.fixture(scope="module")
def int8_dir(tiny_st_dir, tmp_path_factory):
    dest = tmp_path_factory.mktemp("int8") / "tiny-st-int8"
    export_int8(tiny_st_dir, dest, name="tiny-st")
    return dest


def test_the_int8_copy_embeds_like_fp32(int8_dir, fp32) -> None:
    assert int8_ready(int8_dir)
    emb = Int8Embedder(int8_dir, threads=1)
    assert (emb.name, emb.dim, emb.precision) == ("tiny-st", 32, "int8")
    assert (emb.query_prefix, emb.passage_prefix) == (fp32.query_prefix, fp32.passage_prefix)
    vecs = emb.embed_passages(TEXTS, batch_size=3)
    assert vecs.shape == (4, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), np.ones(4), atol=1e-5)
    cos_passages = np.sum(vecs * fp32.embed_passages(TEXTS), axis=1)
    cos_queries = np.sum(emb.embed_queries(TEXTS) * fp32.embed_queries(TEXTS), axis=1)
    assert cos_passages.min() > 0.95 and cos_queries.min() > 0.95
    # int8 arithmetic, not a copy of the fp32 vectors
    assert not np.allclose(vecs, fp32.embed_passages(TEXTS), atol=1e-6)
    # the same tokenizer, so chunks split identically at both precisions
    assert [emb.count_tokens(t) for t in TEXTS] == [fp32.count_tokens(t) for t in TEXTS]
    # activations are quantized per batch, so a row's batch-mates move it, but only in rounding
    alone = emb.embed_passages(TEXTS[:1])
    assert float(alone[0] @ vecs[0]) > 0.9999


def test_the_build_records_its_parity(int8_dir) -> None:
    import json

    record = json.loads((int8_dir / INT8_MARKER).read_text(encoding="utf-8"))
    assert record["parity"]["min_cos"] >= 0.98
    assert record["parity"]["n_vectors"] > 50
    assert record["pooling"] == "mean" and record["dim"] == 32


def test_a_parity_failure_is_one_line_with_the_measured_cosine(fp32) -> None:
    class Skewed:
        """fp32 vectors with every other coordinate negated: a cosine well below 1."""

        def embed_queries(self, texts):  # noqa: ANN001, ANN202
            v = fp32.embed_queries(texts).copy()
            v[:, ::2] *= -1
            return v

        def embed_passages(self, texts):  # noqa: ANN001, ANN202
            v = fp32.embed_passages(texts).copy()
            v[:, ::2] *= -1
            return v

    with pytest.raises(ParityError) as err:
        int8_parity(fp32, Skewed(), tuple(TEXTS))
    message = str(err.value)
    assert "\n" not in message
    measured = min(
        np.sum(fp32.embed_queries(TEXTS) * Skewed().embed_queries(TEXTS), axis=1).min(),
        np.sum(fp32.embed_passages(TEXTS) * Skewed().embed_passages(TEXTS), axis=1).min(),
    )
    assert f"lowest cosine {round(float(measured), 6):.6f}" in message


def test_a_refused_build_keeps_the_previous_copy(tiny_st_dir, int8_dir, tmp_path) -> None:
    import shutil

    dest = tmp_path / "tiny-st-int8"
    shutil.copytree(int8_dir, dest)
    before = (dest / INT8_MARKER).read_bytes()
    with pytest.raises(ParityError, match=r"lowest cosine 0\.\d{6} < 0\.999999"):
        export_int8(tiny_st_dir, dest, name="tiny-st", min_cos=0.999999)
    assert (dest / INT8_MARKER).read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))


def test_setup_builds_once_and_again_when_the_encoder_changes(tiny_st_dir, tmp_path) -> None:
    import shutil

    source = tmp_path / "enc"
    shutil.copytree(tiny_st_dir, source)
    dest = tmp_path / "enc-int8"
    first = setup_int8(source, dest, name="enc")
    assert first["status"] == "done" and first["parity_min_cos"] >= 0.98
    assert first["bytes"] == sum(f.stat().st_size for f in dest.iterdir())
    assert setup_int8(source, dest, name="enc")["status"] == "already done"
    weights = source / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # rewritten, as a reconversion would
    import os

    os.utime(weights, ns=(1, 1))
    assert setup_int8(source, dest, name="enc")["status"] == "done"


def test_a_missing_copy_says_how_to_build_it(tmp_path) -> None:
    from domain.errors import ModelMissingError

    with pytest.raises(ModelMissingError, match="hybrid setup --only embedder_int8"):
        Int8Embedder(tmp_path / "nothing")


def _open(idx: Path, precision: str = "fp32") -> store.LoadedIndex:
    return store.open_index(
        idx,
        embedder_name="fake-ngram",
        dim=64,
        splitter=SPLIT.identity(),
        tokenizer=TOKENIZER_VERSION,
        precision=precision,
    )


def _corpus(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "leave.md").write_text(
        "# Leave\n\nEmployees get fifteen days of annual leave.\n", encoding="utf-8"
    )
    (root / "disk.txt").write_text("The server sends an alert when the disk is full.\n", encoding="utf-8")
    return root


class _Int8Fake(FakeEmbedder):
    precision = "int8"


class _Bf16Fake(FakeEmbedder):
    precision = "bf16"


def test_int8_and_float_indexes_refuse_to_mix(tmp_path) -> None:
    docs = _corpus(tmp_path / "docs")
    idx = tmp_path / "idx"
    sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT)
    assert store.read_manifest(idx)["embedder"]["precision"] == "fp32"
    (docs / "more.md").write_text("# More\n\nA new page.\n", encoding="utf-8")
    with pytest.raises(IndexMismatchError, match="fp32 embeddings, settings say int8") as err:
        sync_folder(docs, idx, embedder=_Int8Fake(), splitter=SPLIT)
    assert "\n" not in str(err.value)
    with pytest.raises(IndexMismatchError, match="fp32 embeddings, settings say int8"):
        _open(idx, "int8")
    # bf16 encodes to fp32 vectors within rounding: the float family shares an index
    sync_folder(docs, idx, embedder=_Bf16Fake(), splitter=SPLIT)
    # a rebuild at int8 replaces every vector, and then float is refused
    from index.sync import SyncOptions

    sync_folder(docs, idx, embedder=_Int8Fake(), splitter=SPLIT, options=SyncOptions(rebuild=True))
    assert store.read_manifest(idx)["embedder"]["precision"] == "int8"
    with pytest.raises(IndexMismatchError, match="int8 embeddings, settings say fp32"):
        _open(idx)


def test_an_index_from_before_precisions_were_recorded_counts_as_fp32(tmp_path) -> None:
    import json

    docs = _corpus(tmp_path / "docs")
    idx = tmp_path / "idx"
    sync_folder(docs, idx, embedder=FakeEmbedder(), splitter=SPLIT)
    manifest_path = store.current_generation(idx) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["embedder"]["precision"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert _open(idx).chunks
    with pytest.raises(IndexMismatchError, match="fp32 embeddings"):
        _open(idx, "int8")


def test_the_cli_indexes_at_int8_and_refuses_to_add_float_vectors(
    cli_env, tiny_st_dir, monkeypatch, capsys
) -> None:
    from app.cli import main
    from app.wiring.embedder import clear_embedder_cache
    from app.wiring.index import clear_index_cache

    docs = _corpus(cli_env / "docs")
    monkeypatch.setenv("HYBRID_INDEX__EMBED_PRECISION", "int8")
    clear_embedder_cache()
    assert main(["setup", "--only", "embedder_int8"]) == 0
    assert main(["index", str(docs), "--collection", "notes"]) == 0
    manifest = store.read_manifest(cli_env / "ws" / "collections" / "notes" / "index")
    assert manifest is not None and manifest["embedder"]["precision"] == "int8"
    assert manifest["embedder"]["name"] == Path(tiny_st_dir).name
    (docs / "more.md").write_text("# More\n\nA new page about leave.\n", encoding="utf-8")
    monkeypatch.setenv("HYBRID_INDEX__EMBED_PRECISION", "fp32")
    clear_embedder_cache()
    clear_index_cache()
    capsys.readouterr()
    assert main(["index", str(docs), "--collection", "notes", "--vectors", "float"]) != 0
    assert "int8 embeddings, settings say fp32" in capsys.readouterr().err
    # by default a re-sync keeps the index's own kind, whatever the settings say
    assert main(["index", str(docs), "--collection", "notes", "--json", "-"]) == 0
    assert '"chunks_embedded": 1' in capsys.readouterr().out
    manifest = store.read_manifest(cli_env / "ws" / "collections" / "notes" / "index")
    assert manifest is not None and manifest["embedder"]["precision"] == "int8"
    # questions to that index are still embedded at int8, whatever the settings say
    from app.settings import load_settings
    from app.wiring.index import build_retriever, query_embedder

    settings = load_settings()
    assert query_embedder(settings, "notes").precision == "int8"
    assert build_retriever(settings, "notes").search("annual leave", k=1)[0].chunk.path == "leave.md"
    clear_embedder_cache()
    clear_index_cache()
