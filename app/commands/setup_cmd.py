"""`hybrid setup`: prepare the offline models and tools in the workspace, with a summary table."""

from __future__ import annotations

import argparse

from app.commands.args import add_profile
from app.commands.progress import add_json_option, emit_json, progress_bar
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup",
        help="assemble the base model, convert the embedder and build its int8 copy, extract converters",
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated steps: base_gguf,base_hf,embedder,embedder_int8,converters",
    )
    p.add_argument("--force", action="store_true", help="redo steps that are already done")
    add_profile(p)
    add_json_option(p, "the report")
    p.set_defaults(func=run)


def _human_bytes(n: int | None) -> str:
    if not n:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.setup import run_setup

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    quiet = args.json_path == "-"
    report = run_setup(
        settings,
        only=only,
        force=args.force,
        progress_factory=lambda desc: progress_bar(desc, quiet=quiet),
    )
    if args.json_path:
        emit_json(report, args.json_path)
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"hybrid setup — {report['profile']} — workspace {settings.ws.root}")
        for col in ("item", "status", "path", "size", "check", "seconds"):
            table.add_column(col)
        for it in report["items"]:
            check = (
                it.get("sha256")
                or (f"parity min cos {it['parity_min_cos']:.5f}" if "parity_min_cos" in it else "")
                or (f"version {it['version']}" if "version" in it else "")
            )
            table.add_row(
                it["name"],
                str(it.get("status", "")),
                str(it.get("path", "")),
                _human_bytes(it.get("bytes")),
                str(check),
                f"{it.get('seconds', 0):.1f}",
            )
        Console(stderr=False).print(table)
    return 0
