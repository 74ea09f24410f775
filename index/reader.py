"""Reading a folder's new and changed files into chunks while the caller embeds: one file at a time
is hashed, compared with the previous index, extracted and split, either in-process or in one
spawned worker process that runs ahead of the embedding.

Owns the worker (its start, its messages, and stopping it when the caller stops, fails or is
killed), the token counter the worker is given in place of the embedder (the embedder's own
``tokenizer.json``, or a ``count_tokens`` that pickles small, checked against the embedder on
probe texts), and the fallback to in-process reading when there is no such counter or the worker
dies. Which files exist is ``index.loaders``' business; what happens to the chunks is the caller's.

The worker is started with ``spawn``: as for any spawned process, the program's main module must
keep its entry point under ``if __name__ == "__main__"`` (a worker that cannot start hands over to
in-process reading, after a wasted start).

Above ~300 lines because the worker process and its parent side speak one message protocol (start,
file results, errors, stop), which is kept in one place.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.errors import DocumentError
from domain.types import Chunk
from index.loaders import SkippedFile, SourceFile, content_digest, load_document, read_bytes
from index.splitter import DocumentSplitter, SplitterSettings

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from domain.ports import Embedder

logger = logging.getLogger(__name__)

READER_MODES = ("auto", "process", "inline")
WORKER_MIN_BYTES = 4_000_000  # "auto" reads smaller folders in-process: a worker takes a few
# seconds to start and load its tokenizer, more than reading a few MB takes
_COUNTER_MAX_PICKLE = 1 << 20
_PROBES = (
    "Hello world. Submit expenses within ten days.",
    "员工每年有十五天带薪年假，需要提前申请。",
    "    def f(x):\n        return x ** 2  # indented code\n",
    "git add --patch <pathspec>… ½ ﬁ Ünïcödé\u3000全角 <s> literal",
)


@dataclass(frozen=True)
class FileResult:
    """One source file after reading: unchanged since the previous index (``chunks`` None and
    no ``skipped``), skipped with a reason, or new/changed with its chunks."""

    source: SourceFile
    digest: str = ""
    size: int = 0
    title: str = ""
    chunks: list[Chunk] | None = None
    skipped: SkippedFile | None = None


def read_one(src: SourceFile, splitter: DocumentSplitter, prev_digest: str | None) -> FileResult:
    """Hash ``src``; when it differs from ``prev_digest``, extract and split it. A file that
    cannot be used comes back as ``skipped``."""
    try:
        data = read_bytes(src)
        digest = content_digest(data)
        if digest == prev_digest:
            return FileResult(src, digest, len(data))
        doc = load_document(src, data)
        chunks = splitter.split(doc, digest=digest)
        if not chunks:
            raise DocumentError(src.path, "no_text", "no text left after splitting")
    except DocumentError as e:
        return FileResult(src, skipped=SkippedFile(e.path, e.reason, e.detail))
    return FileResult(src, digest, len(data), doc.title, chunks)


class TokenizerFileCounter:
    """Counts tokens with a ``tokenizer.json`` (loaded on first use, so it pickles as a path):
    no special tokens, no truncation, no padding."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tok: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_tok": None}

    def __call__(self, text: str) -> int:
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.path))
            tok.no_truncation()
            tok.no_padding()
            self._tok = tok
        return len(self._tok.encode(text, add_special_tokens=False).ids)


class _TooLarge(Exception):
    pass


class _CappedSink:
    def __init__(self, limit: int) -> None:
        self.size, self.limit = 0, limit

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise _TooLarge
        return len(data)


def portable_counter(embedder: Embedder) -> Callable[[str], int] | None:
    """A token counter a worker process can be given in place of ``embedder.count_tokens``: the
    ``tokenizer.json`` of the embedder's folder, else ``count_tokens`` itself when it pickles in
    under 1 MB (None when neither). The worker checks it against the embedder's counts on probe
    texts before it splits anything."""
    folder = getattr(embedder, "path", None)
    if isinstance(folder, Path) and (folder / "tokenizer.json").is_file():
        return TokenizerFileCounter(folder / "tokenizer.json")
    try:
        pickle.Pickler(_CappedSink(_COUNTER_MAX_PICKLE), protocol=pickle.HIGHEST_PROTOCOL).dump(
            embedder.count_tokens
        )
    except Exception:  # unpicklable (locks, models) or too large to send
        return None
    return embedder.count_tokens


def _inline(
    sources: Sequence[SourceFile], prev: dict[str, str], splitter: DocumentSplitter
) -> Iterator[FileResult]:
    for src in sources:
        yield read_one(src, splitter, prev.get(src.path))


