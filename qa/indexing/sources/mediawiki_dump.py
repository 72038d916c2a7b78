"""A MediaWiki XML dump (Special:Export, dumpBackup.php) as a stream of documents.

The dump is read with mwxml, one page at a time, so memory stays flat whatever its size; a
progress bar follows the bytes read. Each page's latest revision is one document; redirects,
pages outside the chosen namespaces and non-wikitext pages (CSS, JavaScript, JSON) are not.
`.xml`, `.xml.gz` and `.xml.bz2` are read.

The XML parser (expat, through ElementTree) never loads external entities or DTDs, so a dump
cannot make indexing read a local file or a URL; a dump that declares one fails with a message.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from qa.indexing.documents import DocumentError, Skipped, path_text
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.mediawiki import (
    Site,
    SourceError,
    article_url_from_base,
    checked_url,
    page_document,
)
from qa.types import Document

log = logging.getLogger("qa")

DUMP_SUFFIXES = (".xml", ".xml.gz", ".xml.bz2")


def is_dump(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(DUMP_SUFFIXES)


class _Counting(io.RawIOBase):
    """A file that reports how many bytes were read from it (for the progress bar)."""

    def __init__(self, raw: IO[bytes], seen: Callable[[int], Any]) -> None:
        self._raw, self._seen = raw, seen

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._seen(len(data))
        return len(data)


def dump_documents(
    path: str | os.PathLike[str],
    *,
    namespaces: str | None = None,
    base_url: str | None = None,
    access: AccessMap | None = None,
    skipped: list[Skipped] | None = None,
    progress: bool = True,
) -> Iterator[Document]:
    """The documents of a dump, streamed; pages that cannot be used go to `skipped`."""
    import mwxml
    import mwxml.errors
    from tqdm import tqdm

    file = Path(path)
    name = path_text(file)
    access = access or AccessMap()
    skipped = skipped if skipped is not None else []
    if base_url is not None:
        base_url = checked_url(base_url, "--base-url")
    try:
        size = file.stat().st_size
        raw = open(file, "rb")  # noqa: SIM115 (closed in the finally below)
    except OSError as error:
        raise SourceError(f"{name}: {error.strerror or error}") from None
    bar = tqdm(total=size, desc=f"reading {file.name}", unit="B", unit_scale=True,
               disable=not progress)  # fmt: skip
    try:
        counted = io.BufferedReader(_Counting(raw, bar.update))
        stream: Any = counted
        lowered = file.name.lower()
        if lowered.endswith(".bz2"):
            stream = bz2.BZ2File(counted)
        elif lowered.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=counted)
        try:
            dump = mwxml.Dump.from_file(stream)
            site = _site(dump.site_info, base_url)
            chosen = site.namespace_ids(namespaces)
            yield from _pages(dump, site, chosen, access, name, skipped)
        except SourceError:
            raise
        except (
            OSError,
            EOFError,
            ValueError,
            SyntaxError,
            KeyError,
            AttributeError,
            mwxml.errors.MalformedXML,
        ) as error:
            # ElementTree's ParseError is a SyntaxError; mwxml raises its own MalformedXML
            # (a ValueError) and, on a missing <siteinfo>, KeyError or AttributeError.
            raise SourceError(f"{name} is not a readable MediaWiki XML dump ({error})") from None
    finally:
        bar.close()
        raw.close()


def _site(info: Any, base_url: str | None) -> Site:
    if info is None or info.dbname is None:
        raise SourceError("the dump has no <siteinfo> with a <dbname>; export it again with "
                          "dumpBackup.php or Special:Export")  # fmt: skip
    names = {int(ns.id): str(ns.name or "") for ns in (info.namespaces or [])}
    names.setdefault(0, "")
    article = base_url or article_url_from_base(info.base)
    return Site(wiki_id=str(info.dbname), article_url=article, namespaces=names)


def _pages(
    dump: Any,
    site: Site,
    chosen: frozenset[int],
    access: AccessMap,
    name: str,
    skipped: list[Skipped],
) -> Iterator[Document]:
    for page in dump.pages:
        latest = None
        for revision in page:  # a full-history dump lists revisions oldest first
            latest = revision
        if page.namespace not in chosen or page.redirect or latest is None:
            continue
        where = f"{name}: page {page.title!r}"
        if latest.text is None:
            continue  # text hidden (revision deleted) or not exported
        if latest.model not in (None, "wikitext"):
            continue
        try:
            yield page_document(
                site,
                page_id=page.id,
                namespace=page.namespace,
                title=page.title,
                revision=latest.id,
                wikitext=latest.text,
                access=access,
            )
        except DocumentError as error:
            skipped.append(Skipped(where, str(error)))
            log.warning("%s", skipped[-1])
