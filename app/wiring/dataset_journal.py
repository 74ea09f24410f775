"""A dataset build's folder on disk (``<collection>/datasets/build/``): its journal
``progress.jsonl`` (one line per processed passage, kept or rejected with its reason, appended and
fsynced as it happens), so a rerun, a resumed job or a build killed mid-row continues where it
stopped and never writes a row id twice. What a build does is ``app.wiring.datasets``'s business.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUILD = "build"  # the folder's name under the collection's datasets folder
PROGRESS = "progress.jsonl"


class Journal:
    """``progress.jsonl``: one record per processed item ({"phase", "item", "kept", "row" | "reason",
    …}), appended, flushed and fsynced one at a time. A line torn by a kill is ignored, and cut off
    with ``repair`` (only the build holding the lock may: a running build may be writing it now)."""

    def __init__(self, path: Path, *, repair: bool = False) -> None:
        self.path, self.repair = path, repair
        self.records: list[dict[str, Any]] = []
        self._done: set[tuple[str, str]] = set()
        self._ids: set[str] = set()
        self._counts: Counter[tuple[str, bool]] = Counter()
        for record in self._read():
            self._remember(record)

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data) and self.repair:
            logger.warning("%s: cutting off a line torn by an interrupted build", self.path)
            with self.path.open("r+b") as fh:
                fh.truncate(len(whole))
        for number, line in enumerate(whole.decode("utf-8").splitlines(), start=1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d is unreadable; that passage will be processed again", self.path, number)

    def _remember(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._done.add((record["phase"], record["item"]))
        self._counts[(record["phase"], bool(record.get("kept")))] += 1
        if record.get("kept"):
            self._ids.add(record["row"]["id"])

    def done(self, phase: str, item: str) -> bool:
        return (phase, item) in self._done

    def count(self, phase: str, kept: bool | None = None) -> int:
        if kept is None:
            return self._counts[(phase, True)] + self._counts[(phase, False)]
        return self._counts[(phase, kept)]

    def rows(self, phase: str) -> list[dict[str, Any]]:
        return [r["row"] for r in self.records if r["phase"] == phase and r.get("kept")]

    def append(self, record: dict[str, Any]) -> None:
        """Store ``record`` durably (a kept row whose id is stored already is turned into a reject)."""
        if record.get("kept") and record["row"]["id"] in self._ids:
            record = {**record, "kept": False, "reason": "duplicate_id", "detail": record["row"]["id"]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._remember(record)


def read_json_dict(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    from domain.atomic import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
