"""Training rows: JSONL validation by file:line, plain and RAFT-style RAG examples with a fake
retriever, corrections with replay, the validation split, the data hash, and the answer mask."""

from __future__ import annotations

import json

import pytest

from adapters.batching import collate, encode_example, length_grouped_batches
from adapters.training_data import (
    ChatExample,
    TrainRow,
    build_examples,
    data_hash,
    default_build_messages,
    load_train_rows,
    read_examples,
    replay_sample,
    rows_from_corrections,
    split_validation,
    write_examples,
)
from domain.errors import DataError
from domain.types import Chunk, Hit


def _row(i: int, source: str | None = "docs/leave.md", lang: str = "en") -> dict:
    return {
        "id": f"r{i}",
        "lang": lang,
        "question": f"Question {i}?",
        "source": source,
        "answer": f"Conclusion: answer {i}.\nBasis: [{source}]\nNote: none.",
    }


def _write(path, rows_or_lines) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows_or_lines]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class FakeSearch:
    """Returns one passage from the row's own document and five from other documents."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, query: str, k: int) -> list[Hit]:
        self.calls.append((query, k))
        paths = ["docs/leave.md", "docs/a.md", "docs/b.md", "docs/c.md", "docs/d.md", "docs/e.md"]
        return [
            Hit(
                chunk=Chunk(
                    chunk_id=f"c{i}", path=p, title=p, heading="H", text=f"text of {p}", start=0, end=10
                ),
                score=1.0 - i / 10,
                rank=i + 1,
            )
            for i, p in enumerate(paths)
        ][:k]


def test_malformed_rows_are_reported_by_file_and_line(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write(a, [_row(1), "{not json", _row(2), {**_row(3), "lang": "fr"}])
    _write(b, [{**_row(4), "answer": ""}, _row(1), "", [1, 2]])
    with pytest.raises(DataError) as info:
        load_train_rows([a, b])
    assert info.value.problems == [
        f"{a}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{a}:4: lang 'fr' is not one of en, zh",
        f"{b}:1: field 'answer' is missing or not a non-empty string",
        f"{b}:2: duplicate id 'r1'",
        f"{b}:4: expected a JSON object, got list",
    ]
    assert "nothing was trained" in str(info.value)


def test_good_rows_load_with_sources_as_tuples(tmp_path):
    f = tmp_path / "t.jsonl"
    _write(f, [_row(1), _row(2, source=None), {**_row(3), "source": ["x.md", "y.md"]}])
    rows = load_train_rows([f])
    assert [(r.id, r.sources) for r in rows] == [
        ("r1", ("docs/leave.md",)),
        ("r2", ()),
        ("r3", ("x.md", "y.md")),
    ]


def test_plain_examples_end_with_the_answer_and_use_the_builder():
    rows = [TrainRow(id="r1", lang="en", question="Q?", answer="A.", sources=("s.md",))]
    examples, report = build_examples(rows, build_messages=default_build_messages)
    assert len(examples) == 1 and report.plain == 1 and report.rag == 0
    assert examples[0].messages == (
        {"role": "system", "content": "Answer in the house style: Conclusion, Basis, Note."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
    )
    assert examples[0].id == "r1:plain"


def test_rag_examples_hold_the_source_about_seventy_percent_of_the_time():
    rows = [
        TrainRow(id=f"r{i}", lang="en", question=f"Q{i}?", answer="A.", sources=("docs/leave.md",))
        for i in range(400)
    ]
    search = FakeSearch()
    examples, report = build_examples(
        rows, build_messages=default_build_messages, search=search, rag_share=0.5, source_prob=0.7, seed=7
    )
    rag = [e for e in examples if e.kind == "rag"]
    assert report.rag == len(rag) and 170 <= len(rag) <= 230
    share = sum(e.source_present for e in rag) / len(rag)
    assert 0.6 <= share <= 0.8
    for e in rag:
        user = e.messages[1]["content"]
        n_passages = user.count("text of ")
        assert 2 + e.source_present <= n_passages <= 4 + e.source_present
        assert ("docs/leave.md" in user) == e.source_present
    # the same seed gives the same examples
    again, _ = build_examples(
        rows,
        build_messages=default_build_messages,
        search=FakeSearch(),
        rag_share=0.5,
        source_prob=0.7,
        seed=7,
    )
    assert data_hash(again) == data_hash(examples)


def test_rows_without_source_get_distractors_only():
    rows = [TrainRow(id="x", lang="en", question="Weather?", answer="A.", sources=())]
    examples, _ = build_examples(
        rows, build_messages=default_build_messages, search=FakeSearch(), rag_share=1.0
    )
    rag = [e for e in examples if e.kind == "rag"]
    assert len(rag) == 1 and rag[0].source_present is False


def test_corrections_become_rows_with_their_passages_and_repeat():
    passages = json.dumps(
        [{"chunk_id": "k1", "path": "docs/leave.md", "heading": "Leave", "text": "20 days", "score": 0.9}]
    )
    records = [
        {
            "id": 5,
            "question": "How many leave days?",
            "mode": "rag",
            "passages": passages,
            "original": "Maybe 10.",
            "corrected": "Conclusion: 20 days.\nBasis: [docs/leave.md]\nNote: none.",
        },
        {
            "id": 6,
            "question": "年假几天？",
            "mode": "tuned",
            "passages": "[]",
            "corrected": "结论：二十天。\n依据：【leave.md】\n提示：无。",
        },
    ]
    rows = rows_from_corrections(records)
    assert [(r.id, r.lang, r.sources, r.origin) for r in rows] == [
        ("corr-5", "en", ("docs/leave.md",), "correction"),
        ("corr-6", "zh", (), "correction"),
    ]
    examples, report = build_examples(
        rows, build_messages=default_build_messages, search=FakeSearch(), correction_repeats=2, rag_share=0.0
    )
    # repeated in the form each was corrected in (RAG with its passages, plain without); the other
    # form once
    assert [e.id for e in examples] == [
        "corr-5:plain",
        "corr-5:rag#0",
        "corr-5:rag#1",
        "corr-6:plain#0",
        "corr-6:plain#1",
    ]
    assert report.corrections == 2
    assert "20 days" in examples[1].messages[1]["content"]


def test_a_plain_correction_gets_its_rag_form_once():
    row = TrainRow(
        id="corr-7",
        lang="en",
        question="How many days?",
        answer="20 days.",
        sources=("docs/leave.md",),
        origin="correction",
    )
    examples, report = build_examples(
        [row], build_messages=default_build_messages, search=FakeSearch(), correction_repeats=3, rag_share=1.0
    )
    assert [e.id for e in examples] == ["corr-7:plain#0", "corr-7:plain#1", "corr-7:plain#2", "corr-7:rag"]
    assert (report.plain, report.rag) == (3, 1)


def test_bad_corrections_are_named():
    with pytest.raises(DataError, match="correction 9: question or corrected answer is empty"):
        rows_from_corrections([{"id": 9, "question": "Q", "corrected": "  "}])


def test_replay_sample_is_seeded_and_marked():
    base = [TrainRow(id=f"r{i}", lang="en", question="q", answer="a") for i in range(10)]
    picked = replay_sample(base, 3, seed=1)
    assert [r.id for r in picked] == [r.id for r in replay_sample(base, 3, seed=1)]
    assert len(picked) == 3 and {r.origin for r in picked} == {"replay"}
    assert len(replay_sample(base, 50, seed=1)) == 10


def test_validation_split_keeps_all_forms_of_a_row_together_and_corrections_in_training():
    ex = [
        ChatExample(id=f"r{i}:{k}", row_id=f"r{i}", kind=k, messages=())
        for i in range(20)
        for k in ("plain", "rag")
    ]
    ex.append(ChatExample(id="corr-1:plain", row_id="corr-1", kind="plain", messages=(), origin="correction"))
    train, val = split_validation(ex, share=0.1, seed=3)
    val_rows = {e.row_id for e in val}
    assert len(val_rows) == 2 and len(val) == 4
    assert not val_rows & {e.row_id for e in train}
    assert "corr-1" not in val_rows


def test_examples_round_trip_through_jsonl(tmp_path):
    rows = [TrainRow(id="r1", lang="en", question="Q?", answer="A.")]
    ex, _ = build_examples(rows, build_messages=default_build_messages)
    write_examples(tmp_path / "e.jsonl", ex)
    assert read_examples(tmp_path / "e.jsonl") == ex


def test_answer_mask_covers_the_answer_and_end_marker_only(tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    ex, _ = build_examples(
        [TrainRow(id="r1", lang="en", question="Leave?", answer="Twenty days.")],
        build_messages=default_build_messages,
    )
    enc = encode_example(tok, ex[0])
    assert tok.decode(list(enc.ids[enc.n_prompt :])) == "Twenty days.<|im_end|>"
    assert tok.decode(list(enc.ids[: enc.n_prompt])).endswith("<|im_start|>assistant\n")
    ids, labels = collate([enc, enc.__class__(id="short", ids=enc.ids[:-2], n_prompt=enc.n_prompt)], pad_id=0)
    assert ids.shape == labels.shape == (2, len(enc.ids))
    assert (labels[0] != -100).sum().item() == enc.n_answer
    assert (labels[1] != -100).sum().item() == enc.n_answer - 2
    assert labels[1, -2:].tolist() == [-100, -100]


def test_length_grouped_batches_cover_every_index_once_and_are_deterministic():
    lengths = [5, 50, 7, 48, 6, 49, 8, 47, 45, 46]
    b = length_grouped_batches(lengths, batch_size=2, seed=1, epoch=0, group_batches=5)
    assert sorted(i for batch in b for i in batch) == list(range(10))
    assert b == length_grouped_batches(lengths, batch_size=2, seed=1, epoch=0, group_batches=5)
    # sorted by length inside the group: each batch pairs neighbours in length
    assert all(abs(lengths[x] - lengths[y]) <= 2 for x, y in b)


def test_the_source_survives_a_passage_budget_as_often_as_source_prob_says():
    """With a passage budget that holds only one passage, a source that the random order put later
    would be cut off; it is moved up instead, so every example drawn with the source shows it, the
    flag matches the prompt, and the one visible passage is the source."""
    from domain.prompts import build_messages, estimate_tokens

    one_passage = estimate_tokens("[1] docs/x.md | H\ntext of docs/leave.md") + 2

    def build(mode, question, hits):
        return build_messages(mode, question, hits, context_tokens=one_passage)

    rows = [
        TrainRow(id=f"r{i}", lang="en", question=f"Q{i}?", answer="A.", sources=("docs/leave.md",))
        for i in range(60)
    ]
    for prob, expected in ((1.0, 60), (0.0, 0)):
        examples, _ = build_examples(
            rows, build_messages=build, search=FakeSearch(), rag_share=1.0, source_prob=prob, seed=3
        )
        rag = [e for e in examples if e.kind == "rag"]
        assert len(rag) == 60
        for e in rag:
            user = e.messages[1]["content"]
            assert user.count("text of ") == 1
            assert e.source_present == ("text of docs/leave.md" in user)
        assert sum(e.source_present for e in rag) == expected
