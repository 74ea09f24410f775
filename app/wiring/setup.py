"""Wires `hybrid setup`: puts every offline model and tool in the workspace, step by step (the
command's arguments and summary table live in ``app.commands.setup_cmd``).

Each step is idempotent (a second run reports "already done") and resumable (steps write to a
temporary place and rename at the end). The steps themselves live in ``adapters/`` and ``index/``;
this module orders them, resolves paths from settings, and reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.wiring.collections import REPO_ROOT
from domain.errors import SetupError
from domain.progress import ProgressFn, no_progress

logger = logging.getLogger(__name__)

LLAMA_CPP_VERSION = "0.3.36"

StepFn = Callable[[Settings, bool, ProgressFn], dict[str, Any]]


def default_sdist(settings: Settings) -> Path:
    """Where the llama-cpp-python sdist was saved by the install step."""
    if settings.models.llama_sdist:
        return settings.models.llama_sdist
    return REPO_ROOT / ".cache" / "sdist" / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"


def _base_gguf(settings: Settings, force: bool, on_progress: ProgressFn) -> dict[str, Any]:
    from adapters.base_model import assemble_base_gguf
    from app.wiring.models import base_gguf_path, profile, profile_gguf

    if settings.models.base_gguf is not None:  # the user's own file is used as is
        return {"name": "base_gguf", "path": str(base_gguf_path(settings)), "status": "user file"}
    chosen = profile(settings)
    if not chosen.assembled:
        path = profile_gguf(settings)
        return {"name": "base_gguf", "path": str(path), "bytes": path.stat().st_size, "status": "packaged"}
    return assemble_base_gguf(profile_gguf(settings), profile=chosen, force=force, on_progress=on_progress)


def _base_hf(settings: Settings, force: bool, on_progress: ProgressFn) -> dict[str, Any]:
    from adapters.base_model import materialize_base_hf
    from app.wiring.models import base_hf_target

    if settings.models.base_hf is not None:  # the user's own folder is used as is, never written
        return {"name": "base_hf", "path": str(settings.models.base_hf), "status": "user folder"}
    gguf, dest = base_hf_target(settings)
    return materialize_base_hf(gguf, dest, force=force, on_progress=on_progress)


def _embedder(settings: Settings, force: bool, on_progress: ProgressFn) -> dict[str, Any]:
    from index.e5_convert import setup_embedder

    return setup_embedder(settings.ws.embedder, force=force, on_progress=on_progress)


def _embedder_int8(settings: Settings, force: bool, on_progress: ProgressFn) -> dict[str, Any]:
    from app.wiring.embedder import int8_folder, resolve_embedder
    from index.int8_export import ParityError, setup_int8

    source, name = resolve_embedder(settings)
    try:
        return setup_int8(source, int8_folder(settings), name=name, force=force, on_progress=on_progress)
    except ParityError as e:
        if settings.index.embed_precision == "int8":
            raise
        # fp32 stays in use; the refusal is reported, and int8 cannot be selected until it passes.
        return {"name": "embedder_int8", "path": str(int8_folder(settings)), "status": f"not kept: {e}"}


def _converters(settings: Settings, force: bool, on_progress: ProgressFn) -> dict[str, Any]:  # noqa: ARG001
    from adapters.llama_tools import extract_converters

    sdist = default_sdist(settings)
    if not sdist.is_file():
        raise SetupError(
            f"llama-cpp-python sdist not found at {sdist} — run `make install` (it saves the sdist there) "
            "or set HYBRID_MODELS__LLAMA_SDIST"
        )
    return extract_converters(sdist, settings.ws.tools / f"llama.cpp-{LLAMA_CPP_VERSION}", force=force)


STEPS: tuple[tuple[str, str, StepFn], ...] = (
    ("base_gguf", "assemble and verify the profile's GGUF", _base_gguf),
    ("base_hf", "materialize the fp32 training copy", _base_hf),
    ("embedder", "convert multilingual-e5-small and check parity", _embedder),
    ("embedder_int8", "build the embedder's int8 copy and check it against fp32", _embedder_int8),
    ("converters", "extract llama.cpp's GGUF converters", _converters),
)


def run_setup(
    settings: Settings,
    *,
    only: list[str] | None = None,
    force: bool = False,
    progress_factory: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run the setup steps for the selected profile in order; returns {"profile", "model", "licence", "items"}.

    Args:
        settings: resolved settings (workspace, model overrides).
        only: step names to run (default all).
        force: redo steps even when their completion marker is present.
        progress_factory: ``progress_factory(description)`` returns a context manager yielding an
            ``on_progress`` callback (the CLI passes a rich progress bar).

    Raises:
        SetupError: a step failed; the message says what to do, and a re-run continues from there.
    """
    from app.wiring.models import profile

    settings.ws.ensure()
    items: list[dict[str, Any]] = []
    for name, description, step in STEPS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        if progress_factory is None:
            item = step(settings, force, no_progress)
        else:
            with progress_factory(f"{name}: {description}") as on_progress:
                item = step(settings, force, on_progress)
        item.setdefault("name", name)
        item.setdefault("seconds", round(time.perf_counter() - t0, 2))
        logger.info("setup step %s: %s in %.1f s", name, item.get("status", "done"), item["seconds"])
        items.append(item)
    chosen = profile(settings)
    return {"profile": chosen.key, "model": chosen.label, "licence": chosen.licence, "items": items}
