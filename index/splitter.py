"""Splitting documents into chunks sized in the embedder's tokens: each heading section is split
recursively (paragraphs, lines, Chinese and Latin sentence ends, full-width and plain spaces) with
langchain's ``RecursiveCharacterTextSplitter``, and every chunk keeps its character span.

Also owns the text that is embedded and BM25-indexed for a chunk (title and heading path in front
of the chunk text). Heading detection per format lives in ``index.formats``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from domain.types import Chunk
from index.loaders import LoadedDocument

SPLITTER_VERSION = 4  # 3: PDF lines wrapped by the page width are joined (index.formats); 4: a
# Chinese wrap is judged by the width of its own page line
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


def index_text(chunk: Chunk) -> str:
    """The text that is embedded and BM25-indexed: title and heading path, then the chunk."""
    context = [chunk.title] if chunk.title and not chunk.heading.startswith(chunk.title) else []
    if chunk.heading:
        context.append(chunk.heading)
    head = " | ".join(context)
    return f"{head}\n{chunk.text}" if head else chunk.text


class DocumentSplitter:
    """Splits ``LoadedDocument``s; token counts are memoised per document so each piece is
    tokenised once however often the recursive splitter measures it."""

    def __init__(self, count_tokens: Callable[[str], int], settings: SplitterSettings) -> None:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self.settings = settings
        self._count = count_tokens
        self._memo: dict[str, int] = {}
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=settings.chunk_tokens,
            chunk_overlap=settings.overlap_tokens,
            length_function=self._length,
            strip_whitespace=True,
        )

    def _length(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            n = self._count(text) if text.strip() else 0
            self._memo[text] = n
        return n

    def split(self, doc: LoadedDocument, *, digest: str) -> list[Chunk]:
        """Chunks of ``doc`` in reading order; ``text == doc.text[start:end]`` for every chunk.

        ``digest`` (the file's content hash) goes into the chunk ids with the path, so ids are
        stable for unchanged files and unique across files with equal content.
        """
        stem = hashlib.sha1(f"{doc.path}\0{digest}".encode()).hexdigest()[:12]
        chunks: list[Chunk] = []
        try:
            for section in doc.sections:
                body = doc.text[section.start : section.end]
                if not body.strip():
                    continue
                for start, end in self._absorb_fragments(body, self._spans(body)):
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
                            lang=detect_lang(piece),
                        )
                    )
        finally:
            self._memo.clear()
        return chunks

    def _spans(self, body: str) -> list[tuple[int, int]]:
        """Character spans of the pieces of ``body``. Each piece is a substring of ``body``; when it
        occurs more than once (repeated sentences), the occurrence nearest to where the overlap
        says the piece should start is taken."""
        spans: list[tuple[int, int]] = []
        overlap = self.settings.overlap_tokens
        for piece in self._splitter.split_text(body):
            if spans:
                prev_start, prev_end = spans[-1]
                prev_len = prev_end - prev_start
                est = (
                    round(prev_len * overlap / max(1, self._length(body[prev_start:prev_end])))
                    if overlap
                    else 0
                )
                expected, lo = prev_end - est, prev_start + 1
            else:
                prev_end, expected, lo = -1, 0, 0
            best, at = -1, body.find(piece, lo)
            while at >= 0:
                if at + len(piece) > prev_end and (best < 0 or abs(at - expected) < abs(best - expected)):
                    best = at
                if at >= expected:
                    break
                at = body.find(piece, at + 1)
            if best < 0:  # the splitter always returns substrings; guard anyway
                continue
            spans.append((best, best + len(piece)))
        return spans

    def _absorb_fragments(self, body: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Join a fragment too small to stand alone (a heading line before a long table, a last
        short line) to its neighbour in the same section; the joined chunk may run over the size by
        at most the fragment's few tokens."""
        if len(spans) < 2:
            return spans
        tiny = max(4, self.settings.chunk_tokens // 8)
        out = list(spans)
        i = 0
        while i < len(out) and len(out) > 1:
            start, end = out[i]
            if self._length(body[start:end]) >= tiny:
                i += 1
                continue
            if i + 1 < len(out):
                out[i : i + 2] = [(start, max(end, out[i + 1][1]))]
            else:
                out[i - 1 : i + 1] = [(out[i - 1][0], max(end, out[i - 1][1]))]
                i -= 1
        return out
