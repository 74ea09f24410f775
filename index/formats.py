"""Per-format text extraction: turns one file's content into extracted text, a title and heading
sections whose character spans index into that text.

Markdown keeps its raw text and takes sections from langchain's ``MarkdownHeaderTextSplitter``;
HTML is parsed once by lxml and walked in reading order, leaving navigation and boilerplate out;
PDF gives one section per page;
DOCX follows its Heading styles. Finding, reading and decoding files is ``index.loaders``' job.

Above ~300 lines because it holds one extractor per format (Markdown, HTML — the longest, about
220 lines with its reading-order walk —, PDF, DOCX) behind one result shape (``Extracted``); a
module per format would repeat that shape's helpers.
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


# Elements never read: code, styling, embedded objects, and the page's navigation and boilerplate.
_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "head",
        "title",
        "iframe",
        "object",
        "embed",
        "canvas",
        "nav",
        "aside",
        "footer",
        "button",
        "select",
        "textarea",
        "input",
        "dialog",
    }
)
_DROP_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar"}
)
# class or id words of navigation and boilerplate blocks (DocBook's navheader/navfooter, AsciiDoc's
# footer, Sphinx's sidebar and heading anchors, common site themes).
_DROP_NAMES = frozenset(
    {
        "navheader",
        "navfooter",
        "navbar",
        "navigation",
        "footer",
        "sidebar",
        "sphinxsidebar",
        "breadcrumb",
        "breadcrumbs",
        "skip-link",
        "headerlink",
    }
)
# Dropped too, unless that leaves the page without text (a page that is only a table of contents).
_SOFT_DROP_NAMES = frozenset({"toc"})
_HEADING_LEVELS = {f"h{i}": i for i in range(1, 7)}
# Block elements: their text starts on a new paragraph ("\n\n"); line elements on a new line.
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "caption",
        "center",
        "details",
        "div",
        "dl",
        "fieldset",
        "figcaption",
        "figure",
        "form",
        "hr",
        "html",
        "listing",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "ul",
        "xmp",
    }
)
_LINE_TAGS = frozenset({"br", "dd", "dt", "li", "tr", "option"})
_ITEM_TAGS = frozenset({"li", "dd", "dt", "td", "th"})  # paragraphs inside these are lines
_VERBATIM_TAGS = frozenset({"pre", "listing", "xmp", "plaintext"})
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_XML_INCOMPATIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_HTML_SPACE = re.compile("[ \t\n\r\f\v\xa0]+")  # not U+3000: the splitter cuts Chinese on it
_NO_BREAK, _LINE, _PARA = 0, 1, 2


class _HtmlText:
    """Collects a parsed page's text in reading order: whitespace collapsed outside ``pre``, one
    line per line element, a blank line between blocks, every heading on its own line starting a
    section. Breaks and separators are owed and written only before the next text, so empty
    elements leave no blank lines."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.brk = _NO_BREAK  # the break owed before the next text
        self.space = False  # a space is owed before the next text on this line
        self.cell = False  # a table-cell separator is owed before the next text
        self.line_open = False  # text was written since the last break
        self.after_heading = False  # a heading just ended: the next block follows on the next line
        self.sections: list[tuple[int, int, str]] = []  # (start, end, heading path)
        self.stack: list[tuple[int, str]] = []  # open heading path (level, text)
        self.heading_mark: int | None = None  # parts index where the open heading's text begins
        self.heading_start = 0
        self.before_heading = 0  # where the text before the open heading ends
        self.verbatim: list[str] | None = None

    def request(self, brk: int) -> None:
        if self.after_heading:
            brk = min(brk, _LINE)
        if self.parts and brk > self.brk:
            self.brk = brk
        if brk:
            self.space = self.cell = self.line_open = False

    def _emit(self, s: str) -> None:
        """Write ``s`` after whatever break or separator is owed."""
        if self.brk:
            self._put("\n\n" if self.brk == _PARA else "\n")
            self.line_open = False
        elif self.line_open and self.cell:
            self._put(" | ")
        elif self.line_open and self.space:
            self._put(" ")
        self.brk, self.cell, self.space, self.after_heading = _NO_BREAK, False, False, False
        if self.heading_mark == len(self.parts):
            self.heading_start = self.pos
        self._put(s)
        self.line_open = True

    def _put(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)

    def write(self, text: str) -> None:
        """Inline text: whitespace runs become one space, none at a line's start or end."""
        if self.verbatim is not None:
            self.verbatim.append(text)
            return
        body = _HTML_SPACE.sub(" ", text)
        if body[:1] == " ":
            self.space = True
        stripped = body.strip(" ")
        if stripped:
            self._emit(stripped)
            self.space = body[-1] == " "

    def start_verbatim(self, brk: int) -> None:
        self.request(brk)
        self.verbatim = []

    def end_verbatim(self, brk: int) -> None:
        """A ``pre`` block's lines as they are (indentation kept, trailing spaces and blank edge
        lines dropped); a blank line inside it stays a paragraph break."""
        raw, self.verbatim = "".join(self.verbatim or []), None
        lines = [ln.rstrip() for ln in raw.expandtabs(4).split("\n")]
        first = True
        for line in lines:
            if not line:
                if not first:
                    self.request(_PARA)
                continue
            if not first and self.brk == _NO_BREAK:
                self.request(_LINE)
            self._emit(line)
            first = False
        self.request(brk)

    def start_heading(self) -> None:
        self.request(_PARA)
        self.after_heading = False
        self.heading_mark = len(self.parts) + (1 if self.brk else 0)
        self.heading_start = self.before_heading = self.pos

    def end_heading(self, level: int) -> None:
        mark, self.heading_mark = self.heading_mark, None
        if mark is None or mark >= len(self.parts):  # an empty heading
            return
        title = _HTML_SPACE.sub(" ", "".join(self.parts[mark:])).strip().rstrip("\xb6").strip()
        if not title:
            return
        self._close_section(self.before_heading)
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        self.sections.append((self.heading_start, -1, HEADING_JOIN.join(t for _, t in self.stack)))
        self.request(_LINE)
        self.after_heading = True

    def _close_section(self, end: int) -> None:
        if self.sections:
            start, _, heading = self.sections[-1]
            self.sections[-1] = (start, end, heading)
        elif end > 0:
            self.sections.append((0, end, ""))

    def result(self, title: str) -> Extracted:
        text = "".join(self.parts)
        self._close_section(len(text))
        found = tuple(Section(s, e, h) for s, e, h in self.sections if e > s)
        sections = found or (Section(0, len(text)),)
        if not title:
            title = next((s.heading.split(HEADING_JOIN)[0] for s in sections if s.heading), "")
        return Extracted(text, title, sections)


