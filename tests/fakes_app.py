"""Fake page backends (``app.views.services`` Protocols) with inspectable state, for AppTest: the
assistant and the indexer here, the trainer and exporter in ``tests.fakes_app_jobs``.

Passage texts deliberately carry HTML and Markdown so tests can check that pages never render
document text as markup. Nothing here imports a heavy library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import ConfigError, GenerationError
from domain.progress import ProgressFn, no_progress
from domain.types import Answer, Chunk, Citation, Hit, Mode, RouteDecision, Timing
from tests.fakes_app_jobs import FakeExporter, FakeTrainer

HOSTILE = '<script>alert("x")</script> ![pixel](http://example.invalid/p.png) **bold**'
PASSAGE_TEXT = "Annual leave is 15 working days per year. " + HOSTILE + " Unused days expire in March."


EVIDENCE = Citation(
    "Annual leave is 15 working days per year.",
    "c1",
    "hr/leave-policy.md",
    "Annual leave",
    "Annual leave is 15 working days per year.",
    1.0,
)


def fake_hits() -> list[Hit]:
    chunks = [
        Chunk("c1", "hr/leave-policy.md", "Leave policy", "Annual leave", PASSAGE_TEXT, 0, len(PASSAGE_TEXT)),
        Chunk(
            "c2", "hr/<i>odd</i>.md", "Odd name", "Sick leave", "Sick leave needs a note after 3 days.", 0, 37
        ),
    ]
    return [
        Hit(c, score=0.9 - 0.1 * i, rank=i + 1, dense_score=0.83 - 0.1 * i, bm25_score=4.0 - i)
        for i, c in enumerate(chunks)
    ]


def canned_answer(mode: Mode) -> str:
    return (
        f"Conclusion: Annual leave is 15 days ({mode.value}).\n"
        "Basis: [hr/leave-policy.md] says 15 working days.\nNote: <b>unused</b> days expire in March."
    )


@dataclass
class FakeStream:
    decision: RouteDecision
    passages: list[Hit]
    text: str
    question: str
    from_correction: bool = False
    fail_after: int | None = None
    closed: bool = False
    _done: bool = False

    @property
    def pieces(self) -> Iterator[str]:
        for i, piece in enumerate(re.findall(r"\S+\s*", self.text)):
            if self.fail_after is not None and i == self.fail_after:
                raise GenerationError("llama.cpp stopped mid-answer — ask again")
            yield piece
        self._done = True

    def close(self) -> None:
        self.closed = True

    def answer(self) -> Answer:
        assert self._done, "answer() before the stream was consumed"
        return Answer(
            self.question,
            self.decision.mode,
            self.text,
            reason=self.decision.reason,
            passages=list(self.passages) if self.decision.mode.uses_retrieval else [],
            timing=Timing(0.01, 0.2, 1.2, 20),
            from_correction=self.from_correction,
            warnings=["best passage scores low (0.41)"] if "obscure" in self.question else [],
            evidence=EVIDENCE if self.decision.mode.uses_retrieval else None,
            searched_as={"en": "How long is annual leave?"}
            if self.decision.mode.uses_retrieval and "年假" in self.question
            else {},
            translated_from="Annual leave is <b>15</b> days." if "年假" in self.question else "",
            answered_by="Qwen <i>1.5B</i>" if "年假" in self.question else "",
        )


@dataclass
class FakeCompareStart:
    question: str
    decision: RouteDecision
    passages: list[Hit]
    has_adapter: bool = True
    started: list[Mode] = field(default_factory=list)

    def start(self, mode: Mode) -> FakeStream:
        if mode.uses_adapter and not self.has_adapter:
            raise ConfigError(f"mode {mode.value} needs a LoRA adapter but none is loaded — train one")
        self.started.append(mode)
        decision = (
            self.decision if mode == self.decision.mode else RouteDecision(mode, "shown", overridden=True)
        )
        return FakeStream(decision, self.passages, canned_answer(mode), self.question)


@dataclass
class FakeAssistant:
    """Answers with canned text; remembers corrections and counts retrievals."""

    retrievals: int = 0
    asked: list[tuple[str, str]] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)
    has_adapter: bool = True
    fail_after: int | None = None
    last_stream: FakeStream | None = None
    last_compare: FakeCompareStart | None = None
    translate_hint: str | None = None

    def status(self) -> dict[str, Any]:
        return {
            "index": "default",
            "adapter": "v2",
            "backend": "fake",
            "corrections": len(self.corrections),
            "translate_hint": self.translate_hint,
        }

    def _decide(self, mode: str) -> RouteDecision:
        if mode == "auto":
            return RouteDecision(
                Mode.TUNED_RAG, "tuned_rag: top passage 0.83 from hr/leave-policy.md; adapter v2 active"
            )
        return RouteDecision(Mode(mode), "chosen by you", overridden=True)

    def stream(self, question: str, mode: str) -> FakeStream:
        if not question.strip():
            raise ConfigError("the question is empty — type a question first")
        self.asked.append((question, mode))
        self.retrievals += 1
        decision = self._decide(mode)
        for c in self.corrections:
            if c["question"].strip().lower() == question.strip().lower():
                return FakeStream(decision, fake_hits(), c["corrected"], question, from_correction=True)
        self.last_stream = FakeStream(
            decision, fake_hits(), canned_answer(decision.mode), question, fail_after=self.fail_after
        )
        return self.last_stream

    def compare(self, question: str) -> FakeCompareStart:
        self.retrievals += 1
        self.last_compare = FakeCompareStart(question, self._decide("auto"), fake_hits(), self.has_adapter)
        return self.last_compare

    def save_correction(self, answer: Answer, corrected: str) -> int:
        self.corrections.append(
            {
                "question": answer.question,
                "mode": answer.mode.value,
                "original": answer.text,
                "corrected": corrected,
            }
        )
        return len(self.corrections)


@dataclass
class FakeIndexer:
    """Indexes .md/.txt files of a real folder in memory (one chunk per paragraph)."""

    root: Path
    docs: dict[str, dict[str, list[Chunk]]] = field(default_factory=dict)
    roots: dict[str, str] = field(default_factory=dict)
    syncs: list[str] = field(default_factory=list)
    progress: list[tuple[int, int, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    rebuilds: list[bool] = field(default_factory=list)
    precisions: dict[str, str] = field(default_factory=dict)

    def index_names(self) -> list[str]:
        return sorted(self.docs)

    def summary(self, name: str) -> dict[str, Any] | None:
        if name not in self.docs:
            return None
        n_chunks = sum(len(v) for v in self.docs[name].values())
        return {
            "name": name,
            "root": self.roots[name],
            "n_chunks": n_chunks,
            "n_files": len(self.docs[name]),
            "n_skipped": 1,
            "embedder": {
                "name": "fake-ngram",
                "dim": 64,
                "precision": "int8" if self.vectors(name) == "int8" else "fp32",
            },
            "updated_at": "now",
            "generation": "gen-000001",
        }

    def documents(self, name: str) -> list[dict[str, Any]]:
        rows = [
            {
                "path": p,
                "title": p,
                "kind": "markdown",
                "chunks": len(cs),
                "lang": "en",
                "status": "indexed",
                "reason": "",
                "bytes": 1,
            }
            for p, cs in sorted(self.docs.get(name, {}).items())
        ]
        if name in self.docs:
            rows.append(
                {
                    "path": "image.png",
                    "title": "",
                    "kind": "",
                    "chunks": 0,
                    "lang": "",
                    "status": "skipped",
                    "reason": "unsupported_type",
                    "bytes": None,
                }
            )
        return rows

    def chunks(self, name: str, path: str) -> list[Chunk]:
        return list(self.docs.get(name, {}).get(path, []))

    def vectors(self, name: str) -> str:
        return self.precisions.get(name, "float")

    def sync(
        self,
        folder: str | Path,
        *,
        name: str,
        rebuild: bool = False,
        vectors: str | None = None,
        on_progress: ProgressFn = no_progress,
    ) -> dict[str, Any]:
        self.precisions[name] = vectors or "float"
        base = Path(folder)
        if not base.is_dir():
            raise ConfigError(f"{folder} is not a folder — pass the folder that holds your documents")
        files = sorted(p for p in base.rglob("*") if p.suffix in (".md", ".txt"))
        docs: dict[str, list[Chunk]] = {}
        for i, f in enumerate(files):
            rel = f.relative_to(base).as_posix()
            on_progress(i, len(files), f"reading {rel}")
            self.progress.append((i, len(files), rel))
            paras = [p for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
            docs[rel] = [Chunk(f"{rel}#{j}", rel, rel, "", p, 0, len(p)) for j, p in enumerate(paras)]
        on_progress(len(files), len(files), "saved")
        self.docs[name] = docs
        self.roots[name] = str(base.resolve())
        self.syncs.append(name)
        self.rebuilds.append(rebuild)
        return {
            "name": name,
            "root": str(base),
            "generation": "gen-000001",
            "files_indexed": len(docs),
            "files_new": len(docs),
            "files_changed": 0,
            "files_unchanged": 0,
            "files_deleted": 0,
            "files_resumed": 0,
            "chunks_total": sum(len(v) for v in docs.values()),
            "chunks_embedded": sum(len(v) for v in docs.values()),
            "seconds": 0.01,
            "changed": True,
            "ann": {"kind": "flat"},
            "skipped": [],
        }

    def search(self, name: str, query: str, k: int) -> list[Hit]:
        words = set(query.lower().split())
        scored = [
            (len(words & set(c.text.lower().split())), c)
            for cs in self.docs.get(name, {}).values()
            for c in cs
        ]
        scored = sorted((s for s in scored if s[0] > 0), key=lambda s: -s[0])[:k]
        return [
            Hit(c, float(s), i + 1, dense_score=None, bm25_score=float(s)) for i, (s, c) in enumerate(scored)
        ]

    def delete(self, name: str) -> None:
        self.docs.pop(name)
        self.deleted.append(name)

    def upload_dir(self, name: str) -> Path:
        return self.root / "uploads" / name


__all__ = ["FakeAssistant", "FakeExporter", "FakeIndexer", "FakeTrainer", "HOSTILE"]
