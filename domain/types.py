"""Plain value types shared by the RAG half, the fine-tune half and the app.

Owns data shapes only; behaviour lives in the modules that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Mode(StrEnum):
    """The four answering modes."""

    PROMPT = "prompt"
    RAG = "rag"
    TUNED = "tuned"
    TUNED_RAG = "tuned_rag"

    @property
    def uses_retrieval(self) -> bool:
        return self in (Mode.RAG, Mode.TUNED_RAG)

    @property
    def uses_adapter(self) -> bool:
        return self in (Mode.TUNED, Mode.TUNED_RAG)


ALL_MODES: tuple[Mode, ...] = (Mode.PROMPT, Mode.RAG, Mode.TUNED, Mode.TUNED_RAG)


@dataclass(frozen=True)
class Chunk:
    """One piece of one document, as stored in an index.

    ``path`` is relative to the indexed folder (POSIX separators); ``start``/``end`` are the
    character span of ``text`` in the document's extracted text; ``heading`` is the heading path
    joined with " > "; ``page`` is 1-based for PDFs and None elsewhere.
    """

    chunk_id: str
    path: str
    title: str
    heading: str
    text: str
    start: int
    end: int
    page: int | None = None
    lang: str = "en"


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its scores; ``rank`` is the 1-based fused rank."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    """An answer sentence matched to the passage that supports it."""

    sentence: str
    chunk_id: str
    path: str
    heading: str
    span: str
    score: float


@dataclass(frozen=True)
class RouteDecision:
    """The router's pick and the one-line reason shown to the user."""

    mode: Mode
    reason: str
    overridden: bool = False


@dataclass
class Timing:
    """Where an answer's time went, in seconds, plus generation throughput."""

    retrieval_s: float = 0.0
    first_token_s: float = 0.0  # the first piece shown
    total_s: float = 0.0
    tokens: int = 0
    # The model's own first piece, when the first piece shown came later (an answer line held
    # back for translation), and the time spent translating that line.
    model_first_s: float | None = None
    translate_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        start = self.first_token_s if self.model_first_s is None else self.model_first_s
        gen_s = self.total_s - start - self.translate_s
        return self.tokens / gen_s if gen_s > 0 and self.tokens > 1 else 0.0


@dataclass
class Answer:
    """A complete answer in one mode."""

    question: str
    mode: Mode
    text: str
    reason: str = ""
    passages: list[Hit] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    from_correction: bool = False
    warnings: list[str] = field(default_factory=list)
    # The sentence the model quoted before answering (retrieval modes), as the citation of its passage.
    evidence: Citation | None = None
    # The question as translated for searching passages in other languages (language -> text).
    searched_as: dict[str, str] = field(default_factory=dict)
    # The answer line as the model wrote it, when ``text`` shows it translated into the question's
    # language (``domain.answer_language``); else empty.
    translated_from: str = ""
    # The model that answered when it was not the generator (the larger model answering across
    # languages, ``domain.pipeline``); else empty.
    answered_by: str = ""
