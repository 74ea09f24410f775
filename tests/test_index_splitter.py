"""Token-sized, span-keeping, Chinese-aware splitting (index.splitter)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from index.formats import Section, extract_markdown
from index.loaders import LoadedDocument
from index.splitter import DocumentSplitter, SplitterSettings, chunk_lang, detect_lang, index_text
from tests.fakes_index import FakeEmbedder

COUNT = FakeEmbedder().count_tokens  # one token per word or CJK character


def _doc(text: str, sections: tuple[Section, ...] | None = None, path: str = "d.txt") -> LoadedDocument:
    return LoadedDocument(path, "Doc", text, sections or (Section(0, len(text)),), "text")


def test_spans_point_into_the_text_and_sizes_hold() -> None:
    para = " ".join(f"word{i}" for i in range(40)) + "."
    text = "\n\n".join([para] * 6)
    chunks = DocumentSplitter(COUNT, SplitterSettings(64, 0.15)).split(_doc(text), digest="abc")
    assert len(chunks) >= 4
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert COUNT(c.text) <= 64
    assert [c.chunk_id[-5:] for c in chunks] == [f"{i:05d}" for i in range(len(chunks))]


def test_chinese_splits_at_sentence_ends() -> None:
    sentence = "员工每年有十五天带薪年假需要提前申请。"  # 19 CJK characters -> 19 tokens
    text = sentence * 6
    chunks = DocumentSplitter(COUNT, SplitterSettings(40, 0.0)).split(_doc(text), digest="abc")
    assert [c.text for c in chunks] == [sentence * 2] * 3
    assert [(c.start, c.end) for c in chunks] == [(0, 38), (38, 76), (76, 114)]
    assert {c.lang for c in chunks} == {"zh"}


def test_full_width_space_is_a_separator() -> None:
    part = "年假" * 15  # 30 tokens, no sentence punctuation
    text = "\u3000".join([part] * 3)
    chunks = DocumentSplitter(COUNT, SplitterSettings(40, 0.0)).split(_doc(text), digest="abc")
    assert [c.text.strip("\u3000") for c in chunks] == [part] * 3


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    sentences = [f"Sentence {i} has five words." for i in range(12)]  # 5 tokens each
    text = " ".join(sentences)
    chunks = DocumentSplitter(COUNT, SplitterSettings(20, 0.25)).split(_doc(text), digest="abc")
    assert chunks[0].text == " ".join(sentences[:4])
    assert chunks[1].text.startswith(sentences[3])  # 5 tokens of overlap = one sentence
    assert chunks[1].start < chunks[0].end


def test_headings_and_title_travel_with_chunks() -> None:
    text = "# Leave\n\nFifteen days a year.\n\n## Carry over\n\nFive days at most.\n"
    ex = extract_markdown(text)
    doc = LoadedDocument("hr/leave.md", ex.title, text, ex.sections, "markdown")
    chunks = DocumentSplitter(COUNT, SplitterSettings(64, 0.15)).split(doc, digest="abc")
    assert [(c.heading, c.text) for c in chunks] == [
        ("Leave", "# Leave\n\nFifteen days a year."),
        ("Leave > Carry over", "## Carry over\n\nFive days at most."),
    ]
    assert index_text(chunks[1]) == "Leave > Carry over\n## Carry over\n\nFive days at most."


def test_chunk_ids_are_stable_and_path_specific() -> None:
    splitter = DocumentSplitter(COUNT, SplitterSettings(64, 0.15))
    a1 = splitter.split(_doc("Same text.", path="a.txt"), digest="d1")
    a2 = splitter.split(_doc("Same text.", path="a.txt"), digest="d1")
    b = splitter.split(_doc("Same text.", path="b.txt"), digest="d1")
    assert a1[0].chunk_id == a2[0].chunk_id
    assert a1[0].chunk_id != b[0].chunk_id


def _counting() -> tuple[list[str], Callable[[str], int]]:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return COUNT(text)

    return calls, counting


def _long_text(paragraphs: int) -> str:
    para = " ".join(f"w{i}" for i in range(30)) + ". " + " ".join(f"x{i}" for i in range(20)) + "."
    return "\n\n".join(f"{para} p{n}" for n in range(paragraphs))


def test_tokenizer_work_is_linear_in_the_text() -> None:
    """Every character goes through the tokenizer once: the characters it is given add up to
    the text's length, and twice the text costs twice the calls."""
    work = {}
    for paragraphs in (100, 200):
        calls, counting = _counting()
        text = _long_text(paragraphs)
        chunks = DocumentSplitter(counting, SplitterSettings(64, 0.15)).split(_doc(text), digest="abc")
        assert sum(map(len, calls)) <= len(text)
        assert len(calls) <= len(text) / 50
        assert chunks and all(COUNT(c.text) <= 64 for c in chunks)
        work[paragraphs] = len(calls)
    assert work[200] <= 2.1 * work[100]


