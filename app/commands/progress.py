"""Terminal rendering of ``on_progress(done, total, message)`` callbacks with rich."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from domain.progress import ProgressFn, no_progress


@contextmanager
def progress_bar(description: str, *, quiet: bool = False, job_eta: bool = False) -> Iterator[ProgressFn]:
    """Yield a progress callback that draws a bar on stderr (nothing when ``quiet``). ``job_eta``:
    the messages carry a background job's own ETA for the whole job (all its phases), so the bar
    does not add its own estimate from the current phase's steps."""
    if quiet:
        yield no_progress
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *([] if job_eta else [TimeRemainingColumn()]),
        TextColumn("{task.fields[msg]}"),
        console=Console(stderr=True),
        transient=False,
        disable=quiet,
    ) as prog:
        task = prog.add_task(description, total=None, msg="")

        def on_progress(done: int, total: int, message: str = "") -> None:
            prog.update(task, completed=done, total=total or None, msg=message[:60])

        yield on_progress


def add_json_option(parser: Any, what: str) -> None:
    """``--json [FILE]``: print ``what`` as JSON to stdout, or write it to FILE (dest ``json_path``)."""
    parser.add_argument(
        "--json",
        dest="json_path",
        nargs="?",
        const="-",
        default=None,
        help=f"print {what} as JSON (to stdout, or to FILE)",
    )


def emit_or_show(obj: Any, json_path: str | None, show: Callable[[Any], None]) -> int:
    """The end of a command that reports: ``obj`` as JSON to ``json_path`` when one is given, then
    ``show(obj)`` for a reader unless the JSON went to stdout. Returns the exit code (0)."""
    if json_path:
        emit_json(obj, json_path)
        if json_path == "-":
            return 0
    show(obj)
    return 0


def emit_json(obj: Any, path: str | None) -> None:
    """Write ``obj`` as JSON to ``path``, or to stdout when ``path`` is '-' or None."""
    text = json.dumps(obj, ensure_ascii=False, indent=2)
    if path in (None, "-"):
        print(text)
    else:
        from domain.atomic import write_text_atomic

        write_text_atomic(path, text + "\n")
