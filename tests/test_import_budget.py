"""Importing the core and the composition root must not load any heavy library, so pages render
and the CLI answers `--help` before torch and friends load."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "faiss", "sentence_transformers", "llama_cpp")

PROBE = """
import json, pkgutil, importlib, sys
import domain, app.wiring
for pkg in (domain, app.wiring):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
import app.cli, app.settings, app.wiring.setup
app.cli.build_parser()
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] in HEAVY)))
""".replace("HEAVY", repr(HEAVY))


def test_domain_and_wiring_load_no_heavy_library() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []


def test_probe_would_notice_a_heavy_import() -> None:
    """The probe can fail: importing torch shows up in its list."""
    code = f"import sys, json, torch; print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch" in json.loads(out.stdout.strip().splitlines()[-1])
