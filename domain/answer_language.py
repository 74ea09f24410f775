"""The answer line in the question's language.

Asked in Chinese about an English passage (or the reverse), a small model often copies the
passage's language onto the answer line: "答案：Configuration errors of PAM may lock you out of your
own system." When a model that translates is at hand, the answering line is held back while it does
not yet read as the question's language (``reads_as``); a line that ends that way and is prose
(``needs_translation``: a sentence, not a command, a name or a number) is translated by that model
and shown in the question's language, the model's own line kept beside it. A translation that drops
a number, a command, an option, a path or a name of the line (``kept_terms``), or is not in the
wanted language, is not used: the line stays as the model wrote it. A table row has only its last
cell translated (``line_translator``). Which rows prompted each of these rules is written down in
corpus/measured/answer-language/.

Citations are found from the model's own line (its words are the passages' words), never from the
translation.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from domain.crosslingual import MAX_LENGTH_RATIO, Translate, translation_messages
from domain.ports import Message
from domain.style import CJK_RE

logger = logging.getLogger(__name__)

# A line in another language is translated when it has at least this many words of prose.
MIN_PROSE_WORDS = 3
# A Chinese line (for an English question) has at least this many CJK characters.
MIN_CJK = 4

_EDGE = "()[]{}\"'`“”‘’「」《》.,;:!?，。；：！？、"
_WORD_RE = re.compile(r"^[A-Za-z]+(?:'[a-z]+)?$")
# A token that must come through a translation unchanged: it holds a digit or a character of code
# or paths (the rest of the line is words, which a translation changes).
_KEPT_RE = re.compile(r"[0-9/\\_$=<>|@#%&*~`+]|^-{1,2}[A-Za-z]|\w\.\w|\w\(\d|\w::?\w")
# A capitalised word (letters, and digits, + or - after its first letter); one with a capital
# after its first letter is a name on its own.
_NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9+-]*[A-Za-z0-9+]$")
_INNER_CAPITAL_RE = re.compile(r"^[A-Za-z][a-z0-9+-]*[A-Z][A-Za-z0-9+-]*$")
_CLOSING = ")]}\"'”’」》"
TABLE_CELL = " | "  # between the cells of a table row in a passage (``index`` writes rows so)
# A line that is a command at a shell prompt is never translated.
_PROMPT_RE = re.compile(r"^[$#]\s")

LineTranslator = Callable[[str, str], "str | None"]  # (answer line, question language) -> its translation


def prose_words(line: str) -> int:
    """Words of the line made of letters only (punctuation at their edges aside), Latin script.

    >>> prose_words("Characteristics of a filesystem can be tuned with tune2fs(8)")
    8
    >>> prose_words("ethtool。"), prose_words("Autotools、devscripts、module-assistant。")
    (1, 0)
    """
    return sum(1 for tok in line.split() if _WORD_RE.match(tok.strip(_EDGE)))


def needs_translation(line: str, lang: str) -> bool:
    """Whether an answer line written for a question in ``lang`` is prose in the other language:
    for Chinese, fewer than ``MIN_CJK`` CJK characters and at least ``MIN_PROSE_WORDS`` English
    words; for English, at least ``MIN_CJK`` CJK characters outnumbering its English words. Names,
    commands and numbers alone are never translated.

    >>> needs_translation("Configuration errors of PAM may lock you out.", "zh")
    True
    >>> needs_translation("ethtool", "zh"), needs_translation("Flatpak 支持 GNOME Software 的版本是 10.1。", "zh")
    (False, False)
    >>> needs_translation("年假为 15 个工作日。", "en"), needs_translation("15 days (十五天)", "en")
    (True, False)
    """
    if _PROMPT_RE.match(line.strip()):
        return False
    cjk = len(CJK_RE.findall(line))
    words = prose_words(line)
    if lang == "zh":
        return cjk < MIN_CJK and words >= MIN_PROSE_WORDS
    return cjk >= MIN_CJK and cjk > words


def reads_as(prefix: str, lang: str) -> bool:
    """Whether the start of an answer line already reads as ``lang`` (so it can be shown as it
    comes): for Chinese, two CJK characters and no more English words than CJK characters; for
    English, ``MIN_PROSE_WORDS`` English words before any CJK character (a Chinese line may start
    with a name).

    >>> reads_as("Harbor Pro 按每", "zh"), reads_as("Harbor Pro 按", "zh"), reads_as("The default is", "en")
    (True, False, True)
    >>> reads_as("Debian 将上述", "en"), reads_as("The default", "en")
    (False, False)
    >>> reads_as("15 ", "en"), reads_as("年假", "en")
    (False, False)
    """
    if lang == "zh":
        cjk = len(CJK_RE.findall(prefix))
        return cjk >= 2 and cjk >= prose_words(prefix)
    return prose_words(CJK_RE.split(prefix, maxsplit=1)[0]) >= MIN_PROSE_WORDS


def kept_terms(line: str) -> list[str]:
    """The tokens a translation of ``line`` must keep as they are: those with a digit or a
    character of code, paths or options, and names — a word with a capital after its first letter
    (TeX, GNOME, PostScript) or two or more capitalised words in a row inside a sentence (Donald
    Knuth, Harbor Pro). A single capitalised word may be a title word a translation renders
    ("See Section 1.5.2").

    >>> kept_terms("Run `apt-get update` then edit /etc/apt/sources.list (version 2.100).")
    ['/etc/apt/sources.list', '2.100']
    >>> kept_terms("Use tune2fs(8) with -O ^has_journal")
    ['tune2fs(8', '-O', '^has_journal']
    >>> kept_terms("TeX was made by Donald Knuth. See Section 5. Debian Reference covers PostScript tools")
    ['TeX', 'Donald', 'Knuth', '5', 'PostScript']
    """
    out: list[str] = []
    run: list[str] = []  # capitalised words in a row, inside a sentence

    def keep(*toks: str) -> None:
        out.extend(t for t in toks if t not in out)

    starts = True  # the next word starts a sentence
    for raw in line.split():
        tok = raw.strip(_EDGE)
        if not tok:
            continue
        if _KEPT_RE.search(tok) or _INNER_CAPITAL_RE.match(tok):
            keep(tok)
        if not starts and _NAME_RE.match(tok) and raw == tok:
            run.append(tok)
        else:
            if not starts and _NAME_RE.match(tok):
                run.append(tok)  # the last word of a run may carry punctuation
            if len(run) >= 2:
                keep(*run)
            run = []
        starts = raw.rstrip(_CLOSING).endswith((".", "!", "?", "。", "！", "？"))
    if len(run) >= 2:
        keep(*run)
    return out


def line_translation_messages(line: str, lang: str) -> list[Message]:
    """The chat that asks a model for the answer ``line`` in ``lang`` and nothing else."""
    return translation_messages(line, lang, what="text", end=", on one line")


def clean_line_translation(raw: str, line: str, lang: str) -> str | None:
    """The translation in a model's reply (its first non-empty line, without a label or quotes), or
    None when it is not usable: not in ``lang``, the line itself, far longer than the line, or
    missing one of the line's ``kept_terms``.

    >>> clean_line_translation("配置 PAM 出错可能把你锁在系统之外。", "Errors in PAM may lock you out.", "zh")
    '配置 PAM 出错可能把你锁在系统之外。'
    >>> clean_line_translation("使用 tune2fs 调整文件系统。", "Tune it with tune2fs(8) on ext4.", "zh") is None
    True
    """
    text = next((x.strip() for x in raw.splitlines() if x.strip()), "")
    head, sep, rest = text.replace("：", ":", 1).partition(":")
    if sep and head.strip().lower() in {"translation", "english", "chinese", "译文", "翻译", "中文"}:
        text = rest.strip()
    text = text.strip("\"'“”‘’「」 ")
    if not text or text == line.strip() or not _written_in(text, lang):
        return None
    if len(text) > MAX_LENGTH_RATIO * len(line) + 40:
        return None
    if any(term not in text for term in kept_terms(line)):
        return None
    return text


def _written_in(text: str, lang: str) -> bool:
    """Whether a translation is in ``lang``: Chinese has at least two CJK characters and is not
    English prose (paths and commands in it aside); English has an English word and no more CJK
    than a name would."""
    cjk = len(CJK_RE.findall(text))
    if lang == "zh":
        return cjk >= 2 and not needs_translation(text, "zh")
    return cjk < MIN_CJK and prose_words(text) >= 1


def line_translator(translate: Translate) -> LineTranslator:
    """``translate`` (raw model output for a text and a language) as a ``LineTranslator``: the
    cleaned translation, or None when it is unusable or the model failed. A table row (cells
    joined by " | ", as the index writes tables) has only its last cell translated: the cells
    before it are names, versions and sizes, kept as they are by construction."""

    def translated(line: str, lang: str) -> str | None:
        head, sep, last = line.rpartition(TABLE_CELL)
        if sep and not needs_translation(last, lang):
            return None
        try:
            text = clean_line_translation(translate(last, lang), last, lang)
        except Exception as e:  # noqa: BLE001 — any model failure: the line stays as written
            logger.warning("could not translate the answer line into %s (%s); kept as written", lang, e)
            return None
        return head + sep + text if text else None

    return translated
