"""Render the corpus's PDF and DOCX documents from their Markdown sources.

Every ``corpus/src/**/NAME.pdf.md`` becomes a PDF (fpdf2, core fonts, so English/Latin-1 text
only) and every ``corpus/src/**/NAME.docx.md`` becomes a Word file (python-docx; any language,
Chinese included). Output goes under ``corpus/docs/``.

Source format
-------------
The first line of a source names the output, relative to ``corpus/docs/``::

    <!-- out: service/rma-process-zh.docx -->

A value without a ``.pdf``/``.docx`` suffix is taken as a folder and the file is named after the
source (``support/`` + ``returns.pdf.md`` -> ``support/returns.pdf``). Further optional lines of
the same shape may follow at the top: ``<!-- title: ... -->`` (document title metadata; default:
the first ``#`` heading) and ``<!-- author: ... -->`` (default: Lanting Instruments Co., Ltd.).

The body is a small Markdown subset: ``#``/``##``/``###`` headings, paragraphs (consecutive lines
are joined), ``- `` bullet and ``1. `` numbered list items, pipe tables (``| a | b |`` with a
``|---|---|`` line under the header), and ``---`` rules (ignored). ``**bold**`` and backticks are
dropped to plain text. Other HTML comments are ignored.

Output is deterministic: fixed creation dates, content-derived PDF ids, and DOCX zip entries with a
fixed timestamp, so re-running on unchanged sources gives byte-identical files.

Usage: ``python corpus/build_docs.py [--src DIR] [--out DIR] [--only pdf|docx]``

Above ~300 lines because it renders two formats (PDF and DOCX) from one small Markdown dialect, and
both renderers read that dialect's parser here.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_DATE = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
ZIP_DATE = (2025, 3, 1, 9, 0, 0)
DEFAULT_AUTHOR = "Lanting Instruments Co., Ltd."
META_RE = re.compile(r"^<!--\s*(\w+)\s*:\s*(.*?)\s*-->\s*$")
# Typographic characters that core PDF fonts (Latin-1) cannot draw, with plain replacements.
PDF_REPLACE = {
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2192": "->",
    "\u00a0": " ",
    "\u2022": "-",
    "\u2212": "-",
    "\u2248": "~",
}


@dataclass
class Block:
    """One rendered unit: kind is heading, para, bullet, number, or table."""

    kind: str
    text: str = ""
    level: int = 0
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    path: Path
    out: str
    meta: dict[str, str]
    blocks: list[Block]

    @property
    def title(self) -> str:
        if "title" in self.meta:
            return self.meta["title"]
        return next((b.text for b in self.blocks if b.kind == "heading"), self.path.stem)


def inline(text: str) -> str:
    """Drop inline Markdown markers (bold, code) and keep the words."""
    return text.replace("**", "").replace("`", "").strip()


def split_row(line: str) -> list[str]:
    cells = line.strip().strip("|").split("|")
    return [inline(c) for c in cells]


def parse(path: Path) -> Source:
    """Read a ``*.pdf.md`` / ``*.docx.md`` source into its metadata and blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := META_RE.match(lines[i].strip())):
        meta[m.group(1).lower()] = m.group(2)
        i += 1
    if "out" not in meta:
        raise SystemExit(f"{path}: first line must be '<!-- out: folder/name.ext -->'")
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("para", inline(" ".join(para))))
            para.clear()

    while i < len(lines):
        raw = lines[i]
        s = raw.strip()
        i += 1
        if not s or s == "---" or (s.startswith("<!--") and s.endswith("-->")):
            flush()
            continue
        if m := re.match(r"^(#{1,6})\s+(.*)$", s):
            flush()
            blocks.append(Block("heading", inline(m.group(2)), level=len(m.group(1))))
        elif s.startswith("|"):
            flush()
            rows = [split_row(s)]
            while i < len(lines) and lines[i].strip().startswith("|"):
                row = lines[i].strip()
                i += 1
                if re.fullmatch(r"\|?[\s:|-]+\|?", row):
                    continue  # the header separator line
                rows.append(split_row(row))
            width = max(len(r) for r in rows)
            blocks.append(Block("table", rows=[r + [""] * (width - len(r)) for r in rows]))
        elif m := re.match(r"^[-*+]\s+(.*)$", s):
            flush()
            blocks.append(Block("bullet", inline(m.group(1))))
        elif m := re.match(r"^(\d+)[.)]\s+(.*)$", s):
            flush()
            blocks.append(Block("number", inline(m.group(2)), level=int(m.group(1))))
        else:
            para.append(s)
    flush()
    return Source(path, meta["out"], meta, blocks)


