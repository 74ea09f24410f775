"""Where everything the app creates lives: one workspace folder, never the source tree.

Owns the layout only (paths and folder creation); what goes into each folder belongs to the
module that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BASE_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
BASE_HF_NAME = "qwen2.5-coder-0.5b-instruct-hf"
EMBEDDER_NAME = "multilingual-e5-small-st"


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
    def indexes(self) -> Path:
        return self.root / "index"

    def index(self, name: str) -> Path:
        return self.indexes / name

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def feedback_db(self) -> Path:
        return self.root / "feedback.sqlite"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def ensure(self) -> Workspace:
        """Create the top-level folders (idempotent) and return self."""
        for p in (
            self.models,
            self.tools,
            self.indexes,
            self.adapters,
            self.evals,
            self.exports,
            self.jobs,
            self.uploads,
        ):
            p.mkdir(parents=True, exist_ok=True)
        return self
