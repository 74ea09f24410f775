"""The Ask and Compare pages' backend: one ``Assistant`` per process from
``app.wiring.answer.build_assistant`` (the object ``hybrid ask`` / ``hybrid compare`` use), built on
the first question so pages render before any model loads. ``status`` reads only small files.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.types import RouteDecision

if TYPE_CHECKING:
    from domain.types import Answer, Hit, Mode

logger = logging.getLogger(__name__)


@dataclass
class CompareRun:
    """A started comparison over one ``Retrieval`` (see ``app.page_services.CompareStart``)."""

    assistant: Any
    question: str
    decision: RouteDecision
    retrieval: Any

    @property
    def passages(self) -> list[Hit]:
        return list(self.retrieval.hits)

    def start(self, mode: Mode) -> Any:
        from domain.router import MODE_LABELS

        decision = self.decision if mode == self.decision.mode else RouteDecision(
            mode, f"{MODE_LABELS[mode]}: shown for comparison", overridden=True
        )
        return self.assistant.stream_with(self.question, decision, self.retrieval)


class RealAskBackend:
    """Lazily builds the assistant (models load once, under a lock) and forwards to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._assistant: Any = None

    def assistant(self) -> Any:
        with self._lock:
            if self._assistant is None:
                from app.wiring.answer import build_assistant

                logger.info("building the assistant for the app")
                self._assistant = build_assistant(self.settings)
            return self._assistant

    def status(self) -> dict[str, Any]:
        from app.wiring.training import current_adapter

        name = self.settings.index.name
        built = (self.settings.ws.index(name) / "CURRENT").is_file()
        _, label = current_adapter(self.settings)
        return {
            "index": name if built else f"{name} (not built — see the Index page)",
            "adapter": {None: "none yet (train one on the Train page)", "default": "bundled default"}.get(
                label, label
            ),
            "backend": self.settings.generation.backend,
        }

    def stream(self, question: str, mode: str) -> Any:
        return self.assistant().stream(question, mode=mode)

    def compare(self, question: str) -> CompareRun:
        """The first half of ``Assistant.compare`` (one retrieval, the router's pick); each mode is
        then streamed with ``Assistant.stream_with`` over that same retrieval."""
        from domain.errors import ConfigError

        question = question.strip()
        if not question:
            raise ConfigError("the question is empty — type a question first")
        assistant = self.assistant()
        retrieval = assistant.retrieve(question)
        return CompareRun(assistant, question, assistant.decide(question, "auto", retrieval), retrieval)

    def save_correction(self, answer: Answer, corrected: str) -> int:
        return int(self.assistant().correct(answer, corrected))
