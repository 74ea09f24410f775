"""Counting stored corrections per language for the Train page, read through the corrections store
(``domain.corrections``) without opening any model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def correction_languages(db: Path) -> Counter[str]:
    """How many corrections the store at ``db`` holds, per language ("en", "zh", …)."""
    if not Path(db).is_file():
        return Counter()
    from domain.corrections import CorrectionStore

    from domain.style import detect_lang

    store = CorrectionStore(db)
    return Counter(getattr(c, "lang", None) or detect_lang(c.question) for c in store.all())
