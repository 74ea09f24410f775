"""Finding and reading the documents of a folder: which files count, which are skipped and why,
how bytes become text (encoding detection with charset-normalizer), and which parser a suffix uses.

Unusable files become ``SkippedFile`` rows (or ``DocumentError`` with a reason tag) so a run goes on;
format details live in ``index.formats``, splitting in ``index.splitter``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from domain.errors import DocumentError
from index.formats import (
    Extracted,
    Section,
    extract_docx,
    extract_html,
    extract_markdown,
    extract_pdf,
    extract_plain,
    normalize_newlines,
)

logger = logging.getLogger(__name__)

SUFFIX_KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
TEXT_KINDS = ("markdown", "text", "html")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


@dataclass(frozen=True)
class SourceFile:
    """A candidate document: ``path`` relative to the folder (POSIX separators)."""

    path: str
    abspath: Path
    size: int
    kind: str


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the index, with a short reason tag and a human detail."""

    path: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class LoadedDocument:
    """A document's extracted text with its title, heading sections and kind."""

    path: str
    title: str
    text: str
    sections: tuple[Section, ...]
    kind: str


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$")


def scan_folder(root: str | Path, *, max_file_bytes: int) -> tuple[list[SourceFile], list[SkippedFile]]:
    """List the documents under ``root`` (sorted by path) and the files that cannot be used.

    Hidden files and folders are left out silently; links are followed only to files inside
    ``root``; files over ``max_file_bytes`` or of unknown type are reported as skipped.
    """
    base = Path(root).expanduser().resolve()
    found: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(dirpath)
        keep_dirs = []
        for d in sorted(dirnames):
            if _is_hidden(d):
                continue
            full = here / d
            if full.is_symlink():
                rel = full.relative_to(base).as_posix()
                target = full.resolve()
                if not target.is_relative_to(base):
                    skipped.append(SkippedFile(rel, "outside_folder", f"links to {target}"))
                else:
                    skipped.append(
                        SkippedFile(rel, "linked_folder", "links inside the folder are not followed")
                    )
                continue
            keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            if _is_hidden(name):
                continue
            full = here / name
            rel = full.relative_to(base).as_posix()
            skip = _check_file(full, base, max_file_bytes)
            if isinstance(skip, tuple):
                skipped.append(SkippedFile(rel, *skip))
            else:
                found.append(SourceFile(rel, full, skip, SUFFIX_KINDS[full.suffix.lower()]))
    found.sort(key=lambda f: f.path)
    skipped.sort(key=lambda s: s.path)
    return found, skipped


def _check_file(full: Path, base: Path, max_file_bytes: int) -> int | tuple[str, str]:
    """The file's size when it can be indexed, else (reason, detail)."""
    if full.is_symlink():
        target = full.resolve()
        if not target.is_relative_to(base):
            return "outside_folder", f"links to {target}"
    if full.suffix.lower() not in SUFFIX_KINDS:
        return (
            "unsupported_type",
            f"'{full.suffix or '(none)'}' is not one of {', '.join(sorted(SUFFIX_KINDS))}",
        )
    try:
        st = full.stat()
    except OSError as e:
        return "unreadable", f"{type(e).__name__}: {e.strerror or e}"
    if not full.is_file():
        return "unreadable", "not a regular file"
    if st.st_size == 0:
        return "empty", "0 bytes"
    if st.st_size > max_file_bytes:
        return "too_large", (
            f"{st.st_size / 1e6:.1f} MB is over the {max_file_bytes / 1e6:g} MB limit "
            "(raise HYBRID_INDEX__MAX_FILE_MB to include it)"
        )
    return int(st.st_size)


def read_bytes(source: SourceFile) -> bytes:
    """The file's bytes. Raises DocumentError('unreadable') on any OS error."""
    try:
        return source.abspath.read_bytes()
    except OSError as e:
        raise DocumentError(source.path, "unreadable", f"{type(e).__name__}: {e.strerror or e}") from e


def content_digest(data: bytes) -> str:
    """sha256 hex of a file's bytes (the per-file content hash kept in the manifest)."""
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes, path: str) -> str:
    """Bytes to text: BOMs first, then strict UTF-8, then charset-normalizer (GB18030/GBK, UTF-16
    without BOM, legacy code pages). Raises DocumentError('binary') when no encoding fits."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _check_textlike(data.decode(encoding), path)
            except UnicodeDecodeError as e:
                raise DocumentError(
                    path, "binary", f"starts with a {encoding} mark but does not decode"
                ) from e
    if b"\x00" not in data:
        try:
            return _check_textlike(data.decode("utf-8"), path)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise DocumentError(path, "binary", "no text encoding fits its bytes")
    logger.debug("%s decoded as %s", path, best.encoding)
    return _check_textlike(str(best), path)


def _check_textlike(text: str, path: str) -> str:
    sample = text[:4096]
    if sample:
        controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
        if controls / len(sample) > 0.05:
            raise DocumentError(path, "binary", f"{controls} control characters in its first {len(sample)}")
    return text


def load_document(source: SourceFile, data: bytes) -> LoadedDocument:
    """Extract text, title and sections from a file's bytes.

    Raises:
        DocumentError: reason 'binary', 'unreadable', 'encrypted' or 'no_text'.
    """
    extracted: Extracted
    if source.kind in TEXT_KINDS:
        text = normalize_newlines(decode_text(data, source.path))
        if source.kind == "markdown":
            extracted = extract_markdown(text)
        elif source.kind == "html":
            extracted = extract_html(text, source.path)
        else:
            extracted = extract_plain(text)
    elif source.kind == "pdf":
        extracted = extract_pdf(data, source.path)
    else:
        extracted = extract_docx(data, source.path)
    if not extracted.text.strip():
        raise DocumentError(source.path, "no_text", "no extractable text (a scan, or only markup)")
    title = extracted.title or Path(source.path).stem
    return LoadedDocument(source.path, title, extracted.text, extracted.sections, source.kind)
