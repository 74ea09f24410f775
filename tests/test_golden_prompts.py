"""The export's golden prompts are the assistant's own: the same builder, the same retrieval, the
same passage budget counted by the base model's tokenizer."""

from __future__ import annotations

import pytest

from adapters.chat_pieces import hf_encoder
from app import cli
from domain.errors import ConfigError
from tests.fakes_answer import FakeGenerator

DOCS = {
    "leave.md": "# Leave\n\nAnnual leave is 25 days a year. Up to 5 unused days carry over into March. "
    "Requests go to your manager two weeks ahead.\n",
    "trips.md": "# Trips\n\nHotel costs are refunded in full with receipts. Taxi fares above 40 euros "
    "need a note from the traveller.\n",
    "kit.md": "# Equipment\n\nLaptops are replaced every four years. A broken screen is repaired by the "
    "help desk within three days.\n",
}


class TokenizerGenerator(FakeGenerator):
    """A fake generator that counts tokens with a real tokenizer, as the llama.cpp backend does."""

    def __init__(self, tok) -> None:
        super().__init__()
        self.encode = hf_encoder(tok)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text, False))  # as HfGenerator.count_tokens


@pytest.fixture()
def demo(cli_env, tiny_llama_dir, monkeypatch):
    docs = cli_env / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    monkeypatch.setenv("HYBRID_MODELS__BASE_HF", str(tiny_llama_dir))
    monkeypatch.setenv("HYBRID_GENERATION__CONTEXT_TOKENS", "64")  # the budget drops passages
    assert cli.main(["index", str(docs), "--collection", "demo"]) == 0
    from app.settings import load_settings
    from app.wiring.collections import with_collection

    return with_collection(load_settings(), "demo")


def test_golden_prompts_are_the_messages_the_assistant_answers_from(demo, tiny_llama_dir) -> None:
    from transformers import AutoTokenizer

    from app.wiring.answer import assistant_options
    from app.wiring.export import golden_messages
    from app.wiring.index import build_retriever
    from domain.pipeline import Assistant

    rows = [
        {"question": "How many days of annual leave are there?"},
        {"question": "Are hotel costs refunded?"},
    ]
    generator = TokenizerGenerator(AutoTokenizer.from_pretrained(str(tiny_llama_dir)))
    assistant = Assistant(
        retriever=build_retriever(demo, per_doc=demo.answer.passages_per_doc),
        generator=generator,
        options=assistant_options(demo),
    )
    for mode in ("tuned_rag", "tuned"):
        golden = golden_messages(demo, rows, mode)
        asked = []
        for row in rows:
            assistant.answer(row["question"], mode, use_memory=False)
            asked.append(generator.calls[-1]["messages"])
        assert [[dict(m) for m in p] for p in golden] == asked
    rag = golden_messages(demo, rows, "tuned_rag")
    assert "Annual leave is 25 days" in rag[0][-1]["content"]
    assert all("Hotel" not in m["content"] for m in golden_messages(demo, rows, "tuned")[1])
    with pytest.raises(ConfigError, match="fixed mode"):
        golden_messages(demo, rows, "auto")


def test_golden_prompts_are_asked_over_passages_when_the_collection_has_an_index(demo) -> None:
    from app.wiring.collections import with_collection
    from app.wiring.export import golden_mode

    assert golden_mode(demo) == "tuned_rag" and golden_mode(demo, tuned=False) == "rag"
    bare = with_collection(demo, "empty")  # no index: the question alone
    assert golden_mode(bare) == "tuned" and golden_mode(bare, tuned=False) == "prompt"


def test_an_index_that_cannot_be_opened_leaves_the_golden_prompts_without_passages(demo, monkeypatch) -> None:
    from app.settings import load_settings
    from app.wiring.collections import with_collection
    from app.wiring.export import golden_messages, golden_prompts
    from app.wiring.index import clear_index_cache

    rows = [{"question": "Are hotel costs refunded?"}]
    assert golden_prompts(demo, rows)[0] == "tuned_rag"
    monkeypatch.setenv("HYBRID_INDEX__CHUNK_TOKENS", "128")  # the index was split at 64
    clear_index_cache()
    changed = with_collection(load_settings(), "demo")
    mode, prompts = golden_prompts(changed, rows)
    assert mode == "tuned" and prompts == golden_messages(changed, rows, "tuned")
    assert golden_prompts(changed, rows, tuned=False)[0] == "prompt"
