"""Files to documents: .txt, .md, .html/.htm and .pdf, with a warning for each file skipped."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qa.types import Document

log = logging.getLogger("qa")

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
MAX_FILE_BYTES = 20 * 1024 * 1024
# Elements whose text is never shown to a reader.
INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")
# Elements that end a block of text: each becomes its own paragraph.
BLOCK_TAGS = (
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "br", "section",
    "article", "pre", "blockquote", "table", "header", "footer", "main", "nav", "aside",
    "dd", "dt", "figcaption", "hr", "td", "th",
)  # fmt: skip


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    def __str__(self) -> str:
        # One line whatever the name or the error holds: a newline in a file name must not
        # forge a second warning.
        return _CONTROL.sub(
            lambda m: m.group().encode("unicode_escape").decode(),
            f"skipped {self.path}: {self.reason}",
        )


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def path_text(path: str | os.PathLike[str]) -> str:
    """A file name as storable text. Linux names need not be UTF-8: their undecodable bytes
    arrive as lone surrogates, which no JSON or UTF-8 writer accepts, so they become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


class DocumentError(ValueError):
    """A file cannot become a document; the message says why."""


def load_documents(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file under `paths`; unusable files are skipped with a reason."""
    skipped: list[Skipped] = []
    seen: set[str] = set()
    # The id is the path relative to what was indexed, and so is what readers are shown:
    # never the server's absolute path.
    documents = []
    for read in read_files(paths, skipped):
        doc_id = unique_id(read.relative, seen)
        documents.append(Document(id=doc_id, title=read.title, source=doc_id, text=read.text))
    return documents, skipped


@dataclass(frozen=True)
class ReadFile:
    path: Path
    relative: str  # the path relative to what was indexed
    title: str
    text: str


def read_files(
    paths: Iterable[str | os.PathLike[str]], skipped: list[Skipped]
) -> Iterator[ReadFile]:
    """Every supported file under `paths`, read; an unusable one goes to `skipped` instead."""
    for file, relative in _walk(paths, skipped):
        try:
            title, text = read_file(file)
        except DocumentError as error:
            skip(skipped, file, str(error))
            continue
        yield ReadFile(file, relative, title, text)


def skip(skipped: list[Skipped], file: Path, reason: str) -> None:
    """Note a file left out, with its reason, in the report and the log (one line)."""
    skipped.append(Skipped(path_text(file), reason))
    log.warning("%s", skipped[-1])


def unique_id(relative: str, seen: set[str]) -> str:
    """`relative`, or `relative#2`, `#3`... when two roots hold the same relative path."""
    doc_id, n = relative, 2
    while doc_id in seen:
        doc_id, n = f"{relative}#{n}", n + 1
    seen.add(doc_id)
    return doc_id


def _walk(
    paths: Iterable[str | os.PathLike[str]], skipped: list[Skipped]
) -> Iterator[tuple[Path, str]]:
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            # followlinks=False: a symlink loop cannot send the walk round in circles.
            for folder, dirs, files in os.walk(root, followlinks=False):
                for name in sorted(d for d in dirs if (Path(folder) / d).is_symlink()):
                    linked = path_text(Path(folder) / name)
                    skipped.append(Skipped(linked, "a symbolic link to a folder (not followed)"))
                    log.warning("%s", skipped[-1])
                dirs[:] = sorted(
                    d for d in dirs if not d.startswith(".") and not (Path(folder) / d).is_symlink()
                )
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    file = Path(folder) / name
                    if file.is_symlink():
                        # A link can point anywhere the indexing account can read (/etc/passwd,
                        # .git/config): indexing never reads outside the paths it was given.
                        skipped.append(Skipped(path_text(file), "a symbolic link (not followed)"))
                        log.warning("%s", skipped[-1])
                        continue
                    if file.suffix.lower() not in SUPPORTED_SUFFIXES:
                        reason = f"unsupported type {file.suffix!r}"
                        skipped.append(Skipped(path_text(file), reason))
                        log.warning("%s", skipped[-1])
                        continue
                    yield file, path_text(file.relative_to(root).as_posix())
        elif root.exists() or root.is_symlink():
            if root.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Skipped(path_text(root), f"unsupported type {root.suffix!r}"))
                log.warning("%s", skipped[-1])
                continue
            yield root, path_text(root.name)
        else:
            skipped.append(Skipped(path_text(root), "no such file or folder"))
            log.warning("%s", skipped[-1])


def read_file(path: Path) -> tuple[str, str]:
    """(title, text) of one file; raises DocumentError when it is not usable."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DocumentError(f"unreadable ({error.strerror or error})") from None
    if size == 0:
        raise DocumentError("empty file")
    if size > MAX_FILE_BYTES:
        raise DocumentError(
            f"too large ({size / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)"
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DocumentError(f"unreadable ({error.strerror or error})") from None
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        title, text = _read_pdf(path, data)
    else:
        if b"\x00" in data[:8192]:
            raise DocumentError("binary content (NUL bytes), not text")
        try:
            decoded = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise DocumentError(f"not UTF-8 text (byte {error.start})") from None
        if suffix in HTML_SUFFIXES:
            title, text = html_to_text(decoded)
            title = title or path_text(path.stem)
        else:
            text = decoded
            heading = _markdown_title(text) if suffix != ".txt" else None
            title = heading or path_text(path.stem)
    if not text.strip():
        raise DocumentError("no text in it")
    return title, text


def html_to_text(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page: scripts and styles dropped, one block a paragraph."""
    from bs4 import BeautifulSoup, CData, NavigableString, Tag

    try:
        soup = BeautifulSoup(html, "html.parser")
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
    except RecursionError:
        raise DocumentError("HTML nested too deeply to read") from None
    # One walk with an explicit stack, so depth costs neither recursion nor time: inserting
    # newlines around each block (as before) took time in the square of the nesting depth
    # (10,000 nested divs: 10 s; 100,000: over 10 minutes).
    parts: list[str] = []
    stack: list[tuple[object, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            parts.append("\n")
        elif isinstance(node, Tag):
            if node.name in INVISIBLE_TAGS:
                continue
            if node.name in BLOCK_TAGS:
                parts.append("\n")
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
        elif type(node) in (NavigableString, CData):  # not comments, doctypes, scripts
            parts.append(str(node))
    lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(parts).split("\n"))
    return title, "\n\n".join(line for line in lines if line)


def _read_pdf(path: Path, data: bytes) -> tuple[str, str]:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    # pypdf fails on damaged files in more ways than its own errors (AttributeError, IndexError,
    # RecursionError...); one bad PDF must cost a warning, not the whole build.
    except Exception as error:
        raise DocumentError(f"unreadable PDF ({type(error).__name__}: {error})") from None
    # A font's ToUnicode map can name lone UTF-16 surrogates, which no UTF-8 writer accepts.
    text = _SURROGATE.sub("\ufffd", "\n\n".join(page.strip() for page in pages if page.strip()))
    if not text:
        raise DocumentError("PDF has no extractable text (a scan?)")
    return (_SURROGATE.sub("\ufffd", str(meta_title)) if meta_title else path_text(path.stem)), text


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None
