"""`hybrid adapters list|activate|rollback|publish`: a collection's adapter versions, which one is
in use, and copying one to the bundle's default adapter. The work lives in
``app.wiring.active_adapter``; this module parses arguments and prints results.
"""

from __future__ import annotations

import argparse

from app.commands.args import add_collection
from app.commands.progress import add_json_option, emit_json
from app.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("adapters", help="list, activate, roll back or publish adapter versions")
    asub = a.add_subparsers(dest="adapters_command", metavar="ACTION", required=True)
    lst = asub.add_parser("list", help="list versions (active one marked)")
    add_collection(lst)
    add_json_option(lst, "the versions")
    lst.set_defaults(func=run_list)
    act = asub.add_parser("activate", help="make VERSION the active adapter")
    act.add_argument("version")
    add_collection(act)
    act.set_defaults(func=run_activate)
    rb = asub.add_parser("rollback", help="re-activate the previously active version")
    add_collection(rb)
    rb.set_defaults(func=run_rollback)
    pub = asub.add_parser(
        "publish", help="copy a version to its collection's bundled default adapter (or --to a folder)"
    )
    pub.add_argument("version", help='a version name, "active" or "latest"')
    pub.add_argument("--to", default=None, help="target folder (default: the bundle's default adapter)")
    add_collection(pub)
    pub.set_defaults(func=run_publish)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.active_adapter import adapter_versions, current_adapter, shipped_default_adapter

    versions = adapter_versions(settings)
    _, label = current_adapter(settings)
    default = shipped_default_adapter(settings)
    data = {
        "collection": settings.collection,
        "in_use": label,
        "versions": [v.to_json() for v in versions],
        "default_adapter": str(default) if default is not None else None,
    }
    if args.json_path:
        emit_json(data, args.json_path)
        return 0
    if not versions:
        print(f"collection {settings.collection} has no adapter versions yet — `hybrid train` makes one")
    for v in versions:
        m = v.metrics
        gate = m.get("gate") or {}
        score = gate.get("candidate_score")
        print(
            f"{'*' if v.active else ' '} {v.version:<10} {v.created_at:<20} steps {m.get('steps', '?'):<5} "
            f"val loss {m.get('best_val_loss')!s:<8} gate {_gate_word(v.gate_passed):<8}"
            + (f" combined {score:.3f}" if isinstance(score, float) else "")
            + ("" if v.has_gguf else "  (no GGUF)")
        )
    print(f"in use: {label or 'none (base model only)'}")
    return 0


def _gate_word(passed: bool | None) -> str:
    return {True: "passed", False: "failed", None: "-"}[passed]


def run_activate(args: argparse.Namespace, settings: Settings) -> int:
    from app.wiring.active_adapter import activate_version

    info = activate_version(settings, args.version)
    print(f"active adapter: {info.version}")
    return 0


def run_rollback(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001
    from app.wiring.active_adapter import rollback_version

    info = rollback_version(settings)
    print(f"rolled back; active adapter: {info.version}")
    return 0


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from app.wiring.active_adapter import publish_version

    target = publish_version(settings, args.version, Path(args.to) if args.to else None)
    print(f"published {args.version} to {target}")
    return 0
