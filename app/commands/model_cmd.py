"""`hybrid model`: the base model profiles and their state, what a model file is (from its
metadata), and which profile a collection answers with."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.commands.args import PROFILE_CHOICES, add_collection
from app.commands.progress import add_json_option, emit_or_show
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="model profiles, what a model file is, a collection's model")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="the profiles, their state here, and the one selected")
    add_collection(lst)
    add_json_option(lst, "the list")
    lst.set_defaults(func=run_list)
    show = msub.add_parser("show", help="identify a GGUF file or a Hugging Face folder by its metadata")
    show.add_argument("path", nargs="?", type=Path, help="model to identify (default: the base that answers)")
    add_collection(show)
    add_json_option(show, "the metadata")
    show.set_defaults(func=run_show)
    use = msub.add_parser("use", help="make a collection answer with a profile (kept in the collection)")
    use.add_argument("name", nargs="?", choices=PROFILE_CHOICES, help="the profile")
    use.add_argument(
        "--clear", action="store_true", help="forget the collection's choice (settings' default)"
    )
    add_collection(use)
    use.set_defaults(func=run_use)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.models import describe_base, profiles_status

    rows = profiles_status(settings)

    def show(items: list[dict[str, Any]]) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"model profiles — collection {settings.collection}")
        for col in ("", "profile", "model", "languages", "packages", "GGUF", "training copy"):
            table.add_column(col)
        for r in items:
            table.add_row(
                "▶" if r["selected"] else "",
                str(r["profile"]),
                str(r["model"]),
                str(r["languages"]),
                "installed" if r["packages_installed"] else "missing",
                "ready" if r["gguf_ready"] else "run `hybrid setup --profile " + str(r["profile"]) + "`",
                "ready" if r["training_copy_ready"] else "not made",
            )
        console = Console()
        console.print(table)
        console.print(f"answers with: {describe_base(settings)}")

    return emit_or_show(rows, args.json_path, show)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.models import base_identity, identify_model

    if args.path is not None:
        info, sha = identify_model(args.path), None
    else:
        sha, info = base_identity(settings)
    data = {**info.to_json(), "sha256": sha}

    def show(d: dict[str, Any]) -> None:
        print(info.describe())
        for key in (
            "path",
            "format",
            "architecture",
            "parameters",
            "quantization",
            "context_length",
            "layers",
            "hidden",
        ):
            print(f"  {key:15} {d[key]}")
        if sha:
            print(f"  {'sha256':15} {sha}")

    return emit_or_show(data, args.json_path, show)


def run_use(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.collections import set_profile
    from app.wiring.models import describe_base, with_profile
    from domain.errors import ConfigError

    if not args.clear and not args.name:
        raise ConfigError("name a profile (" + ", ".join(PROFILE_CHOICES) + ") or pass --clear")
    collection = set_profile(settings, settings.collection, None if args.clear else args.name)
    chosen = with_profile(settings, collection.profile) if collection.profile else settings
    print(f"collection {collection.name} answers with {describe_base(chosen)}")
    return 0
