"""Files and exported wiki folders (Confluence, Wiki.js, DokuWiki, BookStack...) as documents.

The files are read as `qa index` always read them (qa/indexing/documents.py); on top of that each
page gets a URL and may get a title and access groups:

- Markdown front matter at the top of a page (`url:` and `title:` between `---` lines) names its
  URL and title; the block is not part of the text.
- An HTML page's `<link rel="canonical" href=...>` (or `<meta property="og:url">`) names its URL.
- Otherwise, with a base URL, a page's URL is the base plus its path relative to the folder
  indexed (`--strip-suffix` drops `.md`/`.html`, for wikis whose page URLs have none).
- Folders map to access groups (qa/indexing/sources/access.py).

Only http and https URLs are kept; anything else is dropped with a warning.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from qa.indexing.documents import HTML_SUFFIXES, Skipped, path_text, read_files, skip, unique_id
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.mediawiki import SourceError, checked_url
from qa.types import Document

log = logging.getLogger("qa")

_FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_FIELD = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)
_CANONICAL = re.compile(
    r"<link\b(?=[^>]*\brel\s*=\s*[\"']?canonical\b)[^>]*\bhref\s*=\s*[\"']([^\"'>\s]+)", re.I
)
_OG_URL = re.compile(
    r"<meta\b(?=[^>]*\bproperty\s*=\s*[\"']?og:url\b)[^>]*\bcontent\s*=\s*[\"']([^\"'>\s]+)", re.I
)
# Only the start of an HTML page is searched for its canonical link (it lives in <head>).
HEAD_BYTES = 256 * 1024


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """(fields, the text after the block) of a Markdown page; ({}, text) when it has none."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    fields = {}
    for key, value in _FIELD.findall(match.group(1)):
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key.lower()] = value.strip()
    return fields, text[match.end() :]


def html_url(data: str) -> str | None:
    """The canonical URL an HTML page names for itself, if any."""
    for pattern in (_CANONICAL, _OG_URL):
        match = pattern.search(data[:HEAD_BYTES])
        if match:
            import html

            return html.unescape(match.group(1))
    return None


def file_documents(
    paths: Iterable[str | os.PathLike[str]],
    *,
    base_url: str | None = None,
    strip_suffix: bool = False,
    access: AccessMap | None = None,
) -> tuple[list[Document], list[Skipped]]:
    """Every supported file under `paths` as a document with URL, title and groups."""
    access = access or AccessMap()
    if base_url is not None:
        base_url = checked_url(base_url, "--base-url")
        if not base_url.endswith(("/", "=")):
            base_url += "/"
    documents: list[Document] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for read in read_files(paths, skipped):
        file, relative, title, text = read.path, read.relative, read.title, read.text
        url = None
        suffix = file.suffix.lower()
        if suffix in (".md", ".markdown"):
            fields, body = front_matter(text)
            if fields:
                text = body
                title = fields.get("title") or _markdown_title(body) or title
                url = _safe(fields.get("url"), file)
        elif suffix in HTML_SUFFIXES:
            url = _safe(html_url(file.read_bytes()[:HEAD_BYTES].decode("utf-8", "replace")), file)
        if url is None and base_url is not None:
            url = base_url + quote(_url_path(relative, strip_suffix), safe="/:@!$&'()*+,;=-._~")
        if not text.strip():
            skip(skipped, file, "no text after its front matter")
            continue
        doc_id = unique_id(relative, seen)
        documents.append(
            Document(
                id=doc_id,
                title=title,
                source=doc_id,
                text=text,
                url=url,
                groups=access.for_path(relative),
            )
        )
    return documents, skipped


def _url_path(relative: str, strip_suffix: bool) -> str:
    path = PurePosixPath(relative)
    if strip_suffix:
        path = path.with_suffix("")
        if path.name.lower() == "index":
            return f"{path.parent.as_posix()}/".lstrip("./") if str(path.parent) != "." else ""
    return path.as_posix()


def _safe(url: str | None, file: Path) -> str | None:
    if not url:
        return None
    try:
        return checked_url(url, f"the URL in {path_text(file)}")
    except SourceError as error:
        log.warning("%s; the page gets no link", error)
        return None


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None
