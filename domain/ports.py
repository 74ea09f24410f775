"""The ports: what the core needs from the RAG half, the fine-tune half and storage.

Implementations match by shape (no inheritance): real ones live in ``index/`` and ``adapters/``,
fakes in ``tests/``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    import numpy as np

    from domain.types import Hit

Message = dict[str, str]


class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors. Prefixes (e5's ``query: ``/``passage: ``)
    are the embedder's business, never the caller's."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    # "fp32", "bf16" or "int8": recorded with an index, which is never mixed across int8 and float.
    precision: str

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(
        self, texts: Sequence[str], *, batch_size: int = 8, on_progress: ProgressFn = no_progress
    ) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class Retriever(Protocol):
    """Finds the passages most relevant to a question."""

    def search(self, query: str, *, k: int = 5) -> list[Hit]: ...


class Generator(Protocol):
    """Produces an answer as an iterator of text pieces from chat messages.

    ``adapter=True`` applies the active LoRA adapter; ``adapter=False`` must give exactly the base
    model's behaviour (no state leaks between the two). ``prefill`` is text the answer already
    starts with: the model continues after it, and it is not yielded. Closing the iterator stops
    the model (``domain.answer_format`` stops it at the end of each line).
    """

    @property
    def name(self) -> str: ...

    @property
    def has_adapter(self) -> bool: ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        adapter: bool,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        prefill: str = "",
    ) -> Iterator[str]: ...

    def choose(
        self,
        messages: Sequence[Message],
        options: Sequence[str],
        *,
        adapter: bool,
        prefill: str = "",
        method: str = "likelihood",
    ) -> str:
        """The continuation of the answer after ``prefill`` that is exactly one of ``options``
        (``domain.evidence`` builds the options): by ``method`` "likelihood", the one the model finds
        most likely whole; by "greedy", the one decoding under a grammar of the options ends in."""
        ...

    def count_tokens(self, text: str) -> int: ...
