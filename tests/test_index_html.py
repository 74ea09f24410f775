"""HTML read by one lxml parse (index.formats.extract_html): headings become sections, navigation
and boilerplate stay out, odd and broken markup is read or refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.errors import DocumentError
from index.formats import extract_html
from index.loaders import SourceFile, load_document

PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html><head><title>Leave guide</title><style>h1 {color: red}</style>
<script>var menu = "Home";</script></head>
<body>
<header class="site"><a href="/">Company intranet</a></header>
<nav><ul><li>Home</li><li>Policies</li></ul></nav>
<div role="navigation">Previous | Next</div>
<div class="navheader">Chapter 2 of 9</div>
<main><article>
<header><h1>Annual <em>leave</em><a class="headerlink" href="#x">¶</a></h1></header>
<div class="toc">1. Carry over 2. Sick days</div>
<p>Employees get   fifteen days
a year.</p>
<h2>Carry over</h2>
<p>At most five days carry over.<br>Ask HR first.</p>
<pre>
$ leave --carry 5
    done
</pre>
<h2>Sick days</h2>
<table><tr><th>Days</th><th>Proof</th></tr><tr><td>1-3</td><td>none</td></tr></table>
<dl><dt>--half</dt><dd><p>Half a day.</p></dd></dl>
</article></main>
<aside>Related: travel policy</aside>
<footer>Copyright 2024</footer>
<noscript>Enable JavaScript</noscript>
</body></html>
"""


def test_headings_sections_and_text() -> None:
    ex = extract_html(PAGE)
    assert ex.title == "Leave guide"
    assert ex.text == (
        "Annual leave\nEmployees get fifteen days a year.\n\n"
        "Carry over\nAt most five days carry over.\nAsk HR first.\n\n$ leave --carry 5\n    done\n\n"
        "Sick days\nDays | Proof\n1-3 | none\n\n--half\nHalf a day."
    )
    assert [(s.heading, ex.text[s.start : s.end].split("\n")[0]) for s in ex.sections] == [
        ("Annual leave", "Annual leave"),
        ("Annual leave > Carry over", "Carry over"),
        ("Annual leave > Sick days", "Sick days"),
    ]
    assert ex.sections[-1].end == len(ex.text)


def test_navigation_and_boilerplate_are_left_out() -> None:
    text = extract_html(PAGE).text
    for gone in ("Home", "Policies", "Previous", "Chapter 2", "intranet", "Related", "Copyright"):
        assert gone not in text
    for gone in ("var menu", "color: red", "Enable JavaScript", "1. Carry over", "¶"):
        assert gone not in text


def test_a_page_that_is_only_a_table_of_contents_keeps_it() -> None:
    ex = extract_html("<html><body><div class='toc'><a>Install</a><br><a>Upgrade</a></div></body></html>")
    assert ex.text == "Install\nUpgrade"


def test_text_before_the_first_heading_is_its_own_section() -> None:
    ex = extract_html("<p>Preface.</p><h1>One</h1><p>Body.</p>")
    assert ex.title == "One"  # no <title>: the first heading
    assert [(s.heading, ex.text[s.start : s.end]) for s in ex.sections] == [
        ("", "Preface."),
        ("One", "One\nBody."),
    ]


@pytest.mark.parametrize(
    "markup",
    [
        "<html><body><p>Unclosed <b>bold <i>and italic<div>a block</span></p></p></body>",
        "</div></div><p>stray end tags first",
        "<p>control\x01characters\x0band\x00nulls</p>",
        "<table><td>cell without row<td>second",
        "plain text with no markup at all",
        "<p>a lone surrogate-free \ufffe marker</p>",
    ],
)
def test_broken_markup_is_read(markup: str) -> None:
    ex = extract_html(markup, "odd.html")
    assert ex.text.strip()
    assert all(0 <= s.start <= s.end <= len(ex.text) for s in ex.sections)


def _source(tmp_path: Path, name: str, content: str) -> tuple[SourceFile, bytes]:
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    return SourceFile(name, p, p.stat().st_size, "html"), p.read_bytes()


@pytest.mark.parametrize(
    "content",
    ["<!-- only a comment -->", "<!DOCTYPE html>", "<html><head><title>T</title></head><body></body></html>"],
)
def test_markup_without_text_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    src, data = _source(tmp_path, "empty.html", content)
    with pytest.raises(DocumentError) as info:
        load_document(src, data)
    assert info.value.reason == "no_text"
    assert "\n" not in str(info.value)


def test_a_deeply_nested_page_is_read(tmp_path: Path) -> None:
    src, data = _source(tmp_path, "deep.html", "<div>" * 1500 + "<p>deep text</p>" + "</div>" * 1500)
    assert "deep text" in load_document(src, data).text


def test_nesting_beyond_the_parser_limit_is_refused_in_one_line() -> None:
    with pytest.raises(DocumentError) as info:
        extract_html("<div>" * 5000 + "<p>deep text</p>" + "</div>" * 5000, "deep.html")
    assert info.value.reason == "unreadable"
    assert "2048" in str(info.value) and "\n" not in str(info.value)
