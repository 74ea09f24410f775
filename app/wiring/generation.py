"""Wires the answering generator: the backend named in settings (llama.cpp by default, transformers
as the reference), the base model from ``app.wiring.models`` and the adapter in use (from
``app.wiring.active_adapter``: the active workspace version, else the bundled default adapter).
One generator per process and set of files, built under a lock; the generators themselves
serialise requests.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings
from app.wiring.active_adapter import current_adapter, require_fit
from app.wiring.models import base_gguf_path, base_hf_path, largest_ready_gguf, profile
from domain.answer_language import line_translation_messages
from domain.crosslingual import Translate, translation_messages
from domain.errors import ConfigError, ModelMissingError

if TYPE_CHECKING:
    from domain.ports import Generator, Message

logger = logging.getLogger(__name__)

LORA_GGUF = "lora.gguf"
SEED = 0
TRANSLATE_CTX = 512  # a question and its translation; its own context keeps the answer's prefix warm
TRANSLATE_TOKENS = 96
TRANSLATE_LINE_TOKENS = 192  # an answer line of up to about 60 English words, in Chinese
ANSWERING_MODEL = "the answering model"  # translator_label when no translating profile is set up

_build_lock = threading.Lock()


def build_generator(settings: Settings, *, adapter_dir: Path | None = None) -> Generator:
    """The generator for ``settings`` (built once per process for the same files and threads).

    Args:
        adapter_dir: answer with this adapter version folder instead of the one in use (the
            evaluation gate scores a candidate this way).

    Raises:
        ModelMissingError: the base model is not where settings say (next step: `hybrid setup`),
            or ``adapter_dir`` lacks the file the backend needs.
        SetupError: the backend library is missing or a file cannot be loaded.
        ConfigError: ``adapter_dir`` with the remote backend (a candidate is scored locally).
        AdapterMismatchError: ``adapter_dir`` was trained on another base model.
    """
    gen = settings.generation
    if gen.backend == "remote":
        if adapter_dir is not None:
            raise ConfigError(
                "a new adapter is scored on this machine, not on the remote server — run training "
                "and the gate with HYBRID_GENERATION__BACKEND=llama_cpp"
            )
        return _remote_generator(settings)
    folder: Path | None
    label: str | None
    if adapter_dir is not None:
        folder, label = Path(adapter_dir), Path(adapter_dir).name
        require_fit(settings, folder, label)
        if gen.backend == "llama_cpp" and not (folder / LORA_GGUF).is_file():
            raise ModelMissingError(
                f"adapter {folder} has no {LORA_GGUF} — convert it (the training job writes it) "
                "or evaluate with HYBRID_GENERATION__BACKEND=transformers"
            )
    else:
        folder, label = current_adapter(settings)
    if gen.backend == "transformers":
        base = base_hf_path(settings)
        adapter = folder
    else:
        base = base_gguf_path(settings)
        adapter = folder / LORA_GGUF if folder is not None else None
        if adapter is not None and not adapter.is_file():
            logger.warning(
                "adapter %s has no %s; answering without it — retrain or re-export it for llama.cpp",
                label,
                LORA_GGUF,
            )
            adapter, label = None, None
    with _build_lock:
        return _cached_generator(gen.backend, base.resolve(), adapter, label, gen.n_threads, gen.n_ctx)


def other_language_profile(settings: Settings) -> str | None:
    """The profile that answers in the retrieval modes when the question and its best passage are
    in different languages (``answer.other_language_model``): the largest profile set up that
    translates well, when it is larger than the one answering and the answering model is a profile
    on llama.cpp (a model of one's own, or another backend, answers everything); else None."""
    from adapters.base_model import PROFILES

    if settings.answer.other_language_model == "off" or settings.generation.backend != "llama_cpp":
        return None
    if settings.models.base_gguf is not None:
        return None
    path = largest_ready_gguf(settings, translating=True)
    if path is None:
        return None
    other = next((p for p in PROFILES.values() if p.gguf_name == path.name), None)
    own = profile(settings)
    if other is None or other.key == own.key or (other.bytes or 0) <= (own.bytes or 0):
        return None
    return other.key


def build_other_language_generator(settings: Settings) -> tuple[Generator | None, str, str]:
    """The generator of ``other_language_profile`` (with the collection's adapter for that model,
    if it has one), its label and its adapter's label ("" without one); (None, "", "") when there
    is none."""
    from app.wiring.models import with_profile

    key = other_language_profile(settings)
    if key is None:
        return None, "", ""
    other = with_profile(settings, key)
    model = build_generator(other)
    adapter = current_adapter(other)[1] if model.has_adapter else None
    return model, profile(other).label, adapter or ""


@functools.lru_cache(maxsize=4)
def _cached_generator(
    backend: str, base: Path, adapter: Path | None, label: str | None, n_threads: int, n_ctx: int
) -> Generator:
    if backend == "transformers":
        from adapters.hf_generator import TransformersGenerator

        return TransformersGenerator(
            base, adapter_dir=adapter, n_threads=n_threads, seed=SEED, adapter_label=label
        )
    from adapters.llamacpp_generator import LlamaCppGenerator

    return LlamaCppGenerator(
        base, lora_path=adapter, n_threads=n_threads, n_ctx=n_ctx, seed=SEED, adapter_label=label
    )


def build_writer(settings: Settings) -> Generator:
    """The model that writes dataset rows (``writer_gguf``), on llama.cpp with no adapter; else the
    answering generator (its adapter is never switched on for rows).

    Raises:
        ModelMissingError: the named GGUF is not there.
    """
    path = writer_gguf(settings)
    if path is None:
        return build_generator(settings)
    if not path.is_file():
        raise ModelMissingError(
            f"dataset model {path} (HYBRID_DATASET__MODEL_GGUF) not found — fix the path or unset it"
        )
    gen = settings.generation
    with _build_lock:
        return _cached_generator("llama_cpp", path.resolve(), None, None, gen.n_threads, gen.n_ctx)


def writer_gguf(settings: Settings) -> Path | None:
    """The GGUF that writes dataset rows: ``settings.dataset.model_gguf``; else, unless the writer
    was chosen (``_writer_chosen``), the largest profile set up on this machine (a larger model
    writes questions its facts answer more often); None: the answering model writes them."""
    if settings.dataset.model_gguf is not None:
        return Path(settings.dataset.model_gguf).expanduser()
    if _writer_chosen(settings):
        return None
    largest = largest_ready_gguf(settings)
    return None if largest is None or largest.name == profile(settings).gguf_name else largest


def writer_hint(settings: Settings) -> str | None:
    """One line for the Datasets page and `hybrid dataset build` when nothing names the writer and a
    larger profile than the one writing could be set up; else None."""
    from adapters.base_model import PROFILES

    if _writer_chosen(settings) or writer_gguf(settings) is not None:
        return None
    largest = max((p for p in PROFILES.values() if p.assembled), key=lambda p: p.bytes or 0)
    if largest.key == profile(settings).key:
        return None
    return (
        f"{largest.label} writes questions that their facts answer more often: set it up "
        f"({largest.install_hint}) and the next build uses it"
    )


def _writer_chosen(settings: Settings) -> bool:
    """Whether settings choose the model that writes dataset rows: a dataset GGUF, a profile named
    for the command, a base GGUF of one's own, or a backend other than llama.cpp (the
    transformers and remote backends write with their own model)."""
    return (
        settings.dataset.model_gguf is not None
        or "profile" in settings.models.model_fields_set
        or settings.models.base_gguf is not None
        or settings.generation.backend != "llama_cpp"
    )


def build_translator(settings: Settings) -> Translate | None:
    """What translates questions for searching other languages (``index.translate_questions``):
    the largest profile set up that translates well, on llama.cpp without an adapter, in a context
    of its own; with "on" and no such profile, the answering model; None: no translation."""
    return _translator(settings, translator_label(settings), translation_messages, TRANSLATE_TOKENS)


def build_line_translator(settings: Settings) -> Translate | None:
    """What puts an answer line written in another language into the question's
    (``answer.translate_answers``; the same models as ``build_translator``), or None."""
    label = translator_label(settings, settings.answer.translate_answers)
    return _translator(settings, label, line_translation_messages, TRANSLATE_LINE_TOKENS)


def _translator(
    settings: Settings,
    label: str | None,
    messages: Callable[[str, str], list[Message]],
    max_new_tokens: int,
) -> Translate | None:
    """(text, language) -> the first line of the reply of the model ``label`` names to
    ``messages(text, language)``; None when ``label`` is None."""
    if label is None:
        return None
    if label == ANSWERING_MODEL:
        model = build_generator(settings)
    else:
        gen = settings.generation
        path = (settings.ws.models / label).resolve()  # where largest_ready_gguf found it
        with _build_lock:
            model = _cached_generator("llama_cpp", path, None, None, gen.n_threads, TRANSLATE_CTX)

    def translate(text: str, lang: str) -> str:
        pieces: list[str] = []
        stream = model.generate(messages(text, lang), adapter=False, max_new_tokens=max_new_tokens)
        try:
            for piece in stream:
                pieces.append(piece)
                if "\n" in piece and "".join(pieces).strip():
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return "".join(pieces)

    return translate


def translator_label(settings: Settings, mode: str | None = None) -> str | None:
    """Which model translates questions (``build_translator``; or answer lines, with ``mode`` =
    ``answer.translate_answers``): the file name of a profile's GGUF in the workspace's models
    folder, ``ANSWERING_MODEL``, or None (no translation). Part of the gate's fingerprint: it
    moves the ranking and the answers."""
    mode = mode or settings.index.translate_questions
    if mode == "off":
        return None
    path = largest_ready_gguf(settings, translating=True)
    if path is not None:
        return path.name
    return ANSWERING_MODEL if mode == "on" else None


def translate_hint(settings: Settings) -> str | None:
    """One line for Ask when questions are not translated for search only because no profile that
    translates well is set up (``index.translate_questions`` auto); else None."""
    from adapters.base_model import PROFILES

    if settings.index.translate_questions != "auto" or translator_label(settings) is not None:
        return None
    able = [p for p in PROFILES.values() if p.translates]
    if not able:
        return None
    best = max(able, key=lambda p: p.bytes or 0)
    return (
        f"passages in another language than the question are found better when {best.label} "
        f"translates the question: set it up ({best.install_hint})"
    )


def _remote_generator(settings: Settings) -> Generator:
    """The ``remote`` backend: the server named in ``settings.remote`` (its tuned model stands for
    the adapter; the collection's local adapter versions are not sent anywhere)."""
    remote = settings.remote
    key = remote.api_key.get_secret_value() if remote.api_key is not None else None
    with _build_lock:
        return _cached_remote(
            remote.url, remote.base_model, remote.tuned_model, key or None, remote.timeout_s
        )


@functools.lru_cache(maxsize=2)
def _cached_remote(
    url: str, base_model: str, tuned_model: str | None, api_key: str | None, timeout_s: float
) -> Generator:
    from adapters.remote_generator import RemoteGenerator

    return RemoteGenerator(
        url, base_model=base_model, tuned_model=tuned_model, api_key=api_key, timeout_s=timeout_s
    )


def clear_generator_cache() -> None:
    """Forget the built generators (tests; after files were replaced in place)."""
    with _build_lock:
        _cached_generator.cache_clear()
        _cached_remote.cache_clear()