def test_chunks_cover_every_word_of_the_text() -> None:
    text = _long_text(40)
    chunks = DocumentSplitter(COUNT, SplitterSettings(48, 0.2)).split(_doc(text), digest="abc")
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert COUNT(c.text) <= 48
        covered[c.start : c.end] = [True] * (c.end - c.start)
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    assert all(a.start < b.start for a, b in itertools.pairwise(chunks))  # in reading order


def test_text_without_separators_is_cut_within_the_budget() -> None:
    blob = "".join(f"{i:x}" for i in range(4000))  # no space, no punctuation: cut anywhere
    calls, counting = _counting()
    chunks = DocumentSplitter(counting, SplitterSettings(32, 0.0)).split(_doc(blob), digest="abc")
    assert "".join(c.text for c in chunks) == blob
    assert all(COUNT(c.text) <= 32 for c in chunks)
    assert sum(map(len, calls)) <= 2 * len(blob)


def test_a_piece_denser_than_expected_is_split_again() -> None:
    """Chinese packs more tokens per character than the first guess: a piece that turns out over
    the budget is cut further, and the result still fits."""
    text = "员工每年有十五天带薪年假需要提前申请并由主管批准" * 30  # 720 CJK tokens, no separator
    calls, counting = _counting()
    chunks = DocumentSplitter(counting, SplitterSettings(64, 0.0)).split(_doc(text), digest="abc")
    assert "".join(c.text for c in chunks) == text
    assert all(COUNT(c.text) <= 64 for c in chunks)
    assert sum(map(len, calls)) <= 3 * len(text)


def test_pieces_that_end_in_their_separator_are_split_further() -> None:
    """A sentence is a piece of its paragraph and, split at ". ", a piece of itself: the next
    separator is tried, not the same one again."""
    body = " ".join(f"Item 0 rule {j} applies to every team." for j in range(12))
    text = f"# Note 0\n\n{body}\n\n## More\n\n{body}\n"
    chunks = DocumentSplitter(COUNT, SplitterSettings(32, 0.15)).split(_doc(text), digest="abc")
    assert len(chunks) >= 6 and all(COUNT(c.text) <= 32 + 2 for c in chunks)  # + the "# Note 0" line


def test_detect_lang() -> None:
    assert detect_lang("Employees get fifteen days.") == "en"
    assert detect_lang("员工每年有十五天年假 (annual leave)。") == "zh"
    assert detect_lang("The 年假 policy applies to every employee in the company.") == "en"


def test_a_chinese_manuals_listings_and_tables_are_chinese_its_english_section_is_not() -> None:
    """Seen on Debian Reference in Chinese: command listings, configuration files and tables of
    package names (mostly Latin letters) were labelled English, so each Chinese question's search
    gave them the top places of an "English" pool."""
    prose = "系统以保存在 /etc/motd 中的欢迎信息来开始，同时显示一个命令提示符。" * 3
    listing = "$ ls -l /etc/passwd /etc/shadow\ndrwxrwsr-x 2 root mail 4096 Oct 15 21:40 /var/mail"
    mixed = "这里有一点有趣的文件权限例子。\n" + listing * 3
    table = "软件包 | 流行度 | 大小" + "\nfonts-crosextra-carlito | V:23, I:172 | 2728 | Carlito metric" * 3
    english = "Gold members get advance replacement for the logger, and it is sent within two days."
    parts = [prose, listing, mixed, table, english]
    text = "\n\n".join(parts)
    sections = []
    for part in parts:
        start = text.index(part)
        sections.append(Section(start, start + len(part)))
    chunks = DocumentSplitter(COUNT, SplitterSettings(400, 0.0)).split(
        _doc(text, tuple(sections)), digest="d"
    )
    assert [c.text for c in chunks] == parts
    assert [detect_lang(c.text) for c in chunks] == ["zh", "en", "en", "en", "en"]  # each alone
    assert [c.lang for c in chunks] == ["zh", "zh", "zh", "zh", "en"]


def test_an_english_documents_chunks_keep_their_own_language() -> None:
    assert chunk_lang("$ ls -l /var/mail", "en") == "en"
    assert chunk_lang("权限例子：$ ls -l /var/mail /etc/passwd /etc/shadow /dev/ppp", "en") == "en"
    assert chunk_lang("员工每年有十五天年假 (annual leave)。", "en") == "zh"


def test_settings_identity() -> None:
    assert SplitterSettings(256, 0.15).identity() == {"chunk_tokens": 256, "overlap_tokens": 38, "version": 6}


def test_a_lone_heading_joins_the_chunk_after_it() -> None:
    row = "| " + " | ".join(f"cell{i}" for i in range(10)) + " |"  # 10 tokens per line
    text = "## Other leave\n\n" + "\n".join([row] * 6)
    chunks = DocumentSplitter(COUNT, SplitterSettings(40, 0.0)).split(_doc(text), digest="abc")
    # The heading (2 tokens) would be a chunk of its own; it is joined to the first rows instead.
    assert chunks[0].text == "## Other leave\n\n" + "\n".join([row] * 4)
    assert [c.text for c in chunks[1:]] == ["\n".join([row] * 2)]
    for c in chunks:
        assert text[c.start : c.end] == c.text
