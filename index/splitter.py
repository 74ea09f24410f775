"""Splitting documents into chunks sized in the embedder's tokens: each heading section is split
recursively (paragraphs, lines, Chinese and Latin sentence ends, full-width and plain spaces) the way
langchain's ``RecursiveCharacterTextSplitter`` does, with tokenizer work linear in the text, and
every chunk keeps its character span.

Also owns the text that is embedded and BM25-indexed for a chunk (title and heading path in front
of the chunk text). Heading detection per format lives in ``index.formats``.

Above ~300 lines because it is one splitter class whose recursion, token counting and span
bookkeeping share state per document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from domain.types import Chunk
from index.loaders import LoadedDocument

SPLITTER_VERSION = 6  # 3: PDF lines wrapped by the page width are joined (index.formats); 4: a
# Chinese wrap is judged by the width of its own page line; 5: HTML read by lxml without navigation
# and boilerplate, token counts summed over parts (each character tokenized once); 6: a chunk's
# language follows its document's unless its own text shows another (``chunk_lang``)
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "\u3000",
    "，",
    ", ",
    "、",
    " ",
    "",
]
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[A-Za-z]+")
# Words that running English text is full of and code, listings and tables of names are not.
_EN_FUNCTION_WORDS = frozenset(
    _WORD.findall(
        "the a an of to in is are and or for be that this with as by on it you your can not from if at "
        "which when use used will"
    )
)
MIN_CJK_IN_ZH_DOC = 8  # Chinese characters that make a chunk of a Chinese document Chinese


@dataclass(frozen=True)
class SplitterSettings:
    """Chunk size and overlap in embedder tokens; ``identity()`` goes into the index manifest."""

    chunk_tokens: int = 256
    overlap: float = 0.15

    def __post_init__(self) -> None:
        if self.chunk_tokens < 8:
            raise ValueError(f"chunk_tokens must be at least 8, got {self.chunk_tokens}")
        if not 0.0 <= self.overlap < 0.5:
            raise ValueError(f"overlap must be in [0, 0.5), got {self.overlap}")

    @property
    def overlap_tokens(self) -> int:
        return int(round(self.chunk_tokens * self.overlap))

    def identity(self) -> dict[str, int]:
        return {
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
            "version": SPLITTER_VERSION,
        }


def detect_lang(text: str) -> str:
    """'zh' when CJK characters are at least a quarter as many as Latin letters (about one per
    English word), else 'en'."""
    cjk = len(_CJK.findall(text))
    return "zh" if cjk and cjk * 4 >= len(_LATIN.findall(text)) else "en"


def _english_prose(text: str) -> bool:
    """Whether ``text`` reads as running English: at least three function words, a tenth of its
    words or more."""
    words = _WORD.findall(text)
    common = sum(1 for w in words if w.lower() in _EN_FUNCTION_WORDS)
    return common >= 3 and common * 10 >= len(words)


def chunk_lang(piece: str, doc_lang: str) -> str:
    """The language of a chunk of a document in ``doc_lang``: Chinese when Chinese dominates it
    (``detect_lang``) or, in a Chinese document, when it holds some Chinese
    (``MIN_CJK_IN_ZH_DOC`` characters); else English when it reads as running English; else the
    document's. A command listing, a configuration file or a table of package names in a Chinese
    manual is part of the Chinese manual, so it is searched and asked about with it; an English
    section of a bilingual document stays English.

    >>> chunk_lang("$ ls -l /var/mail\\ndrwxrwsr-x 2 root mail 4096 Oct 15 /var/mail", "zh")
    'zh'
    >>> chunk_lang("系统以保存在 /etc/motd 中的欢迎信息来开始。\\nDebian GNU/Linux 11 foo tty1 login: penguin", "zh")
    'zh'
    >>> chunk_lang("Gold members get advance replacement for the logger within two days of a fault.", "zh")
    'en'
    >>> chunk_lang("$ ls -l /var/mail", "en")
    'en'
    """
    if detect_lang(piece) == "zh":
        return "zh"
    if doc_lang == "zh" and len(_CJK.findall(piece)) >= MIN_CJK_IN_ZH_DOC:
        return "zh"
    return "en" if _english_prose(piece) else doc_lang


def index_text(chunk: Chunk) -> str:
    """The text that is embedded and BM25-indexed: title and heading path, then the chunk."""
    context = [chunk.title] if chunk.title and not chunk.heading.startswith(chunk.title) else []
    if chunk.heading:
        context.append(chunk.heading)
    head = " | ".join(context)
    return f"{head}\n{chunk.text}" if head else chunk.text


@dataclass(frozen=True)
class _Piece:
    """``body[start:end]`` holding ``tokens`` tokens (a sum over its parts when it was too long to
    count in one go)."""

    start: int
    end: int
    tokens: int


class DocumentSplitter:
    """Splits ``LoadedDocument``s with a recursive splitter whose tokenizer work is linear in the
    text: a piece short enough to be under the budget (judged by the characters per token seen
    so far in the document) is counted in one call, a longer one is cut at its first separator
    and counted as the sum of its parts. Every character is thus tokenized once (twice only in a
    piece that turned out denser than expected). Summing parts counts a token cut by a boundary
    once per part, so a chunk's count errs high, never low, and chunks stay within the budget.

    Merging follows langchain's ``RecursiveCharacterTextSplitter`` (separators kept at the end of
    their piece, pieces under the budget packed greedily, the overlap taken from the tail of the
    previous chunk), but on character spans, so chunks need no searching for."""

    def __init__(self, count_tokens: Callable[[str], int], settings: SplitterSettings) -> None:
        self.settings = settings
        self._count = count_tokens
        self._body = ""
        self._seen = [0, 0]  # characters and tokens counted so far in the document
        self._parts: dict[tuple[int, int, int], tuple[list[_Piece], int]] = {}

    def split(self, doc: LoadedDocument, *, digest: str) -> list[Chunk]:
        """Chunks of ``doc`` in reading order; ``text == doc.text[start:end]`` for every chunk.

        ``digest`` (the file's content hash) goes into the chunk ids with the path, so ids are
        stable for unchanged files and unique across files with equal content.
        """
        stem = hashlib.sha1(f"{doc.path}\0{digest}".encode()).hexdigest()[:12]
        chunks: list[Chunk] = []
        self._seen = [0, 0]  # each document starts afresh, so its chunks depend on it alone
        doc_lang = detect_lang(doc.text)
        for section in doc.sections:
            body = doc.text[section.start : section.end]
            if not body.strip():
                continue
            for start, end in self._spans(body):
                piece = doc.text[section.start + start : section.start + end]
                chunks.append(
                    Chunk(
                        chunk_id=f"{stem}-{len(chunks):05d}",
                        path=doc.path,
                        title=doc.title,
                        heading=section.heading,
                        text=piece,
                        start=section.start + start,
                        end=section.start + end,
                        page=section.page,
                        lang=chunk_lang(piece, doc_lang),
                    )
                )
        return chunks

    def _spans(self, body: str) -> list[tuple[int, int]]:
        """Character spans of the chunks of one section's ``body``."""
        self._body = body
        try:
            chunks = self._split(_Piece(0, len(body), 0), 0)
            return [(c.start, c.end) for c in self._absorb_fragments(chunks)]
        finally:
            self._body = ""
            self._parts.clear()

    def _short(self) -> int:
        """Pieces up to this many characters are counted whole: three quarters of the budget at
        the document's characters per token so far (2 before anything is counted; 1 to 6)."""
        chars, tokens = self._seen
        ratio = min(6.0, max(1.0, chars / tokens)) if tokens else 2.0
        return int(self.settings.chunk_tokens * ratio * 0.75)

    def _tokens(self, start: int, end: int, level: int) -> int:
        if end - start <= self._short() or level >= len(SEPARATORS):
            text = self._body[start:end]
            if not text.strip():
                return 0
            n = self._count(text)
            self._seen[0] += len(text)
            self._seen[1] += n
            return n
        return sum(p.tokens for p in self._children(start, end, level)[0])

    def _children(self, start: int, end: int, level: int) -> tuple[list[_Piece], int]:
        """The parts of ``body[start:end]`` at the first of ``SEPARATORS[level:]`` it contains
        (each separator stays at the end of its part), with the level their own parts use."""
        key = (start, end, level)
        found = self._parts.get(key)
        if found is not None:
            return found
        text = self._body[start:end]
        at = next((i for i in range(level, len(SEPARATORS)) if SEPARATORS[i] in text), len(SEPARATORS) - 1)
        sep = SEPARATORS[at]
        bounds: list[tuple[int, int]] = []
        if sep:
            pos = start
            for m in re.finditer(re.escape(sep), text):
                cut = start + m.end()
                if cut > pos:
                    bounds.append((pos, cut))
                    pos = cut
            if pos < end:
                bounds.append((pos, end))
            below = at + 1
        else:  # no separator left: fixed windows, each counted once
            width = max(1, min(self.settings.chunk_tokens // 4, (end - start) // 2))
            bounds = [(i, min(i + width, end)) for i in range(start, end, width)]
            below = at
        parts = [_Piece(lo, hi, self._tokens(lo, hi, below)) for lo, hi in bounds]
        self._parts[key] = (parts, below)
        return parts, below

    def _split(self, piece: _Piece, level: int) -> list[_Piece]:
        """Chunks of a piece over the budget: parts under it are packed, the others split at the
        next separator."""
        chunk_tokens = self.settings.chunk_tokens
        parts, below = self._children(piece.start, piece.end, level)
        out: list[_Piece] = []
        good: list[_Piece] = []
        for part in parts:
            if part.tokens < chunk_tokens:
                good.append(part)
                continue
            if good:
                out += self._merge(good)
                good = []
            if part.end - part.start <= 1:  # a single character over the budget stays whole
                out += self._strip([part])
            else:
                out += self._split(part, below)
        if good:
            out += self._merge(good)
        return out

    def _merge(self, parts: list[_Piece]) -> list[_Piece]:
        """Pack consecutive parts into chunks of at most ``chunk_tokens``; each chunk after the
        first starts with the previous one's last parts, up to ``overlap_tokens`` of them."""
        size, overlap = self.settings.chunk_tokens, self.settings.overlap_tokens
        chunks: list[_Piece] = []
        first, total = 0, 0
        for i, part in enumerate(parts):
            if total + part.tokens > size and i > first:
                chunks.append(_Piece(parts[first].start, parts[i - 1].end, total))
                while first < i and (total > overlap or (total + part.tokens > size and total > 0)):
                    total -= parts[first].tokens
                    first += 1
            total += part.tokens
        if first < len(parts):
            chunks.append(_Piece(parts[first].start, parts[-1].end, total))
        return self._strip(chunks)

    def _strip(self, chunks: list[_Piece]) -> list[_Piece]:
        """Chunks without leading and trailing whitespace; blank ones dropped."""
        out: list[_Piece] = []
        for c in chunks:
            text = self._body[c.start : c.end]
            lead = len(text) - len(text.lstrip())
            if lead == len(text):
                continue
            out.append(_Piece(c.start + lead, c.end - (len(text) - len(text.rstrip())), c.tokens))
        return out

    def _absorb_fragments(self, spans: list[_Piece]) -> list[_Piece]:
        """Join a fragment too small to stand alone (a heading line before a long table, a last
        short line) to its neighbour in the same section; the joined chunk may run over the size by
        at most the fragment's few tokens."""
        if len(spans) < 2:
            return spans
        tiny = max(4, self.settings.chunk_tokens // 8)
        out = list(spans)
        i = 0
        while i < len(out) and len(out) > 1:
            frag = out[i]
            if frag.tokens >= tiny:
                i += 1
                continue
            if i + 1 < len(out):
                after = out[i + 1]
                out[i : i + 2] = [_Piece(frag.start, max(frag.end, after.end), frag.tokens + after.tokens)]
            else:
                before = out[i - 1]
                out[i - 1 : i + 1] = [
                    _Piece(before.start, max(frag.end, before.end), frag.tokens + before.tokens)
                ]
                i -= 1
        return out
