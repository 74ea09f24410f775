"""Showing text that did not come from us (documents, model answers, file names) without letting it
act as markup: Markdown escaping for streamed answers, plain-text span markers for passages, and
the small formatting helpers the pages share. Nothing here is ever rendered as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Every ASCII punctuation character CommonMark lets a backslash escape that can start markup in
# Streamlit's Markdown (emphasis, links, images, headings, lists, tables, HTML, LaTeX, directives).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&\"'^])")
SPAN_OPEN = "⟦"
SPAN_CLOSE = "⟧"


def md_escape(text: str) -> str:
    """``text`` as Markdown that displays literally; line breaks are kept as hard breaks."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def escaped_stream(pieces: Iterable[str]) -> Iterator[str]:
    """Escape each streamed piece (escaping is per character, so pieces concatenate safely)."""
    for piece in pieces:
        if piece:
            yield md_escape(piece)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def locate_span(text: str, span: str) -> tuple[int, int] | None:
    """Character offsets of ``span`` in ``text`` (exact, then ignoring whitespace differences)."""
    span = span.strip()
    if not span:
        return None
    at = text.find(span)
    if at >= 0:
        return at, at + len(span)
    words = [re.escape(w) for w in span.split()]
    if not words:
        return None
    m = re.search(r"\s+".join(words), text)
    return (m.start(), m.end()) if m else None


def mark_span(text: str, span: str | None) -> tuple[str, bool]:
    """``text`` with the matched ``span`` wrapped in ⟦ ⟧ markers (plain text); True when found."""
    where = locate_span(text, span or "")
    if where is None:
        return text, False
    lo, hi = where
    return f"{text[:lo]}{SPAN_OPEN}{text[lo:hi]}{SPAN_CLOSE}{text[hi:]}", True


def best_sentence(text: str, query: str) -> str:
    """The sentence of ``text`` sharing the most words (or CJK characters) with ``query``.

    Used to point at the matched span when an answer cited nothing from a passage.
    """
    # ASCII stops end a sentence only before whitespace ("v2.7.1" stays whole); CJK stops always do
    sentences = [s for s in re.split(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n+", text) if s and s.strip()]
    if not sentences:
        return ""
    terms = set(re.findall(r"[a-z0-9]{3,}|[\u3400-\u9fff]", query.lower()))
    if not terms:
        return ""

    def overlap(sentence: str) -> int:
        return len(terms & set(re.findall(r"[a-z0-9]{3,}|[\u3400-\u9fff]", sentence.lower())))

    best = max(sentences, key=overlap)
    return best.strip() if overlap(best) > 0 else ""


def where(path: str, heading: str = "", page: int | None = None) -> str:
    """``path p.N § heading`` — a passage's location as one plain line."""
    out = path
    if page:
        out += f" p.{page}"
    if heading:
        out += f" § {heading}"
    return out


def short(text: str, limit: int = 160) -> str:
    text = _squash(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def duration(value_s: float | None) -> str:
    """An ETA or elapsed time as ``1h02m``, ``3m05s`` or ``42s``."""
    if value_s is None:
        return "–"
    total = max(0, int(round(value_s)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "–"
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def parity(golden: dict) -> str:
    """An export's golden check as "4/5 identical (tuned_rag)"; reports from before the mode was
    kept were asked in the tuned mode."""
    return (
        f"{golden.get('identical', '?')}/{golden.get('n', '?')} identical ({golden.get('mode') or 'tuned'})"
    )
