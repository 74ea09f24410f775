"""Searching across languages: the question is translated into each other language the index is
searched in, and each language's passages are ranked against the question in that language.

A multilingual embedder ranks a passage in the question's own language above one in another
language whatever the two say, and BM25 matches no words across languages; a Chinese question about
an English manual (or the English half of a bilingual folder) ranks the right passage low or not at
all. A short translation by a local model fixes both for that language's passages, while the
question's own language keeps the question as asked.

``TranslatingRetriever`` wraps any retriever that can search with translations (``index.hybrid``
and ``index.qdrant_retriever`` can); a translation the model got wrong in an obvious way
(``clean_translation``: empty, a code block, not in the wanted language, far longer than a
question) is not used, and the search goes on with the question alone for that language. So does a translation that fails (it is asked again
next time).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from domain.ports import Message
from domain.style import CJK_RE, detect_lang
from domain.types import Hit

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese"}
MAX_LENGTH_RATIO = 4  # a translation longer than this many times the question (plus 40) is an answer
CACHE_SIZE = 256

Translate = Callable[[str, str], str]  # (question, target language) -> raw model output


class SearchesTranslated(Protocol):
    """A retriever that can search each language with the question translated into it."""

    def search(
        self, query: str, *, k: int = 5, translations: Mapping[str, str] | None = None
    ) -> list[Hit]: ...

    def search_languages(self) -> list[str]: ...


def translation_messages(text: str, lang: str, *, what: str = "question", end: str = "") -> list[Message]:
    """The chat that asks a model for ``text`` (a ``what``: a question, an answer line) in ``lang``
    and nothing else; ``end`` is added to the reply's instruction."""
    name = LANGUAGE_NAMES.get(lang, lang)
    system = (
        f"Translate the user's {what} into {name}. Keep product names, codes, numbers, commands, "
        f"options and file names exactly as they are. Reply with the {name} {what} only{end}."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def clean_translation(raw: str, question: str, lang: str) -> str | None:
    """The translation in a model's reply: its first non-empty line without quotes or a label;
    None when it is not usable (a code block, fewer than two words, the question itself, not in
    ``lang``, or much longer than a question would be — the model answered instead of translating).

    >>> clean_translation('"How do I set a proxy for APT?"\\nExtra', "如何为 APT 设置代理？", "en")
    'How do I set a proxy for APT?'
    >>> clean_translation("APT 代理", "如何为 APT 设置代理？", "en") is None
    True
    """
    line = next((x.strip() for x in raw.splitlines() if x.strip()), "")
    if line.startswith("```"):  # the model began a code block: no translation follows on the line
        return None
    if ":" in line[:16] or "：" in line[:16]:
        head, _, rest = line.replace("：", ":", 1).partition(":")
        if head.strip().lower() in {"translation", "english", "chinese", "question", "译文", "翻译"}:
            line = rest.strip()
    line = line.strip("\"'“”‘’「」` ")
    words = CJK_RE.findall(line) if lang == "zh" else re.findall(r"[^\W\d_]+", line)
    if len(words) < 2 or line == question.strip() or detect_lang(line) != lang:
        return None
    if len(line) > MAX_LENGTH_RATIO * len(question) + 40:
        return None
    return line


class TranslatingRetriever:
    """The ``Retriever`` port over ``inner``: every language ``inner`` searches in, other than the
    question's, is searched with ``translate``'s rendering of the question (translations are kept
    for the last ``CACHE_SIZE`` questions, so Compare's modes and repeated questions pay once)."""

    def __init__(self, inner: SearchesTranslated, translate: Translate) -> None:
        self.inner = inner
        self.translate = translate
        self._cache: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def translations(self, question: str) -> dict[str, str]:
        """Language -> the question in it, for each language searched other than the question's
        (asked of the model once per question and language while it stays in the cache)."""
        own = detect_lang(question)
        out: dict[str, str] = {}
        for lang in self._targets(own):
            text = self._translated(question, lang)
            if text:
                out[lang] = text
        return out

    def search(self, query: str, *, k: int = 5) -> list[Hit]:
        """The ``k`` best passages, each language ranked against the question in that language."""
        return self.search_translated(query, k=k)[0]

    def search_translated(self, query: str, *, k: int = 5) -> tuple[list[Hit], dict[str, str]]:
        """``search``'s passages and the translations it used (language -> text)."""
        translations = self.translations(query)
        return self.inner.search(query, k=k, translations=translations or None), translations

    def _targets(self, own: str) -> Sequence[str]:
        return [lang for lang in self.inner.search_languages() if lang != own and lang in LANGUAGE_NAMES]

    def _translated(self, question: str, lang: str) -> str | None:
        key = (question, lang)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            text = clean_translation(self.translate(question, lang), question, lang)
        except Exception as e:  # noqa: BLE001 — any model failure: search with the question alone
            logger.warning("could not translate the question into %s (%s); searching without it", lang, e)
            return None
        with self._lock:
            self._cache[key] = text
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return text
