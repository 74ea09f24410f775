"""Wires building a collection's evaluation and training sets from its own documents with the base
model, in the foreground or as a background job (``python -m app.wiring.datasets JOB_DIR``), and
the small row API the CLI and the Train page use: summary, load, save, import and export. What
makes a row, and whether it is kept, is ``domain.dataset_build``'s business.

A build keeps its progress in ``<collection>/datasets/build/``: ``spec.json`` (its options),
``progress.jsonl`` (one line per processed passage, kept or rejected with its reason, appended and
flushed as it happens) and, once complete, ``rejects.jsonl`` and ``report.json``. A rerun, a resumed
job or a build killed mid-row continues from ``progress.jsonl`` and never writes a row id twice.
Finished sets replace ``datasets/eval.jsonl`` and ``datasets/train.jsonl`` atomically; files
they replace are copied to ``datasets/backups/`` first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from domain import dataset_build as ds
from domain.errors import ConfigError, DataError, GenerationError, HybridError
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from app.wiring.collections import Collection
    from domain.ports import Generator
    from domain.types import Chunk

logger = logging.getLogger(__name__)

KINDS = ("eval", "train")
ANSWER_SOURCES = ("passage", "model")
JOB_KIND = "dataset"
WORKER_MODULE = "app.wiring.datasets"
BUILD = "build"
PROGRESS = "progress.jsonl"
QUESTION_TOKENS = 96
CHECK_TOKENS = 40  # the round trip's reply: one short phrase
RETRY_SUFFIX = "~again"  # the journal key of a training passage's second, sampled attempt
RETRY_TEMPERATURE = 0.8
MIN_FOR_RATE = 10  # passages a phase reads before its keep rate estimates how many more it needs
MIN_RATE = 0.05
ANSWER_TOKENS = 192
DISTRACTORS = (2, 3)
OUTPUT_CHARS = 600  # of the model's reply kept with each journal line, to see why a row failed
KEEP_BACKUPS = 10
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class BuildOptions:
    """What a build makes: ``n_eval`` evaluation rows (about a tenth of them out of domain),
    ``n_train`` training rows, passages chosen with ``seed``. A training row's answer is built from
    the passage (``answers="passage"``: the sentence holding its key facts, in the collection's
    style) or written by the base model over the passage among distractors (``answers="model"``: one
    more, longer call per row, kept only when it passes the checks). An evaluation row costs two
    calls: the question and its facts, then the round trip that asks the question again over the
    passage alone; a training row skips the round trip unless ``check_train`` (it then takes about
    half as long again, and fewer passages make a row)."""

    n_eval: int = 60
    n_train: int = 200
    seed: int = 0
    answers: str = "passage"
    check_train: bool = False

    def __post_init__(self) -> None:
        if self.answers not in ANSWER_SOURCES:
            raise ConfigError(f"answers {self.answers!r} is not one of {', '.join(ANSWER_SOURCES)}")

    @property
    def n_ood(self) -> int:
        return min(max(1, self.n_eval // 10), len(ds.GENERAL_QUESTIONS["en"])) if self.n_eval >= 2 else 0


# ----------------------------------------------------------------------------- the journal
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


# ----------------------------------------------------------------------------- one build
class _Stopped(Exception):
    pass


class _Build:
    """One run over the phases (evaluation passages, out-of-domain questions, training passages),
    skipping what the journal already holds."""

    def __init__(
        self,
        journal: Journal,
        chunks: Sequence[Chunk],
        style: Any,
        options: BuildOptions,
        *,
        make_generator: Callable[[], Generator],
        on_progress: ProgressFn,
        should_stop: Callable[[], bool],
    ) -> None:
        self.journal, self.style, self.options = journal, style, options
        self.order = ds.passage_order(chunks, seed=options.seed)
        self.make_generator, self.on_progress, self.should_stop = make_generator, on_progress, should_stop
        self._generator: Generator | None = None
        self.pool: list[Chunk] = []  # the training phase's passages and distractors
        self.questions = ds.QuestionSet()
        for r in journal.rows("eval") + journal.rows("train"):
            self.questions.add(r["question"])
        n_doc = options.n_eval - options.n_ood
        eval_cap = min(n_doc * ds.ATTEMPTS_PER_ROW, len(self.order))
        self.planned = {  # passages each phase may process (the actual count once it has run)
            "eval": eval_cap,
            "ood": options.n_ood,
            "train": min(options.n_train * ds.ATTEMPTS_PER_ROW, max(0, len(self.order) - eval_cap)),
        }

    # -------------------------------------------------------------- phases
    def run(self) -> bool:
        """Process what is left; False when stopped early (the journal keeps what was done)."""
        try:
            n_doc = self.options.n_eval - self.options.n_ood
            self._phase("eval", [(c.chunk_id, c) for c in self.order], n_doc, self._eval_item)
            langs = sorted({ds.chunk_lang(c) for c in self.order}) or ["en"]
            ood = ds.ood_questions(langs, self.options.n_ood, seed=self.options.seed)
            self._phase("ood", [(ds.row_id("ood", q[0], q[1]), q) for q in ood], len(ood), self._ood_item)
            # Training uses the passages the evaluation phase did not touch: a kept one would leak its
            # row, and the model is greedy, so a rejected one would be rejected the same way again.
            used = {r["item"] for r in self.journal.records if r["phase"] == "eval"}
            self.pool = [c for c in self.order if c.chunk_id not in used]
            self.planned["train"] = min(self.options.n_train * ds.ATTEMPTS_PER_ROW, len(self.pool))
            self._phase("train", [(c.chunk_id, c) for c in self.pool], self.options.n_train, self._train_item)
            # A small folder runs out of passages: the rejected ones are asked once more, sampled
            # instead of greedy, so the model proposes another question.
            kept = {r["item"] for r in self.journal.records if r["phase"] == "train" and r.get("kept")}
            again = [(c.chunk_id + RETRY_SUFFIX, c) for c in self.pool if c.chunk_id not in kept]
            self.planned["train"] += min(len(again), max(0, self.options.n_train - len(kept)))
            self._phase("train", again, self.options.n_train, self._retry_item)
        except _Stopped:
            return False
        return True

    def _phase(
        self, phase: str, items: list[tuple[str, Any]], target: int, process: Callable[[Any], dict[str, Any]]
    ) -> None:
        cap = target * ds.ATTEMPTS_PER_ROW
        for key, item in items:
            if self.journal.count(phase, kept=True) >= target or self.journal.count(phase) >= cap:
                break
            if self.journal.done(phase, key):
                continue
            if self.should_stop():
                raise _Stopped
            started = time.monotonic()
            record = {"phase": phase, "item": key, **process(item)}
            record["seconds"] = round(time.monotonic() - started, 3)
            self.journal.append(record)
            self._progress()
        self.planned[phase] = self.journal.count(phase)
        self._progress()

    def _progress(self) -> None:
        """Passages read of those the build is expected to read (each phase's cap until
        ``MIN_FOR_RATE`` of its passages show how many make a row), so the job's ETA follows the
        observed keep rate rather than the worst case."""
        n_doc = self.options.n_eval - self.options.n_ood
        wanted = {"eval": n_doc, "ood": self.options.n_ood, "train": self.options.n_train}
        seen = {p: self.journal.count(p) for p in wanted}
        kept = {p: self.journal.count(p, True) for p in wanted}
        read = sum(seen.values())
        rate = (sum(kept.values()) / read) if read >= MIN_FOR_RATE else None
        total = 0
        for phase, cap in self.planned.items():
            own = kept[phase] / seen[phase] if seen[phase] >= MIN_FOR_RATE else rate
            left = max(0, wanted[phase] - kept[phase])
            guess = seen[phase] + math.ceil(left / max(own, MIN_RATE)) if own is not None else cap
            total += max(seen[phase], min(cap, guess))
        message = f"eval {kept['eval']}/{n_doc} · train {kept['train']}/{self.options.n_train}"
        self.on_progress(min(read, total), total, message)

    # -------------------------------------------------------------- items
    @property
    def generator(self) -> Generator:
        if self._generator is None:
            self._generator = self.make_generator()
        return self._generator

    def _generate(
        self,
        messages: list[dict[str, str]],
        *,
        prefill: str,
        max_new_tokens: int,
        min_lines: int = 0,
        temperature: float = 0.0,
    ) -> str:
        """The model's reply after ``prefill`` (prefill included); a stop request ends it at once
        (the passage is then processed again by the next run)."""
        text = [prefill]
        try:
            pieces = self.generator.generate(
                messages,
                adapter=False,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                min_lines=min_lines,
                prefill=prefill,
            )
            try:
                for piece in pieces:
                    if self.should_stop():
                        raise _Stopped
                    text.append(piece)
            finally:  # an abandoned stream stops the model at once
                getattr(pieces, "close", lambda: None)()
        except GenerationError as e:
            raise ds.Reject("generation_failed", str(e)) from e
        return "".join(text)

    def _draft(
        self, chunk: Chunk, record: dict[str, Any], *, round_trip: bool = True, temperature: float = 0.0
    ) -> ds.Draft:
        """A checked question about one sentence of ``chunk`` (the first of ``ds.target_sentences``;
        the second on a sampled retry, so the model is asked about something else)."""
        targets = ds.target_sentences(chunk)
        if not targets:
            raise ds.Reject("no_target", f"{len(ds.sentences(chunk.text))} sentence(s), none to ask about")
        target = targets[min(1 if temperature > 0 else 0, len(targets) - 1)]
        record["target"] = target
        reply = self._generate(
            ds.question_messages(chunk, target),
            prefill=ds.QUESTION_PREFILL,
            max_new_tokens=QUESTION_TOKENS,
            temperature=temperature,
        )
        record["output"] = reply[:OUTPUT_CHARS]
        draft = ds.parse_draft(reply)
        record["draft"] = {"question": draft.question, "facts": list(draft.facts)}
        question = ds.check_question(draft, chunk, self.questions)
        if not round_trip:
            return ds.check_facts(question, draft, chunk, target=target)
        again = self._generate(
            ds.check_messages(question, chunk), prefill=ds.CHECK_PREFILL, max_new_tokens=CHECK_TOKENS
        )
        record["check_output"] = again[:OUTPUT_CHARS]
        return ds.check_facts(question, draft, chunk, again, target=target)

    def _outcome(
        self, record: dict[str, Any], make_row: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        try:
            row = make_row(record)
        except ds.Reject as e:
            return {**record, "kept": False, "reason": e.reason, "detail": e.detail[:OUTPUT_CHARS]}
        self.questions.add(row["question"])
        return {**record, "kept": True, "row": row}

    def _eval_item(self, chunk: Chunk) -> dict[str, Any]:
        record: dict[str, Any] = {"path": chunk.path, "lang": ds.chunk_lang(chunk)}
        return self._outcome(record, lambda rec: ds.eval_row(chunk, self._draft(chunk, rec), self.style))

    def _ood_item(self, entry: tuple[str, str, str, str]) -> dict[str, Any]:
        lang, question, answer, fact = entry
        record: dict[str, Any] = {"path": None, "lang": lang}
        return self._outcome(record, lambda _rec: ds.ood_row(lang, question, answer, fact, self.style))

    def _retry_item(self, chunk: Chunk) -> dict[str, Any]:
        return self._train_item(chunk, temperature=RETRY_TEMPERATURE)

    def _train_item(self, chunk: Chunk, temperature: float = 0.0) -> dict[str, Any]:
        record: dict[str, Any] = {"path": chunk.path, "lang": ds.chunk_lang(chunk)}
        if temperature > 0:
            record["temperature"] = temperature

        def make(rec: dict[str, Any]) -> dict[str, Any]:
            draft = self._draft(chunk, rec, round_trip=self.options.check_train, temperature=temperature)
            if self.options.answers == "passage":
                return ds.train_row(chunk, draft, ds.build_reference(chunk, draft.facts, self.style))
            rng = random.Random(f"{self.options.seed}:{chunk.chunk_id}")
            distractors = ds.pick_distractors(chunk, self.pool, rng, rng.randint(*DISTRACTORS))
            messages = ds.answer_prompt(draft.question, chunk, distractors, rng, style=self.style)
            rec["distractors"] = [c.path for c in distractors]
            reply = self._generate(
                messages,
                prefill=self.style.answer_label(rec["lang"]),
                max_new_tokens=ANSWER_TOKENS,
                min_lines=self.style.n_lines,
            )
            rec["answer_output"] = reply[:OUTPUT_CHARS]
            return ds.train_row(
                chunk, draft, ds.check_answer(reply, draft, chunk, self.style, distractors=rec["distractors"])
            )

        return self._outcome(record, make)


# ----------------------------------------------------------------------------- building
def check_replace(coll: Collection, replace: bool) -> None:
    """Refuse to build over the collection's datasets unless ``replace``.

    Raises:
        DataError: the collection has an evaluation or training set and ``replace`` is False.
    """
    existing = [p for p in (coll.eval_set, coll.train_set) if p.is_file()]
    if existing and not replace:
        own = [p for p in existing if p.parent == coll.paths.datasets]
        kept = (
            f"your files are backed up to {coll.paths.datasets / 'backups'}"
            if own
            else "the bundle's stay as they are"
        )
        raise DataError(
            f"collection {coll.name!r} already has {' and '.join(str(p) for p in existing)} — "
            f"pass --replace to build new sets ({kept})"
        )


def check_can_build(settings: Settings, replace: bool) -> None:
    """The checks a build makes before it starts (for callers that want them before a progress bar).

    Raises:
        DataError: existing sets without ``replace``, or no index.
    """
    from app.wiring.collections import get_collection

    check_replace(get_collection(settings), replace)
    index_chunks(settings)


def index_chunks(settings: Settings) -> list[Chunk]:
    """The passages of the selected collection's index.

    Raises:
        DataError: the collection is not indexed.
    """
    from app.wiring.index import index_dir
    from index.store import current_generation, read_chunks

    gen = current_generation(index_dir(settings))
    if gen is None:
        raise DataError(
            f"collection {settings.collection!r} has no index yet — run "
            f"`hybrid index FOLDER --collection {settings.collection}` first"
        )
    return read_chunks(gen)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the build folder's lock (one build per collection; a killed build lets go of it)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another dataset build of collection {folder.parents[1].name!r} is running — "
                "wait for it or cancel it with `hybrid dataset cancel`"
            ) from None
        yield


def _read_json(path: Path) -> dict[str, Any] | None:
    from domain.atomic import read_json

    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _prepare(folder: Path, options: BuildOptions, *, replace: bool, fresh: bool) -> None:
    """Start over when asked or after a finished build; refuse to mix options with an unfinished one."""
    from domain.atomic import write_json_atomic

    report = _read_json(folder / "report.json") or {}
    spec = _read_json(folder / "spec.json")
    if spec is not None and not fresh and not report.get("complete"):
        legacy = {**asdict(BuildOptions()), "answers": "model"}  # what a spec without the key meant
        saved = {k: spec.get(k, legacy[k]) for k in asdict(options)}
        if saved != asdict(options) and (folder / PROGRESS).is_file():
            raise ConfigError(
                f"an unfinished build with {saved} is in {folder} — continue it with "
                "`hybrid dataset resume` (or the same options), or pass --fresh to discard it"
            )
    if fresh or report.get("complete"):
        for name in (PROGRESS, "rejects.jsonl", "report.json"):
            (folder / name).unlink(missing_ok=True)
    write_json_atomic(folder / "spec.json", {**asdict(options), "replace": replace})


def build_datasets(
    settings: Settings,
    options: BuildOptions | None = None,
    *,
    replace: bool = False,
    fresh: bool = False,
    generator: Generator | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Build (or continue building) the selected collection's datasets; returns the report.

    Args:
        options: how many rows and the seed (default ``BuildOptions()``).
        replace: build over existing sets (they are backed up first).
        fresh: discard an unfinished build's progress instead of continuing it.
        generator: the model to ask (default: the base model from settings, loaded when needed).
        on_progress: called with (processed passages, planned passages, message).
        should_stop: polled between passages; True stops the build (it can be continued later).

    Raises:
        DataError: existing sets without ``replace``, or no index.
        ConfigError: another build of the collection is running, or an unfinished build has
            other options (continue it, or pass ``fresh``).
    """
    from app.wiring.collections import get_collection

    options = options or BuildOptions()
    coll = get_collection(settings)
    check_replace(coll, replace)
    chunks = index_chunks(settings)
    folder = coll.paths.datasets / BUILD
    started = time.monotonic()
    with _locked(folder):
        _prepare(folder, options, replace=replace, fresh=fresh)
        run = _Build(
            Journal(folder / PROGRESS, repair=True),
            chunks,
            coll.style(),
            options,
            make_generator=lambda: generator or _base_generator(settings),
            on_progress=on_progress,
            should_stop=should_stop,
        )
        if not run.run():
            logger.info("dataset build of %s stopped after %d passages", coll.name, len(run.journal.records))
            return _report(coll, run, complete=False, wall_s=time.monotonic() - started)
        check_replace(coll, replace)
        return _finish(coll, folder, run, wall_s=time.monotonic() - started)


