"""Per-format text extraction: turns one file's content into extracted text, a title and heading
sections whose character spans index into that text.

Markdown keeps its raw text and takes sections from langchain's ``MarkdownHeaderTextSplitter``;
HTML text is assembled from ``HTMLHeaderTextSplitter``'s output; PDF gives one section per page;
DOCX follows its Heading styles. Finding, reading and decoding files is ``index.loaders``' job.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass

from domain.errors import DocumentError

HEADING_JOIN = " > "
_HEADER_KEYS = tuple(f"h{i}" for i in range(1, 7))


@dataclass(frozen=True)
class Section:
    """A span ``[start, end)`` of the extracted text under one heading path (and PDF page)."""

    start: int
    end: int
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True)
class Extracted:
    """What a format parser returns: the text, a title ('' when none) and covering sections."""

    text: str
    title: str
    sections: tuple[Section, ...]


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_plain(text: str) -> Extracted:
    """Plain text and reStructuredText: one section; the title is a short first line that does
    not end like a sentence."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    first = first.strip("#=*- \t")
    title = first if len(first) <= 80 and not first.endswith(tuple(".。!！?？;；,，")) else ""
    return Extracted(text, title, (Section(0, len(text)),))


def _clean_line(line: str) -> str:
    # The same normalisation MarkdownHeaderTextSplitter applies to every line it reads.
    return "".join(filter(str.isprintable, line.strip()))


def extract_markdown(text: str) -> Extracted:
    """Markdown keeps its raw text; each heading starts a section (headings inside code fences
    are not headings)."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    splitter = MarkdownHeaderTextSplitter(
        headers_to_split_on=[("#" * i, f"h{i}") for i in range(1, 7)], strip_headers=False
    )
    docs = splitter.split_text(text)
    line_starts: list[int] = []
    pos = 0
    lines = text.split("\n")
    for line in lines:
        line_starts.append(pos)
        pos += len(line) + 1
    starts: list[tuple[int, str]] = []
    cursor = 0
    for doc in docs:
        heading = HEADING_JOIN.join(doc.metadata[k] for k in _HEADER_KEYS if k in doc.metadata)
        first = doc.page_content.split("\n", 1)[0].strip()
        at = next((i for i in range(cursor, len(lines)) if _clean_line(lines[i]) == first), None)
        if at is None:  # cannot place it: keep the previous section running
            continue
        starts.append((0 if not starts else line_starts[at], heading))
        cursor = at + 1
    if not starts:
        starts = [(0, "")]
    sections = tuple(
        Section(start, starts[i + 1][0] if i + 1 < len(starts) else len(text), heading)
        for i, (start, heading) in enumerate(starts)
    )
    title = next((s.heading.split(HEADING_JOIN)[0] for s in sections if s.heading), "")
    return Extracted(text, title, sections)


_INLINE_TAGS = (
    "a",
    "abbr",
    "b",
    "bdi",
    "bdo",
    "cite",
    "code",
    "data",
    "dfn",
    "em",
    "font",
    "i",
    "kbd",
    "mark",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "time",
    "u",
    "var",
)
_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "head", "title", "iframe", "object")


def extract_html(markup: str) -> Extracted:
    """HTML: scripts and styles dropped, inline tags flattened into their sentences, then
    ``HTMLHeaderTextSplitter`` yields heading-tagged blocks that are joined into the text."""
    from bs4 import BeautifulSoup
    from langchain_text_splitters import HTMLHeaderTextSplitter

    soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_INLINE_TAGS):
        tag.unwrap()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    soup.smooth()
    splitter = HTMLHeaderTextSplitter([(k, k) for k in _HEADER_KEYS])
    blocks: list[tuple[str, str]] = []  # (heading path, text), consecutive same-heading merged
    for doc in splitter.split_text(str(soup)):
        heading = HEADING_JOIN.join(doc.metadata[k] for k in _HEADER_KEYS if k in doc.metadata)
        body = "\n".join(ln.strip() for ln in doc.page_content.split("\n") if ln.strip())
        body = re.sub(r"[ \t]+", " ", body)
        if not body:
            continue
        if blocks and blocks[-1][0] == heading:
            blocks[-1] = (heading, blocks[-1][1] + "\n" + body)
        else:
            blocks.append((heading, body))
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for heading, body in blocks:
        if parts:
            parts.append("\n\n")
            pos += 2
        sections.append(Section(pos, pos + len(body), heading))
        parts.append(body)
        pos += len(body)
    text = "".join(parts)
    if not title:
        title = next((s.heading.split(HEADING_JOIN)[0] for s in sections if s.heading), "")
    return Extracted(text, title, tuple(sections) or (Section(0, 0),))


# A line that starts a list item or a numbered step: never joined to the line above.
_ITEM_START = re.compile(r"[-*•·▪‣–]\s|\(?\d{1,3}[.)、）]\s?|[（(]\d{1,3}[)）]|[a-z][.)]\s")
_SENTENCE_END = tuple(".。!！?？:：;；")
# English words a sentence does not end on: a line ending on one was wrapped.
_CARRY_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "is",
        "of",
        "on",
        "or",
        "than",
        "that",
        "the",
        "to",
        "was",
        "were",
        "which",
        "with",
    ]
)
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WRAP_WIDTH_SHARE = 0.85  # a Chinese line this close to the page's full width was wrapped


def _wrapped(line: str, following: str, line_width: int, full_width: int) -> bool:
    """Whether ``following`` continues the sentence that the PDF wrapped at the end of ``line``
    (``line_width``: the width of the last page line in ``line``, which may hold several)."""
    a, b = line.rstrip(), following.lstrip()
    if not a or not b or a.endswith(_SENTENCE_END) or _ITEM_START.match(b):
        return False
    if _CJK_CHAR.match(a[-1]) and (_CJK_CHAR.match(b[0]) or b[0].isalnum()):
        return line_width >= WRAP_WIDTH_SHARE * full_width
    if b[0].islower() or a.endswith((",", "，", "、")):
        return True
    last = a.rsplit(maxsplit=1)[-1].lower()
    return last in _CARRY_WORDS


def _join_wrapped(line: str, following: str) -> str:
    a, b = line.rstrip(), following.lstrip()
    if _CJK_CHAR.match(a[-1]) and _CJK_CHAR.match(b[0]):
        return a + b
    return f"{a} {b}"


def reflow_pdf_text(text: str) -> str:
    """Undo the line wrapping of PDF text: a line the page width broke mid-sentence is joined to
    the next one, so a sentence stays one line for chunking, focus excerpts and citation spans.
    List items, numbered steps, headings and lines that end a sentence stay on their own; a
    wrap is recognised by the next line starting in lower case, or by the line ending on a comma
    or on a word like "the" or "than" (Chinese: by a line that fills the page's width without
    ending a sentence).

    >>> reflow_pdf_text("Aim for an RSSI better\\nthan -115 dBm at every logger.\\n3. Record RSSI.")
    'Aim for an RSSI better than -115 dBm at every logger.\\n3. Record RSSI.'
    >>> reflow_pdf_text("Singapore, Malaysia,\\nVietnam AS923-1\\nIndonesia AS923-2")
    'Singapore, Malaysia, Vietnam AS923-1\\nIndonesia AS923-2'
    >>> reflow_pdf_text("出差借款单次不超过八千元，出差结束\\n后十五个工作日内冲账。\\n第二条")
    '出差借款单次不超过八千元，出差结束后十五个工作日内冲账。\\n第二条'
    >>> reflow_pdf_text("差旅费用按实际发生金额报销，住宿\\n标准见附表\\n第三条 交通费用按级别报销。")
    '差旅费用按实际发生金额报销，住宿标准见附表\\n第三条 交通费用按级别报销。'
    """
    lines = text.split("\n")
    widths = sorted(len(ln.rstrip()) for ln in lines if ln.strip())
    if len(widths) < 2:
        return text
    full_width = widths[(len(widths) - 1) * 9 // 10]  # the 90th percentile: a full line
    out = [lines[0]]
    for previous, line in itertools.pairwise(lines):
        if _wrapped(out[-1], line, len(previous.rstrip()), full_width):
            out[-1] = _join_wrapped(out[-1], line)
        else:
            out.append(line)
    return "\n".join(out)


def extract_pdf(data: bytes, path: str) -> Extracted:
    """PDF via pypdf: pages joined by blank lines, one section per page (1-based ``page``); lines
    the page width wrapped mid-sentence are joined again (``reflow_pdf_text``)."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(path, "encrypted", "the PDF needs a password")
        pages = [
            reflow_pdf_text(normalize_newlines(page.extract_text() or "").strip()) for page in reader.pages
        ]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except Exception as e:  # pypdf raises many types on damaged files
        raise DocumentError(path, "unreadable", f"{type(e).__name__}: {e}"[:200]) from e
    parts: list[str] = []
    sections: list[Section] = []
    pos = 0
    for number, page_text in enumerate(pages, start=1):
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        sections.append(Section(pos, pos + len(page_text), "", number))
        parts.append(page_text)
        pos += len(page_text)
    text = "".join(parts)
    title = str(meta_title).strip() or extract_plain(text).title
    return Extracted(text, title, tuple(sections) or (Section(0, 0),))


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    m = re.fullmatch(r"Heading (\d)", style_name)
    return int(m.group(1)) if m else None