def out_path(src: Source, docs: Path, suffix: str) -> Path:
    """Where a source renders to: the ``out`` value, or that folder plus the source's name."""
    out = src.out.strip().strip("/")
    if out.endswith(suffix):
        return docs / out
    name = src.path.name[: -len(suffix + ".md")] + suffix
    return docs / out / name


# ---------------------------------------------------------------- PDF


def pdf_text(text: str, where: Path) -> str:
    for a, b in PDF_REPLACE.items():
        text = text.replace(a, b)
    bad = sorted({c for c in text if ord(c) > 255})
    if bad:
        raise SystemExit(f"{where}: PDF sources must be Latin-1 (core fonts); found {''.join(bad)!r}")
    return text


def render_pdf(src: Source, target: Path) -> None:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    def t(x: str) -> str:
        return pdf_text(x, src.path)

    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(t(src.title))
    pdf.set_author(t(src.meta.get("author", DEFAULT_AUTHOR)))
    pdf.set_creator("corpus/build_docs.py")
    pdf.set_producer("fpdf2")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    sizes = {1: 17, 2: 13.5, 3: 11.5}
    for b in src.blocks:
        if b.kind == "heading":
            pdf.ln(2 if b.level > 1 else 0)
            pdf.set_font("Helvetica", "B", sizes.get(b.level, 11))
            pdf.multi_cell(width, 7, t(b.text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        elif b.kind == "para":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(width, 5.4, t(b.text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif b.kind in ("bullet", "number"):
            pdf.set_font("Helvetica", "", 10.5)
            mark = "-" if b.kind == "bullet" else f"{b.level}."
            pdf.set_x(pdf.l_margin + 3)
            pdf.cell(7, 5.4, mark)
            pdf.multi_cell(width - 10, 5.4, t(b.text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        elif b.kind == "table":
            pdf.set_font("Helvetica", "", 9.5)
            with pdf.table(
                line_height=5.2,
                headings_style=FontFace(emphasis="BOLD", fill_color=(225, 232, 240)),
                text_align="LEFT",
            ) as table:
                for row in b.rows:
                    r = table.row()
                    for cell in row:
                        r.cell(t(cell))
            pdf.ln(3)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(pdf.output()))


# ---------------------------------------------------------------- DOCX


def _east_asian_font(style: object, name: str = "SimSun") -> None:
    from docx.oxml.ns import qn

    rpr = style.element.get_or_add_rPr()  # type: ignore[attr-defined]
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), name)


def render_docx(src: Source, target: Path) -> None:
    import docx

    doc = docx.Document()
    for name in ("Normal", "Heading 1", "Heading 2", "Heading 3", "Title"):
        _east_asian_font(doc.styles[name])
    props = doc.core_properties
    props.title = src.title
    props.author = src.meta.get("author", DEFAULT_AUTHOR)
    props.last_modified_by = props.author
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1
    for b in src.blocks:
        if b.kind == "heading":
            doc.add_heading(b.text, level=min(b.level, 4))
        elif b.kind == "para":
            doc.add_paragraph(b.text)
        elif b.kind == "bullet":
            doc.add_paragraph(b.text, style="List Bullet")
        elif b.kind == "number":
            doc.add_paragraph(f"{b.level}. {b.text}")
        elif b.kind == "table":
            table = doc.add_table(rows=len(b.rows), cols=len(b.rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(b.rows):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
    buf = io.BytesIO()
    doc.save(buf)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_fixed_zip(buf.getvalue()))


def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip with a fixed timestamp on every entry, so the bytes depend on content only."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            zout.writestr(fixed, zin.read(info.filename))
    return out.getvalue()


# ---------------------------------------------------------------- main


def build(src_dir: Path, docs_dir: Path, only: str | None = None) -> list[Path]:
    """Render every source under ``src_dir``; returns the written paths in sorted order."""
    written: list[Path] = []
    for suffix, render in ((".pdf", render_pdf), (".docx", render_docx)):
        if only and suffix != "." + only:
            continue
        for path in sorted(src_dir.rglob(f"*{suffix}.md")):
            src = parse(path)
            target = out_path(src, docs_dir, suffix)
            render(src, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=HERE / "src", help="folder with *.pdf.md / *.docx.md")
    ap.add_argument("--out", type=Path, default=HERE / "docs", help="the corpus docs folder")
    ap.add_argument("--only", choices=("pdf", "docx"), default=None)
    args = ap.parse_args(argv)
    written = build(args.src, args.out, args.only)
    for p in written:
        try:
            shown = p.relative_to(args.out)
        except ValueError:
            shown = p
        print(f"wrote {shown} ({p.stat().st_size:,} bytes)")
    print(f"{len(written)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