def _base_generator(settings: Settings) -> Generator:
    from app.wiring.answer import build_generator

    return build_generator(settings)


def _finish(coll: Collection, folder: Path, run: _Build, *, wall_s: float) -> dict[str, Any]:
    from domain.atomic import write_json_atomic, write_text_atomic

    journal = run.journal
    sets = {"eval": journal.rows("eval") + journal.rows("ood"), "train": journal.rows("train")}
    files: dict[str, str | None] = {}
    backups: list[str] = []
    notes: list[str] = []
    for kind, rows in sets.items():
        if not rows:
            notes.append(f"no {kind} row passed the checks; {kind}.jsonl was left as it was")
            files[kind] = None
            continue
        backup = _write_set(coll, kind, rows)
        backups += [str(backup)] if backup else []
        files[kind] = str(_own_path(coll, kind))
    rejects = [r for r in journal.records if not r.get("kept")]
    write_text_atomic(folder / "rejects.jsonl", _jsonl(rejects))
    files["rejects"] = str(folder / "rejects.jsonl")
    files["progress"] = str(journal.path)
    report = _report(coll, run, complete=True, wall_s=wall_s)
    report.update(files=files, backups=backups, notes=notes)
    write_json_atomic(folder / "report.json", report)
    logger.info(
        "built datasets of %s: %d eval and %d train rows kept, %d rejected, in %.0f s",
        coll.name,
        report["eval"]["kept"],
        report["train"]["kept"],
        report["eval"]["rejected"] + report["train"]["rejected"],
        report["seconds"],
    )
    return report