class FileReader:
    """Yields a ``FileResult`` per source in order. ``ready()`` says whether the next one is at
    hand without waiting. Use as a context manager: leaving it stops the worker."""

    def __init__(
        self,
        sources: Sequence[SourceFile],
        prev_digests: dict[str, str],
        *,
        embedder: Embedder,
        settings: SplitterSettings,
        mode: str = "auto",
    ) -> None:
        if mode not in READER_MODES:
            raise ValueError(f"reader mode must be one of {', '.join(READER_MODES)}, not {mode!r}")
        self._sources = list(sources)
        self._prev = prev_digests
        self._embedder = embedder
        self._settings = settings
        self._received = 0
        self._local: Iterator[FileResult] | None = None
        self._worker: _Worker | None = None
        counter = None
        if mode == "process" or (mode == "auto" and sum(s.size for s in self._sources) >= WORKER_MIN_BYTES):
            counter = portable_counter(embedder)
            if counter is None:
                logger.info("the embedder's token counter cannot go to a worker; reading in-process")
        if counter is not None and self._sources:
            probes = [(p, embedder.count_tokens(p)) for p in _PROBES]
            self._worker = _Worker(self._sources, prev_digests, counter, probes, settings)
        else:
            self._go_inline()

    @property
    def in_worker(self) -> bool:
        return self._worker is not None

    def _go_inline(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        splitter = DocumentSplitter(self._embedder.count_tokens, self._settings)
        self._local = _inline(self._sources[self._received :], self._prev, splitter)

    def ready(self) -> bool:
        return self._worker is None or self._worker.ready()

    def __iter__(self) -> Iterator[FileResult]:
        return self

    def __next__(self) -> FileResult:
        if self._worker is not None:
            kind, payload = self._worker.next()
            if kind == "file":
                self._received += 1
                return payload
            if kind == "done":
                self._worker.stop()
                self._worker = None
                raise StopIteration
            if kind == "error":
                raise payload
            logger.warning("%s; reading the remaining files in-process", payload)
            self._go_inline()
        assert self._local is not None
        result = next(self._local)
        self._received += 1
        return result

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Worker:
    """The spawned reading process and a thread that moves its messages into a local queue as
    they come (so the worker never waits on the embedding)."""

    def __init__(
        self,
        sources: list[SourceFile],
        prev: dict[str, str],
        counter: Callable[[str], int],
        probes: list[tuple[str, int]],
        settings: SplitterSettings,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._process = ctx.Process(
            target=_work,
            args=(send, sources, prev, counter, probes, settings),
            name="hybrid-index-reader",
            daemon=True,
        )
        self._process.start()
        send.close()  # the worker holds the only writing end: its exit ends the stream
        self._conn = receive
        self._thread = threading.Thread(target=self._pump, name="hybrid-index-reader-pump", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                message = self._conn.recv()
                self._inbox.put(message)
                if message[0] != "file":
                    return
        except (EOFError, OSError):
            code = self._process.exitcode
            self._inbox.put(("lost", f"the reading process stopped early (exit code {code})"))
        except Exception as e:  # a message that does not unpickle
            self._inbox.put(("lost", f"the reading process sent an unreadable message ({e})"))

    def ready(self) -> bool:
        return not self._inbox.empty()

    def next(self) -> tuple[str, Any]:
        while True:
            try:
                return self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)  # also reaps a worker that has finished
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._conn.close()


def _work(
    conn: Connection,
    sources: list[SourceFile],
    prev: dict[str, str],
    counter: Callable[[str], int],
    probes: list[tuple[str, int]],
    settings: SplitterSettings,
) -> None:
    """The worker's main: checks its counter on the probes, then sends one ("file", FileResult)
    per source and ("done", None). When the main process is gone, sending fails and it exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        for text, expected in probes:
            got = counter(text)
            if got != expected:
                conn.send(
                    (
                        "lost",
                        f"the worker's token counter gives {got} tokens where the embedder gives {expected}",
                    )
                )
                return
        splitter = DocumentSplitter(counter, settings)
        for src in sources:
            conn.send(("file", read_one(src, splitter, prev.get(src.path))))
        conn.send(("done", None))
    except (BrokenPipeError, EOFError, ConnectionResetError):
        os._exit(0)  # the main process is gone
    except BaseException as e:
        conn.send(("error", _portable_error(e)))
    finally:
        conn.close()


def _portable_error(e: BaseException) -> BaseException:
    """``e`` itself when it survives pickling, else a RuntimeError with its type, text and trace."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        buf = io.StringIO()
        traceback.print_exception(e, file=buf)
        return RuntimeError(f"{type(e).__name__}: {e}\n{buf.getvalue()}")
