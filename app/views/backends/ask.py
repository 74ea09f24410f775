"""The Ask and Compare pages' backend: one ``Assistant`` per process from
``app.wiring.answer.build_assistant`` (the object ``hybrid ask`` / ``hybrid compare`` use), built on
the first question so pages render before any model loads, and rebuilt when the index, the adapter
in use or the router changes. ``status`` reads only small files.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain.types import RouteDecision

if TYPE_CHECKING:
    from domain.types import Answer, Hit, Mode

logger = logging.getLogger(__name__)


@dataclass
class CompareRun:
    """A started comparison over one ``Retrieval`` (see ``app.views.services.CompareStart``)."""

    assistant: Any
    question: str
    decision: RouteDecision
    retrieval: Any

    @property
    def passages(self) -> list[Hit]:
        return list(self.retrieval.hits)

    def start(self, mode: Mode) -> Any:
        from domain.router import compared

        return self.assistant.stream_with(self.question, compared(mode, self.decision), self.retrieval)


class RealAskBackend:
    """Lazily builds the assistant (models load once, under a lock) and forwards to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._assistant: Any = None
        self._built_for: tuple[str, ...] = ()

    def _world(self) -> tuple[str, ...]:
        """What the assistant was built from: the live index generation, the adapter in use and
        the router thresholds. A change (re-index, activate, rollback, refit) rebuilds it; the
        embedder, opened indexes and models stay cached in the wiring."""
        from app.wiring.active_adapter import current_adapter
        from app.wiring.answer import router_path
        from app.wiring.collections import get_collection
        from app.wiring.index import index_dir

        def read(path: Path) -> str:
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError:
                return ""

        folder, label = current_adapter(self.settings)
        router = router_path(self.settings)
        style = get_collection(self.settings).style_file()
        return (
            read(index_dir(self.settings) / "CURRENT"),
            str(folder or ""),
            str(label or ""),
            str(router.stat().st_mtime_ns) if router.is_file() else "",
            str(style.stat().st_mtime_ns) if style is not None and style.is_file() else "",
        )

    def assistant(self) -> Any:
        world = self._world()
        with self._lock:
            if self._assistant is None or world != self._built_for:
                from app.wiring.answer import build_assistant

                logger.info(
                    "building the assistant for the app (index %s, adapter %s)", world[0], world[2] or "none"
                )
                self._assistant = build_assistant(self.settings)
                self._built_for = world
            return self._assistant

    def status(self) -> dict[str, Any]:
        from app.wiring.active_adapter import current_adapter
        from app.wiring.collections import get_collection
        from app.wiring.generation import translate_hint
        from app.wiring.index import index_dir

        name = self.settings.collection
        built = (index_dir(self.settings) / "CURRENT").is_file()
        _, label = current_adapter(self.settings)
        return {
            "collection": name,
            "style": get_collection(self.settings).style().name,
            "index": "built" if built else "not built — see the Index page",
            "adapter": {None: "none yet (train one on the Train page)", "default": "bundled default"}.get(
                label, label
            ),
            "backend": self.settings.generation.backend,
            "translate_hint": translate_hint(self.settings),
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
