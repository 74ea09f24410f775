"""A module longer than about 300 lines says why in its docstring, in a sentence that starts
"Above ~300 lines because" — so a newcomer knows whether a long file is one thing or a split
waiting to happen, and a module that grows past the bound without a reason fails here."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND = 310  # "about 300": a few lines of slack before a reason is owed
REASON = "Above ~300 lines because"


def _tracked_modules() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file on disk
        out = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    return [ROOT / p for p in out if not p.startswith("tests/")]


def unexplained(paths: list[Path]) -> list[str]:
    """The modules of ``paths`` longer than ``BOUND`` lines whose docstring gives no reason."""
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= BOUND:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if REASON not in " ".join(doc.split()):
            out.append(f"{path.name} ({lines} lines)")
    return out


def test_long_modules_say_why_in_their_docstring() -> None:
    modules = _tracked_modules()
    assert len(modules) > 50  # the walk found the project, not an empty folder
    missing = unexplained(modules)
    assert not missing, f"long modules without '{REASON} …' in their docstring: {missing}"


def test_the_check_flags_a_long_module_only_without_a_reason(tmp_path: Path) -> None:
    filler = "x = 1\n" * (BOUND + 5)
    bare = tmp_path / "bare.py"
    bare.write_text('"""A module."""\n' + filler, encoding="utf-8")
    wrapped = tmp_path / "wrapped.py"
    wrapped.write_text(
        '"""A module.\n\nAbove ~300\nlines because it is one table."""\n' + filler, encoding="utf-8"
    )
    short = tmp_path / "short.py"
    short.write_text('"""A module."""\nx = 1\n', encoding="utf-8")
    assert unexplained([bare, wrapped, short]) == [f"bare.py ({BOUND + 6} lines)"]
