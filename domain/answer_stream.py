"""What one answer request hands back: the retrieval a question got, the ``AnswerStream`` that
yields text pieces and then the finished ``Answer``, the four-mode ``Comparison``, and mode-name
parsing. The answer service that produces them is ``domain.pipeline``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field

from domain.errors import ConfigError, GenerationError
from domain.types import Answer, Hit, Mode, RouteDecision

AUTO = "auto"


@dataclass(frozen=True)
class Retrieval:
    """One question's retrieved passages (rank order), how long retrieval took, and the question's
    translations the search used (language -> text; ``domain.crosslingual``)."""

    question: str
    hits: list[Hit]
    retrieval_s: float = 0.0
    searched_as: dict[str, str] = field(default_factory=dict)


def parse_mode(mode: Mode | str) -> Mode | None:
    """``Mode`` for a mode name, None for "auto".

    Raises:
        ConfigError: an unknown name.
    """
    if isinstance(mode, Mode):
        return mode
    name = str(mode).strip().lower()
    if name == AUTO:
        return None
    try:
        return Mode(name)
    except ValueError as e:
        raise ConfigError(f"unknown mode {mode!r} — use auto, prompt, rag, tuned or tuned_rag") from e


def close_source(source: object) -> None:
    """Close ``source`` if it can be closed (a generator stops where it is and runs its cleanup)."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


class AnswerStream:
    """One answer in the making. ``decision`` and ``passages`` are known at once; ``pieces`` yields
    the text as it is generated (one shared iterator); ``answer()`` finishes the stream if needed
    and returns the complete ``Answer``; ``close()`` abandons it (the generator is told to stop)."""

    def __init__(
        self, decision: RouteDecision, passages: Sequence[Hit], run: Generator[str, None, Answer]
    ) -> None:
        self.decision = decision
        self.passages = list(passages)
        self._answer: Answer | None = None
        self._run = run
        self._pieces = self._drive(run)

    def _drive(self, run: Generator[str, None, Answer]) -> Iterator[str]:
        self._answer = yield from run

    @property
    def pieces(self) -> Iterator[str]:
        return self._pieces

    def answer(self) -> Answer:
        for _ in self._pieces:
            pass
        if self._answer is None:
            raise GenerationError("the answer stream was closed before it finished — ask again")
        return self._answer

    def close(self) -> None:
        self._run.close()


@dataclass
class Comparison:
    """All four modes for one question over one shared retrieval; ``decision`` is the router's pick."""

    question: str
    decision: RouteDecision
    passages: list[Hit]
    answers: list[Answer]
    retrieval_s: float = 0.0


def stream_of(answer: Answer) -> AnswerStream:
    """A finished answer as a one-piece stream."""

    def run() -> Generator[str, None, Answer]:
        yield answer.text
        return answer

    return AnswerStream(RouteDecision(answer.mode, answer.reason), answer.passages, run())
