"""A collection's evaluation and training rows on disk (``datasets/eval.jsonl``,
``datasets/train.jsonl``): load, save, import, export and summary for the CLI and the Datasets
page, every line checked by ``domain.dataset_build.parse_rows`` before anything is written. A file
being replaced is copied to ``datasets/backups/`` first (the newest few per kind are kept).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from app.wiring.dataset_journal import BUILD, PROGRESS, Journal, read_json_dict
from domain import dataset_build as ds
from domain.errors import ConfigError, DataError

if TYPE_CHECKING:
    from app.wiring.collections import Collection

KINDS = ("eval", "train")
KEEP_BACKUPS = 10
MAX_PROBLEMS_SHOWN = 20


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def own_path(coll: Collection, kind: str) -> Path:
    return coll.paths.eval_set if kind == "eval" else coll.paths.train_set


def current_path(coll: Collection, kind: str) -> Path:
    """The file the collection reads ``kind`` rows from (its own, else the bundle's)."""
    return coll.eval_set if kind == "eval" else coll.train_set


def jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _backup(coll: Collection, kind: str) -> Path | None:
    """Copy the collection's own ``kind`` file to ``datasets/backups/`` (the newest ``KEEP_BACKUPS``
    per kind are kept); None when it has none."""
    import shutil

    own = own_path(coll, kind)
    if not own.is_file():
        return None
    folder = coll.paths.datasets / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{kind}-{stamp}.jsonl"
    n = 1
    while target.exists():
        n += 1
        target = folder / f"{kind}-{stamp}-{n}.jsonl"
    shutil.copyfile(own, target)  # a fresh mtime: the newest backups are the last written
    for old in sorted(folder.glob(f"{kind}-*.jsonl"), key=lambda p: p.stat().st_mtime)[:-KEEP_BACKUPS]:
        old.unlink()
    return target


def write_set(coll: Collection, kind: str, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Replace the collection's own ``kind`` file with ``rows`` atomically; returns the backup."""
    from domain.atomic import write_text_atomic

    backup = _backup(coll, kind)
    write_text_atomic(own_path(coll, kind), jsonl(rows))
    return backup


def _parsed(text: str, kind: str, where: str) -> list[dict[str, Any]]:
    """Rows of ``text``, or a DataError naming every bad line."""
    rows, problems = ds.parse_rows(text, kind)
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise DataError(
            f"{len(problems)} malformed line(s) in {where}: "
            + "; ".join(shown)
            + more
            + " — fix them and try again; nothing was changed"
        )
    return rows


def load_rows(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """The selected collection's ``kind`` ("eval" or "train") rows ([] when it has none).

    Raises:
        DataError: the file has malformed lines (named by number).
    """
    from app.evaluation.retrieval import read_jsonl_text
    from app.wiring.collections import get_collection

    path = current_path(get_collection(settings), _kind(kind))
    if not path.is_file():
        return []
    return _parsed(read_jsonl_text(path), kind, str(path))


def save_rows(settings: Settings, kind: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Store ``rows`` as the selected collection's ``kind`` set (a review table's accept, edit and
    reject); the previous file is backed up. Returns the file.

    Raises:
        DataError: a row is malformed or an id repeats (nothing is written).
    """
    from app.wiring.collections import get_collection

    checked = _parsed(jsonl(rows), _kind(kind), "the rows to save")
    coll = get_collection(settings)
    write_set(coll, kind, checked)
    return own_path(coll, kind)


def import_rows(settings: Settings, kind: str, path: str | Path, replace: bool = False) -> dict[str, Any]:
    """Add the rows of JSONL ``path`` to the selected collection's ``kind`` set (a row with an id
    already there replaces it), or make them the whole set with ``replace``. Every line is checked
    before anything is written.

    Raises:
        DataError: the file is unreadable or has malformed lines (all named by line number); the
            stored set is left as it was.
    """
    from app.evaluation.retrieval import read_jsonl_text
    from app.wiring.collections import get_collection

    new = _parsed(read_jsonl_text(Path(path)), _kind(kind), str(path))
    if not new:
        raise DataError(f"{path} holds no rows — nothing was imported")
    old = [] if replace else load_rows(settings, kind)
    rows = ds.merge_rows(old, new)
    coll = get_collection(settings)
    backup = write_set(coll, kind, rows)
    return {
        "kind": kind,
        "imported": len(new),
        "replaced_ids": len({r["id"] for r in old} & {r["id"] for r in new}),
        "rows": len(rows),
        "path": str(own_path(coll, kind)),
        "backup": str(backup) if backup else None,
    }


def export_rows(settings: Settings, kind: str, dest: str | Path) -> int:
    """Write the selected collection's ``kind`` rows to ``dest`` (JSONL); returns how many.

    Raises:
        DataError: the collection has no such set.
    """
    from domain.atomic import write_text_atomic

    rows = load_rows(settings, kind)
    if not rows:
        raise DataError(
            f"collection {settings.collection!r} has no {kind} set — build one with `hybrid dataset build`"
        )
    write_text_atomic(dest, jsonl(rows))
    return len(rows)


def row_passage(settings: Settings, row: dict[str, Any]) -> dict[str, Any] | None:
    """Where ``row``'s key facts stand in the collection's index (``ds.row_passage``): the passage's
    file, heading, page and text, the facts as they stand in it, and ``marked``, the text with each
    fact wrapped in ⟦ ⟧ (plain text, for the page and the CLI); None when no passage holds them or
    the collection is not indexed."""
    from app.wiring.index import index_dir
    from index.store import current_generation, read_chunks

    gen = current_generation(index_dir(settings))
    found = ds.row_passage(row, read_chunks(gen)) if gen is not None else None
    if found is None:
        return None
    chunk, facts = found
    marked = chunk.text
    for fact in facts:
        at = marked.find(fact)
        if at >= 0:
            marked = f"{marked[:at]}⟦{fact}⟧{marked[at + len(fact) :]}"
    return {
        "path": chunk.path,
        "heading": chunk.heading,
        "page": chunk.page,
        "text": chunk.text,
        "facts": facts,
        "marked": marked,
    }


def dataset_summary(settings: Settings) -> dict[str, Any]:
    """Counts of the selected collection's sets (by kind, language and split), where they are, and
    the state of its last build."""
    from app.wiring.collections import get_collection

    coll = get_collection(settings)
    out: dict[str, Any] = {"collection": coll.name}
    for kind in KINDS:
        path = current_path(coll, kind)
        rows = load_rows(settings, kind)
        part: dict[str, Any] = {
            "path": str(path) if path.is_file() else None,
            "own": path == own_path(coll, kind) and path.is_file(),
            "rows": len(rows),
            "by_lang": dict(sorted(Counter(str(r.get("lang")) for r in rows).items())),
        }
        if kind == "eval":
            part["by_kind"] = dict(sorted(Counter(str(r.get("kind")) for r in rows).items()))
            part["by_split"] = dict(sorted(Counter(str(r.get("split", "tune")) for r in rows).items()))
        out[kind] = part
    from app.wiring.generation import writer_hint

    out["writer_hint"] = writer_hint(settings)
    folder = coll.paths.datasets / BUILD
    report = read_json_dict(folder / "report.json")
    spec = read_json_dict(folder / "spec.json")
    if report is not None:
        out["build"] = {
            "complete": True,
            "report": str(folder / "report.json"),
            **{k: report.get(k) for k in ("seconds", "rows_per_minute")},
        }
    elif spec is not None:
        out["build"] = {
            "complete": False,
            "options": spec,
            "processed": len(Journal(folder / PROGRESS).records),
        }
    else:
        out["build"] = None
    return out
