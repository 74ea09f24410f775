"""The corpus validator: checks a bundled corpus folder (documents, ``train*.jsonl``, ``eval*.jsonl``)
and returns a JSON-ready report of counts and errors.

Document text comes from a ``load_text(path) -> str`` callable so the caller decides how PDF and
DOCX files are read (``load_plain_text`` here handles .md/.txt/.html with the stdlib only).

Checks: row schema and types (a malformed JSON line is reported with file and line, never raised);
unique ids; sources exist under ``docs/``; every key fact appears verbatim in its source document
(any listed one for multi-hop rows) and in the reference; every train answer and eval reference
scores 1.0 on ``domain.style.format_score``; eval questions are not near-duplicates of train
questions; and the required counts (``REQUIRED``). Facts are matched after whitespace
normalisation: runs of whitespace become one space, and spaces next to CJK characters are dropped
(PDF/DOCX extraction breaks lines at arbitrary points).

Near-duplicate measure: cosine similarity of character-3-gram count vectors of the lower-cased,
whitespace-normalised questions; a pair with cosine >= 0.85 (``NEAR_DUP_THRESHOLD``) is a
near-duplicate. Count shortfalls are listed as errors starting with ``count:``.

Above ~300 lines because every check fills one report over the same loaded documents and rows; the
checks are short functions, the report ties them together.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from domain.errors import DataError
from domain.style import NEUTRAL, StyleProfile, format_score, load_style

LoadText = Callable[[Path], str]

NEAR_DUP_MEASURE = "cosine of character-3-gram count vectors (lower-cased, whitespace-normalised)"
NEAR_DUP_THRESHOLD = 0.85
KINDS = ("fact", "format", "out_of_domain", "cross_lingual", "multi_hop")
# An eval row's split: variants are chosen on "tune" rows and reported on "heldout" rows.
SPLITS = ("tune", "heldout")
LANGS = ("en", "zh")
DOC_SUFFIXES = (".md", ".txt", ".html", ".htm", ".pdf", ".docx")
REQUIRED: dict[str, int] = {
    "docs": 40,
    "chars": 60_000,
    ".txt": 3,
    ".html": 3,
    ".pdf": 3,
    ".docx": 3,
    "train_rows": 400,
    "eval_rows": 120,
    "out_of_domain": 15,
    "cross_lingual": 15,
    "multi_hop": 10,
}
TRAIN_FIELDS = {"id": str, "lang": str, "question": str, "answer": str}
EVAL_FIELDS = {"id": str, "lang": str, "kind": str, "question": str, "reference": str}
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}]) | (?=[{_CJK}])")


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("p", "br", "li", "tr", "h1", "h2", "h3", "h4", "div", "table"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def load_plain_text(path: Path) -> str:
    """Text of a .md/.txt/.html file (HTML tags stripped); other suffixes raise ``DataError``."""
    suffix = path.suffix.lower()
    if suffix not in (".md", ".txt", ".html", ".htm"):
        raise DataError(f"{path}: no stdlib reader for {suffix} files; pass a load_text that reads them")
    raw = path.read_text(encoding="utf-8-sig")
    if suffix in (".html", ".htm"):
        parser = _TextOnly()
        parser.feed(raw)
        parser.close()
        return "".join(parser.parts)
    return raw


def normalize(text: str) -> str:
    """NFC, whitespace runs -> one space, no spaces next to CJK characters."""
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
    return _SPACE_NEAR_CJK.sub("", text)


def trigram_vector(text: str) -> Counter[str]:
    t = re.sub(r"\s+", " ", text.lower()).strip()
    return Counter(t[i : i + 3] for i in range(max(len(t) - 2, 1)))


def cosine(a: Counter[str], b: Counter[str]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def read_jsonl(path: Path, errors: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a JSONL file with their line numbers; bad lines become errors."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{path.name}:{n}: malformed JSON ({e.msg})")
            continue
        if not isinstance(row, dict):
            errors.append(f"{path.name}:{n}: row is not a JSON object")
            continue
        rows.append((n, row))
    return rows


def _schema(row: dict[str, Any], fields: Mapping[str, type], where: str, errors: list[str]) -> bool:
    ok = True
    for key, typ in fields.items():
        if not isinstance(row.get(key), typ) or not str(row.get(key)).strip():
            errors.append(f"{where}: field {key!r} missing or not a non-empty {typ.__name__}")
            ok = False
    if isinstance(row.get("lang"), str) and row["lang"] not in LANGS:
        errors.append(f"{where}: lang {row['lang']!r} not in {LANGS}")
        ok = False
    return ok


def _sources(row: dict[str, Any], where: str, errors: list[str]) -> list[str] | None:
    """The row's source paths ([] for null); None (with an error) when the field is malformed."""
    src = row.get("source", "__missing__")
    if src is None:
        return []
    if isinstance(src, str) and src.strip():
        return [src]
    if isinstance(src, list) and src and all(isinstance(s, str) and s.strip() for s in src):
        return list(src)
    errors.append(f"{where}: source must be null, a path, or a list of paths (got {src!r})")
    return None


