"""Argument types for the `hybrid` parsers: a number out of range is rejected by argparse with a
one-line usage error before any command runs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _number(kind: Callable[[str], N], allowed: Callable[[N], bool], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if isinstance(value, float) and not math.isfinite(value) or not allowed(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
        return value

    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number of at least 1")
count = _number(int, lambda v: v >= 0, "a whole number of at least 0")
positive_float = _number(float, lambda v: v > 0, "greater than 0")
share = _number(float, lambda v: 0 <= v < 1, "at least 0 and below 1")


def add_collection(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """``--collection NAME`` (and ``aliases``, such as the older ``--index``): the collection a
    command reads and writes; the CLI selects it in settings before the command runs."""
    parser.add_argument(
        "--collection",
        *aliases,
        dest="collection",
        default=None,
        metavar="NAME",
        help="collection to use (default: settings' collection, `sample` unless set)",
    )
    add_profile(parser)


PROFILE_CHOICES = ("qwen", "qwen-1.5b", "smollm2")  # adapters.base_model.PROFILES, without importing it


def add_profile(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME``: the base model profile for this command, over the collection's choice and
    settings (the CLI applies it before the command runs)."""
    parser.add_argument(
        "--profile",
        choices=PROFILE_CHOICES,
        default=argparse.SUPPRESS,
        help="base model profile for this command (default: the collection's, else settings')",
    )
