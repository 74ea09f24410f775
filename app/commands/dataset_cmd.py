"""`hybrid dataset build|status|cancel|resume|import|export|show`: a collection's evaluation and
training sets. Argument parsing and printing live here; the work lives in ``app.wiring.datasets``
(the build), ``app.wiring.dataset_rows`` (the row files) and ``app.wiring.dataset_job`` (the job).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.commands.args import add_collection, count
from app.commands.progress import add_json_option, emit_json, progress_bar
from app.settings import Settings
from app.wiring import jobs
from app.wiring.dataset_job import DATASET, start_dataset_job
from domain.errors import DataError
from domain.plain import one_line, terminal_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="build, review, import and export a collection's eval and train sets")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    b = dsub.add_parser(
        "build", help="write eval and train rows from the collection's documents with the base model"
    )
    add_collection(b)
    b.add_argument(
        "--eval", dest="n_eval", type=count, default=60, metavar="N", help="evaluation rows (default 60)"
    )
    b.add_argument(
        "--train", dest="n_train", type=count, default=200, metavar="N", help="training rows (default 200)"
    )
    b.add_argument("--seed", type=int, default=0, help="chooses the passages (default 0)")
    b.add_argument(
        "--answers",
        choices=("passage", "model"),
        default="passage",
        help="training answers from the passage's sentence (default) or written by the base model "
        "over the passage among distractors (one more, longer model call per row)",
    )
    b.add_argument(
        "--check-train",
        action="store_true",
        help="ask each training question again over its passage too, as evaluation rows always are "
        "(a round trip: better rows, about half as long again per row)",
    )
    b.add_argument("--replace", action="store_true", help="build over existing sets (they are backed up)")
    b.add_argument(
        "--fresh", action="store_true", help="discard an unfinished build instead of continuing it"
    )
    b.add_argument("--background", action="store_true", help="run as a background job and print its id")
    add_json_option(b, "the report")
    b.set_defaults(func=run_build)

    for name, what, func in (
        ("status", "show a dataset job's progress", run_status),
        ("cancel", "stop a running dataset job (what it made so far is kept)", run_cancel),
        ("resume", "continue a stopped, cancelled or killed dataset job", run_resume),
    ):
        s = dsub.add_parser(name, help=what)
        s.add_argument("job", nargs="?", default="last", help='a job id or "last" (default)')
        add_collection(s)
        if func is not run_cancel:
            s.add_argument("--follow", action="store_true", help="wait for the job with a progress bar")
            add_json_option(s, "the status")
        s.set_defaults(func=func)

    i = dsub.add_parser("import", help="add rows from a JSONL file (all lines are checked first)")
    i.add_argument("file", help="JSONL rows in the eval.jsonl or train.jsonl schema")
    i.add_argument("--kind", choices=("eval", "train"), required=True)
    i.add_argument(
        "--replace", action="store_true", help="make these rows the whole set (the old one is backed up)"
    )
    add_collection(i)
    add_json_option(i, "the result")
    i.set_defaults(func=run_import)

    e = dsub.add_parser("export", help="write the collection's rows to a JSONL file")
    e.add_argument("--kind", choices=("eval", "train"), required=True)
    e.add_argument("file", help="where to write the rows")
    add_collection(e)
    e.set_defaults(func=run_export)

    s = dsub.add_parser(
        "show",
        help="count the collection's rows by kind, language and split (--row: one row beside its passage)",
    )
    s.add_argument(
        "--row", default=None, metavar="ID", help="an evaluation row's id: print it beside its passage"
    )
    add_collection(s)
    add_json_option(s, "the summary")
    s.set_defaults(func=run_show)


def _show_row(settings: Settings, row_id: str, json_path: str | None) -> int:
    """One evaluation row beside the indexed passage its key facts stand in (marked ⟦ ⟧)."""
    from app.wiring import dataset_rows

    row = next((r for r in dataset_rows.load_rows(settings, "eval") if r.get("id") == row_id), None)
    if row is None:
        raise DataError(
            f"no evaluation row {one_line(row_id)!r} in collection {settings.collection!r} — "
            "`hybrid dataset export --kind eval FILE` lists them"
        )
    passage = dataset_rows.row_passage(settings, row)
    if json_path:
        emit_json({"row": row, "passage": passage}, json_path)
        return 0
    print(f"question: {one_line(str(row.get('question')))}")
    print(f"key facts: {' | '.join(one_line(f) for f in row.get('key_facts') or []) or 'none'}")
    if passage is None:
        print("no indexed passage of its source holds its key facts")
        return 0
    print(f"passage: {one_line(passage['path'])} § {one_line(passage['heading'])} (key facts marked ⟦ ⟧)")
    print(terminal_text(passage["marked"]))
    return 0


# ----------------------------------------------------------------------------- build
def run_build(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring import datasets

    if args.background:
        job_dir = start_dataset_job(
            settings,
            args.n_eval,
            args.n_train,
            args.seed,
            args.replace,
            fresh=args.fresh,
            answers=args.answers,
            check_train=args.check_train,
        )
        if args.json_path:
            emit_json({"job": job_dir.name, "dir": str(job_dir), "status": "started"}, args.json_path)
        if args.json_path != "-":
            print(job_dir.name)
            print(f"follow it with `hybrid dataset status {job_dir.name} --follow`", file=sys.stderr)
        return 0
    options = datasets.BuildOptions(
        n_eval=args.n_eval,
        n_train=args.n_train,
        seed=args.seed,
        answers=args.answers,
        check_train=args.check_train,
    )
    datasets.check_can_build(settings, args.replace)  # before the progress bar shows
    try:
        with progress_bar("building datasets", quiet=args.json_path == "-") as on_progress:
            report = datasets.build_datasets(
                settings, options, replace=args.replace, fresh=args.fresh, on_progress=on_progress
            )
    except KeyboardInterrupt:
        print("stopped — run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    return _print_report(report, args.json_path)


def _reasons(part: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in part["reasons"].items())
    return f"{part['rejected']} rejected" + (f" ({reasons})" if reasons else "")


def _print_report(report: dict[str, Any], json_path: str | None) -> int:
    if json_path:
        emit_json(report, json_path)
    if json_path == "-":
        return 0 if report.get("complete") else 2
    ev, tr = report["eval"], report["train"]
    splits = ", ".join(f"{k} {v}" for k, v in ev["by_split"].items())
    print(f"eval: {ev['kept']} kept ({ev['out_of_domain']} out of domain; {splits}), {_reasons(ev)}")
    print(f"train: {tr['kept']} kept, {_reasons(tr)}")
    minutes = f", {report['rows_per_minute']} rows per minute" if report.get("rows_per_minute") else ""
    writer = f", written by {report['model']}" if report.get("model") else ""
    print(f"{report['processed']} passages in {report['seconds']:.0f} s of generation{minutes}{writer}")
    if report.get("writer_hint"):
        print(f"tip: {report['writer_hint']}")
    if not report.get("complete"):
        print("the build stopped before the end — run it again to continue", file=sys.stderr)
        return 2
    files = report.get("files") or {}
    for kind in ("eval", "train", "rejects"):
        if files.get(kind):
            print(f"{kind}: {one_line(files[kind])}")
    for note in report.get("notes") or []:
        print(f"note: {note}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- jobs
def _eta(status: dict[str, Any]) -> str:
    eta = status.get("eta_s")
    return (
        f", ETA {int(eta) // 60}m{int(eta) % 60:02d}s"
        if eta is not None and status["status"] == "running"
        else ""
    )


def _print_status(status: dict[str, Any], json_path: str | None) -> int:
    if json_path:
        emit_json(status, json_path)
    if json_path != "-":
        print(
            f"dataset job {status['id']}: {status['status']}, {status.get('step') or 0}/{status.get('total') or 0} "
            f"passages{_eta(status)}" + (f" — {status['message']}" if status.get("message") else "")
        )
        if status.get("error"):
            print(one_line(status["error"]), file=sys.stderr)
        if status["status"] == "succeeded" and status.get("result"):
            _print_report(status["result"], None)
    return 2 if status["status"] == "failed" else 0


def _follow(job_dir: Any, json_path: str | None) -> dict[str, Any]:
    with progress_bar("building datasets", quiet=json_path == "-") as on_progress:
        return {**jobs.wait(job_dir, on_progress), "dir": str(job_dir)}


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    if args.follow:
        return _print_status(_follow(jobs.find(settings, DATASET, args.job), args.json_path), args.json_path)
    return _print_status(jobs.status(settings, DATASET, args.job), args.json_path)


def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    status = jobs.status(settings, DATASET, args.job)
    if jobs.cancel(settings, DATASET, args.job):
        print(f"cancelling {status['id']} — `hybrid dataset resume` continues it")
    else:
        print(f"dataset job {status['id']} is not running ({status['status']})")
    return 0


def run_resume(args: argparse.Namespace, settings: Settings) -> int:
    job_dir = jobs.resume(settings, DATASET, args.job)
    print(f"resumed dataset job {job_dir.name}", file=sys.stderr)
    if args.follow:
        return _print_status(_follow(job_dir, args.json_path), args.json_path)
    return 0


# ----------------------------------------------------------------------------- rows
def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring import dataset_rows

    result = dataset_rows.import_rows(settings, args.kind, args.file, replace=args.replace)
    if args.json_path:
        emit_json(result, args.json_path)
    if args.json_path != "-":
        print(
            f"imported {result['imported']} {args.kind} rows ({result['replaced_ids']} replaced rows of the same id); "
            f"{result['rows']} rows in {one_line(result['path'])}"
        )
        if result["backup"]:
            print(f"the previous file is kept as {one_line(result['backup'])}")
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring import dataset_rows

    n = dataset_rows.export_rows(settings, args.kind, args.file)
    print(f"wrote {n} {args.kind} rows to {one_line(args.file)}")
    return 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring import dataset_rows

    if args.row is not None:
        return _show_row(settings, args.row, args.json_path)
    summary = dataset_rows.dataset_summary(settings)
    if args.json_path:
        emit_json(summary, args.json_path)
        return 0
    print(f"collection {summary['collection']}")
    for kind in ("eval", "train"):
        part = summary[kind]
        where = one_line(part["path"]) + ("" if part["own"] else " (bundled)") if part["path"] else "none yet"
        counts = [
            ", ".join(f"{k} {v}" for k, v in part.get(key, {}).items())
            for key in ("by_kind", "by_lang", "by_split")
        ]
        print(f"{kind}: {part['rows']} rows — {' · '.join(c for c in counts if c)} — {where}")
    build = summary.get("build")
    if build and not build["complete"]:
        o = build["options"]
        print(
            f"an unfinished build has processed {build['processed']} passages — "
            f"`hybrid dataset build --eval {o.get('n_eval')} --train {o.get('n_train')} --seed {o.get('seed')}` "
            "continues it (`hybrid dataset resume` if it ran as a job)"
        )
    return 0
