"""The `hybrid` command line: parses arguments and dispatches to the command modules.

Each module in ``app/commands`` owns a group of subcommands and exposes ``register(subparsers)``.
Errors the user can fix (``HybridError``, a full disk) print one line with the next step and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from domain.errors import HybridError
from domain.plain import one_line

COMMAND_MODULES = (
    "app.commands.setup_cmd",
    "app.commands.model_cmd",
    "app.commands.corpus_cmd",
    "app.commands.index_cmd",
    "app.commands.answer_cmd",
    "app.commands.dataset_cmd",
    "app.commands.eval_cmd",
    "app.commands.train_cmd",
    "app.commands.adapters_cmd",
    "app.commands.export_cmd",
    "app.commands.app_cmd",
    "app.commands.serve_cmd",
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybrid",
        description="Hybrid Assistant: RAG + LoRA on your own documents, offline on a CPU.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    from app.commands.args import add_profile

    add_profile(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    # Library progress bars (tqdm in transformers' GGUF loader) would fight with ours.
    os.environ.setdefault("TQDM_DISABLE", "1")
    # torch's OpenMP threads would busy-wait between ops and starve llama.cpp's on 2 cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from app.logs import setup_logging
    from app.settings import load_settings

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        settings = load_settings()
    except Exception as e:  # pydantic validation of HYBRID_* variables
        print(f"error: invalid settings: {e}".splitlines()[0], file=sys.stderr)
        return 2
    setup_logging("DEBUG" if args.verbose else settings.log_level)
    try:
        if getattr(args, "collection", None):
            from app.wiring.collections import with_collection

            settings = with_collection(settings, args.collection)
        if getattr(args, "profile", None):
            from app.wiring.models import with_profile

            settings = with_profile(settings, args.profile)
        return int(args.func(args, settings) or 0)
    except HybridError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        logger.debug("details", exc_info=True)
        return 2
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        where = f" writing {one_line(e.filename)}" if e.filename else ""
        print(f"error: the disk is full{where} — free some space and re-run", file=sys.stderr)
        logger.debug("details", exc_info=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stored data is unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