class _Docs:
    """Lazy, cached, normalised document texts keyed by path relative to ``docs/``."""

    def __init__(self, docs_dir: Path, load_text: LoadText, errors: list[str]) -> None:
        self.dir, self.load, self.errors = docs_dir, load_text, errors
        self.cache: dict[str, str | None] = {}
        self.chars: dict[str, int] = {}
        self.failed: set[str] = set()

    def text(self, rel: str) -> str | None:
        if rel not in self.cache:
            path = self.dir / rel
            if not path.is_file():
                self.cache[rel] = None
            else:
                try:
                    raw = self.load(path)
                    self.chars[rel] = len(raw)
                    self.cache[rel] = normalize(raw)
                except Exception as e:  # noqa: BLE001 - any loader failure is a corpus error
                    self.errors.append(f"docs/{rel}: cannot load ({type(e).__name__}: {e})")
                    self.failed.add(rel)
                    self.cache[rel] = ""
        return self.cache[rel]


def _check_eval_row(
    row: dict[str, Any], where: str, docs: _Docs, errors: list[str], style: StyleProfile
) -> None:
    kind = row["kind"]
    if kind not in KINDS:
        errors.append(f"{where}: kind {kind!r} not in {KINDS}")
    if row.get("split", "tune") not in SPLITS:
        errors.append(f"{where}: split {row.get('split')!r} not in {SPLITS}")
    if format_score(row["reference"], row["lang"], style) != 1.0:
        errors.append(f"{where}: reference is not in house style (format_score < 1.0)")
    facts = row.get("key_facts")
    if not (
        isinstance(facts, list)
        and 1 <= len(facts) <= 3
        and all(isinstance(f, str) and f.strip() for f in facts)
    ):
        errors.append(f"{where}: key_facts must be a list of 1-3 non-empty strings")
        return
    sources = _sources(row, where, errors)
    if sources is None:
        return
    if kind == "multi_hop" and len(sources) < 2:
        errors.append(f"{where}: multi_hop rows need a list of at least 2 sources")
    if kind == "out_of_domain" and sources:
        errors.append(f"{where}: out_of_domain rows must have source null")
    if kind not in ("multi_hop", "out_of_domain") and len(sources) != 1:
        errors.append(f"{where}: {kind} rows need exactly one source path")
    ref = normalize(row["reference"])
    for fact in facts:
        if normalize(fact) not in ref:
            errors.append(f"{where}: key fact {fact!r} not in the reference")
    texts = []
    for rel in sources:
        text = docs.text(rel)
        if text is None:
            errors.append(f"{where}: source {rel!r} not found under docs/")
            return
        if rel in docs.failed:
            return  # the load failure is already reported once
        texts.append(text)
    for fact in facts:
        if texts and not any(normalize(fact) in t for t in texts):
            errors.append(f"{where}: key fact {fact!r} not found in {', '.join(sources)}")


def _near_duplicates(
    evals: list[tuple[str, str]], trains: list[tuple[str, str]], threshold: float
) -> list[dict[str, Any]]:
    train_vecs = [(tid, trigram_vector(q)) for tid, q in trains]
    pairs = []
    for eid, q in evals:
        ev = trigram_vector(q)
        best = max(((cosine(ev, tv), tid) for tid, tv in train_vecs), default=(0.0, ""))
        if best[0] >= threshold:
            pairs.append({"eval_id": eid, "train_id": best[1], "cosine": round(best[0], 3)})
    return pairs


