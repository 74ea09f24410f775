"""Wires building a collection's evaluation and training sets from its own documents with the base
model: the options, one run over the phases (``_Build``), and ``build_datasets`` (in the foreground,
or in a background job through ``app.wiring.dataset_job``). What makes a row, and whether it is
kept, is ``domain.dataset_build``'s business; the build's journal is ``app.wiring.dataset_journal``'s
and the row files are ``app.wiring.dataset_rows``'s.

A build keeps its progress in ``<collection>/datasets/build/``: ``spec.json`` (its options),
``progress.jsonl`` (the journal) and, once complete, ``rejects.jsonl`` and ``report.json``.
Finished sets replace ``datasets/eval.jsonl`` and ``datasets/train.jsonl`` atomically (backed up
first). Above ~300 lines because ``_Build``, one run over the phases, is one class.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import Settings
from app.wiring.dataset_journal import BUILD, PROGRESS, Journal, read_json_dict
from app.wiring.dataset_rows import jsonl, own_path, write_set
from domain import dataset_build as ds
from domain.answer_format import LineWriter
from domain.errors import ConfigError, DataError, GenerationError
from domain.progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from app.wiring.collections import Collection
    from domain.ports import Generator
    from domain.types import Chunk

logger = logging.getLogger(__name__)

ANSWER_SOURCES = ("passage", "model")
QUESTION_TOKENS = 96
CHECK_TOKENS = 40  # the round trip's reply: one short phrase
RETRY_SUFFIX = "~again"  # the journal key of a training passage's second, sampled attempt
RETRY_TEMPERATURE = 0.8
MIN_FOR_RATE = 10  # passages a phase reads before its keep rate estimates how many more it needs
MIN_RATE = 0.05
ANSWER_TOKENS = 192
DISTRACTORS = (2, 3)
OUTPUT_CHARS = 600  # of the model's reply kept with each journal line, to see why a row failed


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
    def model(self) -> str | None:
        """The name of the model that wrote this run's rows (None until one was asked)."""
        return self._generator.name if self._generator is not None else None

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
        temperature: float = 0.0,
    ) -> str:
        """The model's reply after ``prefill`` (prefill included); see ``_collect``."""
        return self._collect(
            lambda: self.generator.generate(
                messages,
                adapter=False,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                prefill=prefill,
            ),
            prefill,
        )

    def _collect(self, start: Callable[[], Iterator[str]], prefill: str = "") -> str:
        """``prefill`` and the pieces ``start()`` streams; a stop request ends it at once (the
        passage is then processed again by the next run)."""
        text = [prefill]
        try:
            pieces = start()
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
        reply = self._generate(
            ds.question_messages(chunk),
            prefill=ds.QUESTION_PREFILL,
            max_new_tokens=QUESTION_TOKENS,
            temperature=temperature,
        )
        record["output"] = reply[:OUTPUT_CHARS]
        draft = ds.parse_draft(reply)
        record["draft"] = {"question": draft.question, "facts": list(draft.facts)}
        question = ds.check_question(draft, chunk, self.questions)
        if not round_trip:
            return ds.check_facts(question, draft, chunk)
        again = self._generate(
            ds.check_messages(question, chunk), prefill=ds.CHECK_PREFILL, max_new_tokens=CHECK_TOKENS
        )
        record["check_output"] = again[:OUTPUT_CHARS]
        return ds.check_facts(question, draft, chunk, again)

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
            writer = LineWriter(self.style, rec["lang"])
            reply = self._collect(
                lambda: writer.write(self.generator, messages, adapter=False, max_new_tokens=ANSWER_TOKENS)
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


def prepare_build(settings: Settings, options: BuildOptions, *, replace: bool, fresh: bool) -> None:
    """What a build does before its first passage, for a build another process runs (a job): the
    checks, and its options written to the build folder (or refused: see ``build_datasets``)."""
    from app.wiring.collections import get_collection

    check_can_build(settings, replace)
    folder = get_collection(settings).paths.datasets / BUILD
    with _locked(folder):
        _prepare(folder, options, replace=replace, fresh=fresh)


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


def options_from_spec(spec: dict[str, Any]) -> BuildOptions:
    """The options a build's or a job's spec names (one from before ``answers`` meant "model")."""
    given = {**asdict(BuildOptions()), "answers": "model", **spec}
    return BuildOptions(**{k: given[k] for k in asdict(BuildOptions())})


def _prepare(folder: Path, options: BuildOptions, *, replace: bool, fresh: bool) -> None:
    """Start over when asked or after a finished build; refuse to mix options with an unfinished one."""
    from domain.atomic import write_json_atomic

    report = read_json_dict(folder / "report.json") or {}
    spec = read_json_dict(folder / "spec.json")
    if spec is not None and not fresh and not report.get("complete"):
        saved = asdict(options_from_spec(spec))
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
            report = _report(coll, run, complete=False, wall_s=time.monotonic() - started)
        else:
            check_replace(coll, replace)
            report = _finish(coll, folder, run, wall_s=time.monotonic() - started)
    if generator is None:
        from app.wiring.generation import writer_hint

        report["writer_hint"] = writer_hint(settings)
    return report


def _base_generator(settings: Settings) -> Generator:
    from app.wiring.generation import build_writer

    return build_writer(settings)


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
        backup = write_set(coll, kind, rows)
        backups += [str(backup)] if backup else []
        files[kind] = str(own_path(coll, kind))
    rejects = [r for r in journal.records if not r.get("kept")]
    write_text_atomic(folder / "rejects.jsonl", jsonl(rejects))
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
        "model": run.model,
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
