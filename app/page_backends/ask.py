"""The Ask and Compare pages' backend: one ``Assistant`` per process from
``app.wiring.answer.build_assistant`` (the object ``hybrid ask`` / ``hybrid compare`` use), built on
the first question so pages render before any model loads. ``status`` reads only small files.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from app.settings import Settings

if TYPE_CHECKING:
    from domain.types import Answer

logger = logging.getLogger(__name__)


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

    def compare(self, question: str) -> Any:
        return self.assistant().compare(question)

    def save_correction(self, answer: Answer, corrected: str) -> int:
        return int(self.assistant().correct(answer, corrected))
