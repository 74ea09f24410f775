"""Token bytes to streamed text: split characters come out whole, invalid bytes render like the
transformers backend, a character cut by the token limit is dropped, leading whitespace is not shown."""

from __future__ import annotations

from adapters.token_text import TokenTextDecoder

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
