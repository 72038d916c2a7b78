"""What a MediaWiki dump and a live wiki share: a site's identity and URLs, and page -> Document.

A page's document id is `<wiki id>:<page id>`: MediaWiki keeps a page's id when it is moved, so a
move renames a document instead of deleting one and adding another, and a knowledge base built
from a dump can be kept in sync with the live wiki afterwards (both name pages the same way).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from qa.indexing.documents import DocumentError
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.wikitext import wikitext_to_text
from qa.types import Document

log = logging.getLogger("qa")

# Wikitext longer than this is skipped with a warning: twice MediaWiki's own default page limit
# ($wgMaxArticleSize, 2 MiB), so no page a wiki accepts by default is refused, while a hostile
# dump cannot make one page cost minutes of parsing and embedding.
MAX_PAGE_CHARS = 4 * 2**20
# Characters MediaWiki leaves as they are in a title's URL (wfUrlencode).
_TITLE_SAFE = ";@$!*(),/~:"
_WIKI_ID = re.compile(r"^[\w.\-]{1,100}$")


class SourceError(DocumentError):
    """A wiki cannot be read (bad dump, unreachable or refusing wiki); the message says why."""


def checked_url(url: str, what: str) -> str:
    """`url` if it is an absolute http(s) URL a reader can safely be sent to, else SourceError."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"{what} ({url[:200]!r}) must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise SourceError(f"{what} must not hold a user name or password")
    if re.search(r"[\s\x00-\x1f\x7f<>\"`]", url):
        raise SourceError(f"{what} ({url[:200]!r}) holds spaces or characters a URL cannot hold")
    return url


@dataclass(frozen=True)
class Site:
    """One wiki, as its dump's <siteinfo> or its API's siteinfo describes it."""

    wiki_id: str  # the database name (dump <dbname>, API "wikiid"): the same for both
    article_url: str | None  # a page's URL is this plus its encoded title
    namespaces: dict[int, str] = field(default_factory=dict)  # number -> local name

    def __post_init__(self) -> None:
        if not _WIKI_ID.match(self.wiki_id):
            raise SourceError(f"the wiki's id ({self.wiki_id[:100]!r}) is not a database name")

    def page_url(self, title: str) -> str | None:
        if not self.article_url:
            return None
        return self.article_url + quote(title.replace(" ", "_"), safe=_TITLE_SAFE)

    def doc_id(self, page_id: int | str) -> str:
        return f"{self.wiki_id}:{int(page_id)}"

    def owns(self, doc_id: str) -> bool:
        prefix, _, number = doc_id.rpartition(":")
        return prefix == self.wiki_id and number.isdigit()

    def namespace_ids(self, spec: str | None) -> frozenset[int]:
        """Namespaces named by "0,4,Help" (numbers or names; "main" or "" is 0); None: main."""
        if spec is None:
            return frozenset({0})
        if spec.strip().lower() == "all":
            return frozenset(n for n in self.namespaces if n >= 0)
        by_name = {name.replace("_", " ").lower(): n for n, name in self.namespaces.items()}
        chosen = set()
        for part in spec.split(","):
            key = " ".join(part.replace("_", " ").split()).lower()
            if key in ("", "main", "(main)"):
                chosen.add(0)
            elif key.lstrip("-").isdigit():
                chosen.add(int(key))
            elif key in by_name:
                chosen.add(by_name[key])
            else:
                known = ", ".join(
                    f"{n}={name or 'main'}" for n, name in sorted(self.namespaces.items())
                )
                raise SourceError(
                    f"--namespaces: no namespace {part.strip()!r} in this wiki ({known})"
                )
        return frozenset(chosen)


def article_url_from_base(base: str | None, main_page: str | None = None) -> str | None:
    """The article URL prefix from a dump's <base> (the main page's URL), or None."""
    if not base:
        return None
    try:
        base = checked_url(base, "the dump's <base>")
    except SourceError as error:
        log.warning("%s; pages get no URL (give --base-url)", error)
        return None
    if "title=" in base:
        return base[: base.index("title=") + len("title=")]
    return base.rsplit("/", 1)[0] + "/"


def page_document(
    site: Site,
    *,
    page_id: int,
    namespace: int,
    title: str,
    revision: int | str | None,
    wikitext: str,
    access: AccessMap,
) -> Document:
    """One page's latest revision as a document; DocumentError when it has no usable text."""
    if len(wikitext) > MAX_PAGE_CHARS:
        raise DocumentError(
            f"too large ({len(wikitext) / 2**20:.1f} M characters of wikitext; the limit is "
            f"{MAX_PAGE_CHARS // 2**20} M)"
        )
    text, sections = wikitext_to_text(wikitext)
    if not text.strip():
        raise DocumentError("no text once markup is removed")
    return Document(
        id=site.doc_id(page_id),
        title=title,
        source=title,
        text=text,
        url=site.page_url(title),
        revision=None if revision is None else str(revision),
        groups=access.for_namespace(namespace, site.namespaces.get(namespace, "")),
        sections=sections,
    )