def _report(coll: Collection, run: _Build, *, complete: bool, wall_s: float) -> dict[str, Any]:
    records = run.journal.records

    def part(phases: tuple[str, ...]) -> dict[str, Any]:
        mine = [r for r in records if r["phase"] in phases]
        kept = [r for r in mine if r.get("kept")]
        return {
            "kept": len(kept),
            "rejected": len(mine) - len(kept),
            "reasons": dict(Counter(r["reason"] for r in mine if not r.get("kept")).most_common()),
            "by_lang": dict(sorted(Counter(r["row"]["lang"] for r in kept).items())),
        }

    evals = part(("eval", "ood"))
    evals["out_of_domain"] = run.journal.count("ood", True)
    evals["by_split"] = dict(
        sorted(Counter(r["row"]["split"] for r in records if r["phase"] != "train" and r.get("kept")).items())
    )
    seconds = sum(float(r.get("seconds") or 0) for r in records)
    kept = evals["kept"] + run.journal.count("train", True)
    return {
        "collection": coll.name,
        "complete": complete,
        "options": asdict(run.options),
        "passages": {
            "usable": len(run.order),
            "files": len({c.path for c in run.order}),
            "by_lang": dict(sorted(Counter(ds.chunk_lang(c) for c in run.order).items())),
        },
        "processed": len(records),
        "eval": evals,
        "train": part(("train",)),
        "reasons": ds.REASONS,
        "seconds": round(seconds, 1),
        "wall_seconds_this_run": round(wall_s, 1),
        "rows_per_minute": round(kept / (seconds / 60), 2) if seconds > 0 else None,
    }


