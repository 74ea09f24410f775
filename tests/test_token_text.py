"""Token bytes to streamed text: split characters come out whole, invalid bytes render like the
transformers backend, a character cut by the token limit is dropped, leading whitespace is not shown."""

from __future__ import annotations

from adapters.token_text import ContextText, LineFloor, TokenTextDecoder

BA = "把".encode()  # b"\xe6\x8a\x8a"


def _run(feeds: list[tuple[bytes, bool]]) -> list[str]:
    decoder = TokenTextDecoder()
    return [decoder.feed(piece, byte_token=is_byte) for piece, is_byte in feeds] + [decoder.finish()]


def test_a_character_split_across_byte_level_tokens_comes_out_whole() -> None:
    qing = "请".encode()
    assert _run([(b"OK ", False), (qing[:2], False), (qing[2:] + b"!", False)]) == ["OK ", "", "请!", ""]


def test_byte_fallback_runs_are_judged_whole() -> None:
    feeds = [(b"a", False), (BA[:1], True), (BA[1:2], True), (BA[2:], True), (b" b", False)]
    assert _run(feeds) == ["a", "", "", "", "把 b", ""]


def test_an_invalid_byte_run_is_one_replacement_per_byte() -> None:
    feeds = [(b"a", False), (BA[:1], True), (b"?", True), (b"c", False)]
    assert _run(feeds) == ["a", "", "", "\ufffd\ufffdc", ""]


def test_invalid_bytes_in_ordinary_pieces_are_replaced_per_sequence() -> None:
    assert _run([(b"a\xff\xfeb", False)]) == ["a\ufffd\ufffdb", ""]


def test_a_character_cut_by_the_token_limit_is_dropped() -> None:
    assert _run([(b"ok", False), (b"x", True), (BA[:2], True)]) == ["ok", "", "", "x"]
    assert _run([(b"ok", False), (BA[:2], False)]) == ["ok", "", ""]
    assert _run([(b"ok", False), (b"\xff", True)]) == ["ok", "", "\ufffd"]


def test_leading_whitespace_is_not_shown() -> None:
    assert _run([(b" ", False), (b"\n Hi", False), (b" there", False)]) == ["", "Hi", " there", ""]


def _floor(*texts: str, min_lines: int = 3) -> LineFloor:
    floor = LineFloor(min_lines)
    for text in texts:
        floor.feed(text)
    return floor


def test_line_floor_bars_an_end_until_the_third_line_has_text() -> None:
    assert not _floor("Conclusion: 15 days.").end_allowed()
    assert not _floor("Conclusion: 15 days.", "\nBasis: [a.md]").end_allowed()
    # pieces may carry several line breaks, or split a line anywhere
    assert _floor("Conclusion: 15 days.\n\nBasis: [a.md]\n", "N").end_allowed()
    assert _floor("Conclusion: 15", " days.\nBasis: [a", ".md]\nNote: Ask HR.").end_allowed()
    assert _floor("one\ntwo\nthree\nfour").end_allowed()


def test_line_floor_accepts_an_end_on_an_empty_line_and_when_switched_off() -> None:
    assert _floor("").end_allowed()  # nothing written yet: the model's own choice stands
    assert _floor("Conclusion: 15 days.\n").end_allowed()  # no run of blank lines
    assert _floor("Conclusion: 15 days.\n  ").end_allowed()
    assert _floor("Conclusion: 15 days.", min_lines=0).end_allowed()
    assert not _floor("Conclusion: 15 days.\n\n\nBasis: [a.md]").end_allowed()  # blank lines do not count


def test_context_text_asks_at_every_line_break_and_keeps_what_follows_a_replacement() -> None:
    asked: list[str] = []

    def check(text: str) -> str | None:
        asked.append(text)
        return "A: fixed\n" if text == "A: x\n" else None

    ctx = ContextText(check)
    assert ctx.feed(b"A: x", False) is None and asked == []
    assert ctx.feed(b"\nB", False) == "A: fixed\nB"
    assert ctx.feed(b": y\n\n", False) is None
    assert asked == ["A: x\n", "A: fixed\nB: y\n", "A: fixed\nB: y\n\n"]
    assert ctx.text == "A: fixed\nB: y\n\n"