def _dropped(el: object, tag: str, inside_main: int, soft: bool) -> bool:
    get = el.get  # type: ignore[attr-defined]
    if tag in _DROP_TAGS:
        return True
    if tag == "header" and not inside_main:  # a page banner; an article's own header is kept
        return True
    if get("hidden") is not None or get("aria-hidden") == "true":
        return True
    role = get("role")
    if role and role.strip().lower() in _DROP_ROLES:
        return True
    names = f"{get('class') or ''} {get('id') or ''}".lower().split()
    return any(n in _DROP_NAMES or (soft and n in _SOFT_DROP_NAMES) for n in names)


def _walk(root: object, *, soft: bool) -> _HtmlText:
    from lxml import etree

    out = _HtmlText()
    walker = etree.iterwalk(root, events=("start", "end", "comment"))
    skipped: set[int] = set()
    inside_main = items = 0
    for event, el in walker:
        if event == "comment":  # comments and processing instructions: only their tail is text
            if el.tail:
                out.write(el.tail)
            continue
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if event == "start":
            if _dropped(el, tag, inside_main, soft):
                skipped.add(id(el))
                walker.skip_subtree()
                continue
            if tag in ("main", "article"):
                inside_main += 1
            level = _HEADING_LEVELS.get(tag)
            if level is not None and out.verbatim is None:
                out.start_heading()
            elif tag in _VERBATIM_TAGS and out.verbatim is None:
                out.start_verbatim(_LINE if items else _PARA)
            elif tag in _LINE_TAGS:
                out.request(_LINE)
            elif tag in _BLOCK_TAGS:
                out.request(_LINE if items else _PARA)
            elif tag in ("td", "th"):
                out.cell = True
            if tag in _ITEM_TAGS:
                items += 1
            if el.text:
                out.write(el.text)
            continue
        if id(el) in skipped:
            skipped.discard(id(el))
        else:
            if tag in ("main", "article"):
                inside_main -= 1
            if tag in _ITEM_TAGS:
                items -= 1
            level = _HEADING_LEVELS.get(tag)
            if level is not None and out.verbatim is None:
                out.end_heading(level)
            elif tag in _VERBATIM_TAGS and out.verbatim is not None:
                out.end_verbatim(_LINE if items else _PARA)
            elif tag == "dd" or (tag in _BLOCK_TAGS and not items):
                out.request(_PARA)
            elif tag in _LINE_TAGS and tag != "br":
                out.request(_LINE)
        if el.tail:
            out.write(el.tail)
    return out


def extract_html(markup: str, path: str = "") -> Extracted:
    """HTML, parsed once by lxml (libxml2): scripts, styles, navigation, banners, footers and
    sidebars left out; each heading starts a section and opens its own line; blocks are separated
    by a blank line, list items and table rows by a line break (cells by " | ").

    Raises:
        DocumentError: reason 'unreadable' when libxml2 cannot make a tree of all of it.
    """
    from lxml import etree, html

    markup = _XML_INCOMPATIBLE.sub(" ", _XML_DECLARATION.sub("", markup, count=1))
    if not markup.strip():
        return Extracted("", "", (Section(0, 0),))
    parser = html.HTMLParser(huge_tree=True)  # nesting to 2048 levels, text nodes over 10 MB
    try:
        root = html.document_fromstring(markup, parser=parser)
    except etree.ParserError:  # "Document is empty": comments or a doctype only
        return Extracted("", "", (Section(0, 0),))
    except (ValueError, etree.LxmlError) as e:
        raise DocumentError(
            path, "unreadable", f"not parseable as HTML ({type(e).__name__}: {e})"[:200]
        ) from e
    if any(err.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT for err in parser.error_log):
        raise DocumentError(
            path,
            "unreadable",
            "elements nested deeper than libxml2's limit of 2048 levels (the rest of the page would be "
            "lost) — save the page as text or fix its markup",
        )
    title_el = root.find("head/title")
    title = _HTML_SPACE.sub(" ", title_el.text_content()).strip() if title_el is not None else ""
    out = _walk(root, soft=True)
    if not "".join(out.parts).strip():
        out = _walk(root, soft=False)
    return out.result(title)


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