# ----------------------------------------------------------------------------- rows on disk
def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _own_path(coll: Collection, kind: str) -> Path:
    return coll.paths.eval_set if kind == "eval" else coll.paths.train_set


def _current_path(coll: Collection, kind: str) -> Path:
    """The file the collection reads ``kind`` rows from (its own, else the bundle's)."""
    return coll.eval_set if kind == "eval" else coll.train_set


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _backup(coll: Collection, kind: str) -> Path | None:
    """Copy the collection's own ``kind`` file to ``datasets/backups/`` (the newest ``KEEP_BACKUPS``
    per kind are kept); None when it has none."""
    import shutil

    own = _own_path(coll, kind)
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


def _write_set(coll: Collection, kind: str, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Replace the collection's own ``kind`` file with ``rows`` atomically; returns the backup."""
    from domain.atomic import write_text_atomic

    backup = _backup(coll, kind)
    write_text_atomic(_own_path(coll, kind), _jsonl(rows))
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
    from app.eval_retrieval import read_jsonl_text
    from app.wiring.collections import get_collection

    path = _current_path(get_collection(settings), _kind(kind))
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

    checked = _parsed(_jsonl(rows), _kind(kind), "the rows to save")
    coll = get_collection(settings)
    _write_set(coll, kind, checked)
    return _own_path(coll, kind)


def import_rows(settings: Settings, kind: str, path: str | Path, replace: bool = False) -> dict[str, Any]:
    """Add the rows of JSONL ``path`` to the selected collection's ``kind`` set (a row with an id
    already there replaces it), or make them the whole set with ``replace``. Every line is checked
    before anything is written.

    Raises:
        DataError: the file is unreadable or has malformed lines (all named by line number); the
            stored set is left as it was.
    """
    from app.eval_retrieval import read_jsonl_text
    from app.wiring.collections import get_collection

    new = _parsed(read_jsonl_text(Path(path)), _kind(kind), str(path))
    if not new:
        raise DataError(f"{path} holds no rows — nothing was imported")
    old = [] if replace else load_rows(settings, kind)
    rows = ds.merge_rows(old, new)
    coll = get_collection(settings)
    backup = _write_set(coll, kind, rows)
    return {
        "kind": kind,
        "imported": len(new),
        "replaced_ids": len({r["id"] for r in old} & {r["id"] for r in new}),
        "rows": len(rows),
        "path": str(_own_path(coll, kind)),
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
    write_text_atomic(dest, _jsonl(rows))
    return len(rows)


def dataset_summary(settings: Settings) -> dict[str, Any]:
    """Counts of the selected collection's sets (by kind, language and split), where they are, and
    the state of its last build."""
    from app.wiring.collections import get_collection

    coll = get_collection(settings)
    out: dict[str, Any] = {"collection": coll.name}
    for kind in KINDS:
        path = _current_path(coll, kind)
        rows = load_rows(settings, kind)
        part: dict[str, Any] = {
            "path": str(path) if path.is_file() else None,
            "own": path == _own_path(coll, kind) and path.is_file(),
            "rows": len(rows),
            "by_lang": dict(sorted(Counter(str(r.get("lang")) for r in rows).items())),
        }
        if kind == "eval":
            part["by_kind"] = dict(sorted(Counter(str(r.get("kind")) for r in rows).items()))
            part["by_split"] = dict(sorted(Counter(str(r.get("split", "tune")) for r in rows).items()))
        out[kind] = part
    folder = coll.paths.datasets / BUILD
    report = _read_json(folder / "report.json")
    spec = _read_json(folder / "spec.json")
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


# ----------------------------------------------------------------------------- jobs
def start_dataset_job(
    settings: Settings,
    n_eval: int = 60,
    n_train: int = 200,
    seed: int = 0,
    replace: bool = False,
    *,
    fresh: bool = False,
    answers: str = "passage",
    check_train: bool = False,
) -> Path:
    """Check what can be checked now, then launch the build as a background job; returns its folder.

    Raises:
        DataError: existing sets without ``replace``, or no index.
        ConfigError: a build of this collection is running, or an unfinished one has other
            options (pass ``fresh`` to discard it).
    """
    from adapters import jobs
    from app.wiring.collections import get_collection

    check_can_build(settings, replace)
    coll = get_collection(settings)
    options = BuildOptions(
        n_eval=n_eval, n_train=n_train, seed=seed, answers=answers, check_train=check_train
    )
    folder = coll.paths.datasets / BUILD
    with _locked(folder):
        _prepare(folder, options, replace=replace, fresh=fresh)
    spec = {"collection": coll.name, **asdict(options), "replace": replace}
    job_dir = jobs.new_job(settings.ws.jobs, JOB_KIND, spec)
    jobs.launch(job_dir, WORKER_MODULE)
    return job_dir


def job_dir_for(settings: Settings, job: str = "last") -> Path:
    """The folder of dataset job ``job``: an id, or "last" (the selected collection's newest).

    Raises:
        ConfigError: no such job.
    """
    from adapters import jobs

    if job == "last":
        for status in jobs.list_jobs(settings.ws.jobs, JOB_KIND):
            spec = _read_json(Path(status["dir"]) / jobs.SPEC_FILE) or {}
            if spec.get("collection") == settings.collection:
                return Path(status["dir"])
        raise ConfigError(
            f"collection {settings.collection!r} has no dataset job yet — start one with "
            "`hybrid dataset build --background`"
        )
    path = settings.ws.job(job)
    if not (path / jobs.JOB_FILE).is_file() or not job.startswith(JOB_KIND + "-"):
        raise ConfigError(
            f"dataset job {job!r} not found in {settings.ws.jobs} — see `hybrid dataset status`"
        )
    return path


def job_status(settings: Settings, job: str = "last") -> dict[str, Any]:
    from adapters import jobs

    path = job_dir_for(settings, job)
    return {**jobs.read_status(path), "dir": str(path)}


def cancel_dataset_job(settings: Settings, job: str = "last") -> bool:
    """Ask a running dataset job to stop after its current passage; False when it was not running."""
    from adapters import jobs

    return jobs.cancel(job_dir_for(settings, job))


def resume_dataset_job(settings: Settings, job: str = "last") -> Path:
    """Relaunch a stopped, cancelled or killed dataset job; it continues from its progress.

    Raises:
        ConfigError: no such job, or it is running or finished.
    """
    from adapters import jobs

    path = job_dir_for(settings, job)
    status = jobs.read_status(path)
    if status["status"] in ("queued", "starting", "running"):
        raise ConfigError(
            f"dataset job {path.name} is still running — follow it with `hybrid dataset status`"
        )
    if status["status"] == "succeeded":
        raise ConfigError(f"dataset job {path.name} already finished — see `hybrid dataset show`")
    jobs.launch(path, WORKER_MODULE)
    return path


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m app.wiring.datasets JOB_DIR``: run (or continue) the build the job's spec names."""
    from adapters.jobs import SPEC_FILE, JobReporter
    from app.logs import setup_logging
    from app.settings import load_settings
    from app.wiring.collections import with_collection
    from domain.atomic import read_json

    job_dir = Path((sys.argv[1:] if argv is None else argv)[0])
    settings = load_settings()
    setup_logging(settings.log_level)
    spec = read_json(job_dir / SPEC_FILE)
    reporter = JobReporter(job_dir)
    reporter.install_signal_handlers()
    reporter.update(phase="building datasets", force=True)
    try:
        settings = with_collection(settings, spec["collection"])
        options = BuildOptions(
            n_eval=int(spec["n_eval"]),
            n_train=int(spec["n_train"]),
            seed=int(spec["seed"]),
            answers=str(spec.get("answers", "model")),  # a job from before the choice wrote answers
            check_train=bool(spec.get("check_train", False)),
        )
        report = build_datasets(
            settings,
            options,
            replace=bool(spec.get("replace")),
            on_progress=reporter.progress,
            should_stop=reporter.should_stop,
        )
    except HybridError as e:
        reporter.finish("failed", error=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not report["complete"]:
        reporter.finish(
            "cancelled",
            error=f"stopped after {report['processed']} passages — `hybrid dataset resume {job_dir.name}` continues",
            result=report,
        )
        return 1
    reporter.finish("succeeded", result=report)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
