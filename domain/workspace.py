"""Where everything the app creates lives: one workspace folder, never the source tree.

Owns the layout only (paths and folder creation) and the one rule for user-given names
(collection, adapter version, job, export, saved answer): a name is a single short slug, and the
path it becomes must resolve inside its folder of the workspace. What goes into each folder belongs
to the module that writes it.

A *collection* is one document folder and everything derived from it (its index, style profile,
datasets, adapter versions, router thresholds, evaluation reports, corrections and uploads), kept
together under ``collections/<name>/``; models, tools, jobs, exports and saved answers are shared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from domain.errors import ConfigError

BASE_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
BASE_HF_NAME = "qwen2.5-coder-0.5b-instruct-hf"
EMBEDDER_NAME = "multilingual-e5-small-st"


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(name: object, what: str = "name") -> str:
    """``name`` when it is a valid slug (see ``NAME_RULE``).

    Raises:
        ConfigError: anything else (the message shows the name escaped, so control characters in it
            never reach the terminal raw).
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not allowed — use {NAME_RULE}")
    return name


def child(folder: Path, name: object, what: str = "name") -> Path:
    """``folder / name`` for a checked name whose resolved path stays directly inside ``folder``
    (a symlink planted under that name cannot lead elsewhere).

    Raises:
        ConfigError: a bad name, or a path that resolves outside ``folder``.
    """
    path = Path(folder) / check_name(name, what)
    if path.resolve().parent != Path(folder).resolve():
        raise ConfigError(f"{what} {name!r} leads outside {folder} — remove that link or pick another name")
    return path


@dataclass(frozen=True)
class CollectionPaths:
    """Paths inside one collection's folder."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def manifest(self) -> Path:
        """``collection.json``: the document folder and when the collection was made."""
        return self.root / "collection.json"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def style(self) -> Path:
        return self.root / "style.json"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def eval_set(self) -> Path:
        return self.datasets / "eval.jsonl"

    @property
    def train_set(self) -> Path:
        return self.datasets / "train.jsonl"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    def adapter(self, version: str) -> Path:
        """The folder of adapter version ``version`` (checked: see ``child``)."""
        return child(self.adapters, version, "adapter version")

    @property
    def router(self) -> Path:
        return self.root / "router.json"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def feedback_db(self) -> Path:
        return self.root / "feedback.sqlite"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def ensure(self) -> CollectionPaths:
        """Create the collection's folders (idempotent) and return self."""
        for p in (self.root, self.datasets, self.adapters, self.evals, self.uploads):
            p.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class Workspace:
    """Paths inside one workspace root."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Workspace:
        return cls(Path(root).expanduser().resolve())

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def base_gguf(self) -> Path:
        return self.models / BASE_GGUF_NAME

    @property
    def base_hf(self) -> Path:
        return self.models / BASE_HF_NAME

    @property
    def embedder(self) -> Path:
        return self.models / EMBEDDER_NAME

    @property
    def tools(self) -> Path:
        return self.root / "tools"

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    def collection(self, name: str) -> CollectionPaths:
        """The folder of collection ``name`` (checked: see ``child``)."""
        return CollectionPaths(child(self.collections, name, "collection name"))

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def job(self, job_id: str) -> Path:
        """The folder of job ``job_id`` (checked)."""
        return child(self.jobs, job_id, "job")

    @property
    def answers(self) -> Path:
        return self.root / "answers"

    def answer(self, answer_id: str) -> Path:
        """The saved answer ``answer_id`` (checked, as the JSON file it is stored in)."""
        return child(self.answers, f"{check_name(answer_id, 'answer id')}.json", "answer id")

    def ensure(self) -> Workspace:
        """Create the top-level folders (idempotent) and return self."""
        for p in (self.models, self.tools, self.collections, self.exports, self.jobs):
            p.mkdir(parents=True, exist_ok=True)
        return self
