"""`hybrid corpus check [PATH] [--json FILE]`: validate the bundled corpus (documents, training and
evaluation sets) and print its counts and errors. The checks live in ``domain.corpus_check``, the
document reader (PDF and DOCX text as indexing extracts it) in ``app.wiring.index``; this module
renders the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.commands.progress import add_json_option, emit_json
from app.settings import Settings
from domain.corpus_check import check_corpus
from domain.errors import ConfigError

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="work with the bundled sample corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate documents, train and eval sets; exit 1 when not ok")
    c.add_argument("path", nargs="?", default=None, help=f"corpus folder (default: {DEFAULT_CORPUS})")
    add_json_option(c, "the report")
    c.set_defaults(func=run_check)


def run_check(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001
    root = Path(args.path) if args.path else DEFAULT_CORPUS
    if not (root / "docs").is_dir():
        raise ConfigError(
            f"{root} has no docs/ folder; pass the corpus folder, e.g. `hybrid corpus check corpus`"
        )
    from app.wiring.index import load_text

    report = check_corpus(root, load_text)
    if args.json_path is not None:
        emit_json(report, args.json_path)
    if args.json_path != "-":
        _print_summary(report)
    return 0 if report["ok"] else 1


def _print_summary(report: dict[str, Any]) -> None:
    docs = ", ".join(f"{ext} {n}" for ext, n in report["docs"].items())
    kinds = ", ".join(f"{k} {n}" for k, n in report["eval_kinds"].items())
    langs = ", ".join(f"{lang} {counts}" for lang, counts in report["langs"].items())
    nd = report["near_duplicates"]
    print(f"documents: {sum(report['docs'].values())} ({docs}); {report['chars']:,} characters")
    print(f"train rows: {report['train_rows']}; eval rows: {report['eval_rows']} ({kinds})")
    print(f"languages: {langs}")
    print(f"near-duplicates ({nd['measure']}, >= {nd['threshold']}): {len(nd['pairs'])}")
    errors = report["errors"]
    print(f"errors: {len(errors)}")
    for e in errors:
        print(f"  {e}")
    print("ok" if report["ok"] else "NOT OK")