def extract_docx(data: bytes, path: str) -> Extracted:
    """DOCX via python-docx: paragraphs and tables in document order; Title/Heading N paragraphs
    start sections."""
    try:
        import docx
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
        items: list[tuple[str, int | None]] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                style = block.style.name if block.style is not None else ""
                items.append((block.text.strip(), _heading_level(style or "")))
            else:
                for row in block.rows:
                    cells = [c.text.strip() for c in row.cells]
                    items.append((" | ".join(c for c in cells if c), None))
        core_title = (document.core_properties.title or "").strip()
    except Exception as e:  # zip, XML and python-docx errors on damaged files
        raise DocumentError(path, "unreadable", f"{type(e).__name__}: {e}"[:200]) from e
    parts: list[str] = []
    starts: list[tuple[int, str]] = [(0, "")]
    stack: list[tuple[int, str]] = []
    pos = 0
    for text, level in items:
        if not text:
            continue
        if parts:
            parts.append("\n")
            pos += 1
        if level is not None:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
            starts.append((pos, HEADING_JOIN.join(t for _, t in stack)))
        parts.append(text)
        pos += len(text)
    text = "".join(parts)
    if len(starts) > 1 and starts[1][0] == 0:
        starts = starts[1:]
    sections = tuple(
        Section(start, starts[i + 1][0] if i + 1 < len(starts) else len(text), heading)
        for i, (start, heading) in enumerate(starts)
    )
    title = core_title or next((s.heading.split(HEADING_JOIN)[0] for s in sections if s.heading), "")
    return Extracted(text, title, sections)