def check_corpus(
    corpus_dir: Path | str,
    load_text: LoadText = load_plain_text,
    *,
    near_dup_threshold: float = NEAR_DUP_THRESHOLD,
    style: StyleProfile | None = None,
) -> dict[str, Any]:
    """Validate the corpus at ``corpus_dir`` and return the report (``ok`` is False on any error).

    Args:
        corpus_dir: folder holding ``docs/``, ``train*.jsonl`` and ``eval*.jsonl``.
        load_text: reads one document's text; used for every document under ``docs/``.
        near_dup_threshold: cosine at or above which an eval/train question pair is a near-duplicate.
        style: the style answers and references follow (default: the folder's ``style.json``, else
            the neutral style).
    """
    root = Path(corpus_dir)
    if style is None:
        style = load_style(root / "style.json") if (root / "style.json").is_file() else NEUTRAL
    docs_dir = root / "docs"
    errors: list[str] = []
    docs = _Docs(docs_dir, load_text, errors)
    files = sorted(p for p in docs_dir.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    ext_counts = Counter(p.suffix.lower() for p in files)
    for p in files:
        docs.text(p.relative_to(docs_dir).as_posix())
    chars = sum(docs.chars.values())

    ids: dict[str, str] = {}
    langs: dict[str, Counter[str]] = {}
    train_qs: list[tuple[str, str]] = []
    eval_qs: list[tuple[str, str]] = []
    kinds: Counter[str] = Counter()
    n_train = n_eval = 0
    for split, fields in (("train", TRAIN_FIELDS), ("eval", EVAL_FIELDS)):
        for path in sorted(root.glob(f"{split}*.jsonl")):
            for n, row in read_jsonl(path, errors):
                where = f"{path.name}:{n}"
                if not _schema(row, fields, where, errors):
                    continue
                rid = row["id"]
                if rid in ids:
                    errors.append(f"{where}: duplicate id {rid!r} (first in {ids[rid]})")
                ids.setdefault(rid, where)
                langs.setdefault(row["lang"], Counter())[split] += 1
                if split == "train":
                    n_train += 1
                    train_qs.append((rid, row["question"]))
                    if format_score(row["answer"], row["lang"], style) != 1.0:
                        errors.append(f"{where}: answer is not in house style (format_score < 1.0)")
                    for rel in _sources(row, where, errors) or []:
                        if docs.text(rel) is None:
                            errors.append(f"{where}: source {rel!r} not found under docs/")
                else:
                    n_eval += 1
                    kinds[row["kind"]] += 1
                    eval_qs.append((rid, row["question"]))
                    _check_eval_row(row, where, docs, errors, style)

    dups = _near_duplicates(eval_qs, train_qs, near_dup_threshold)
    for d in dups:
        errors.append(f"near-duplicate: eval {d['eval_id']} ~ train {d['train_id']} (cosine {d['cosine']})")
    have = {"docs": len(files), "chars": chars, "train_rows": n_train, "eval_rows": n_eval}
    have.update({ext: ext_counts.get(ext, 0) for ext in (".txt", ".html", ".pdf", ".docx")})
    have.update({k: kinds.get(k, 0) for k in ("out_of_domain", "cross_lingual", "multi_hop")})
    shortfalls = [
        f"count: {k} = {have[k]:,}, need >= {need:,}" for k, need in REQUIRED.items() if have[k] < need
    ]
    errors.extend(shortfalls)
    return {
        "docs": dict(sorted(ext_counts.items())),
        "chars": chars,
        "train_rows": n_train,
        "eval_rows": n_eval,
        "eval_kinds": {k: kinds.get(k, 0) for k in KINDS}
        | {k: v for k, v in kinds.items() if k not in KINDS},
        "langs": {lang: dict(c) for lang, c in sorted(langs.items())},
        "near_duplicates": {"measure": NEAR_DUP_MEASURE, "threshold": near_dup_threshold, "pairs": dups},
        "required": dict(REQUIRED),
        "errors": errors,
        "ok": not errors,
    }
