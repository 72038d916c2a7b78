"""Page-aware answers for a widget placed on a wiki page: prefer, or keep to, that page.

The widget names its page by URL or title (e.g. `/embed?page=Help:Printing&scope=prefer`);
`page_ids` finds the documents it means, and `ask_on_page` asks them first ("prefer": the
whole knowledge base when the page does not answer) or only ("only"), or every page of the
same namespace ("namespace"). The reader's access groups apply in every case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from qa.types import Answer, DocumentInfo

SCOPES = ("prefer", "only", "namespace")
MAX_PAGE_CHARS = 2048


class Asker(Protocol):
    @property
    def documents(self) -> list[DocumentInfo]: ...

    def ask(
        self,
        question: str,
        history: Sequence[dict[str, str]] | None = None,
        *,
        groups: Iterable[str] | None = None,
        doc_ids: Iterable[str] | None = None,
    ) -> Answer: ...


def _title_key(title: str) -> str:
    """Titles compare as MediaWiki compares them: underscores are spaces, the first letter's
    case does not matter."""
    text = " ".join(unquote(title).replace("_", " ").split())
    return text[:1].upper() + text[1:]


def _url_key(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.netloc.lower()}{unquote(parts.path)}?{parts.query}".rstrip("?")


def _namespace(title: str) -> str:
    return title.split(":", 1)[0] if ":" in title else ""


def page_ids(documents: Sequence[DocumentInfo], page: str, scope: str = "prefer") -> frozenset[str]:
    """The documents a widget's `page` (a URL or a title) names; every page of its namespace
    with scope "namespace". Empty when nothing matches."""
    page = page.strip()[:MAX_PAGE_CHARS]
    if not page:
        return frozenset()
    if page.startswith(("http://", "https://")):
        wanted = _url_key(page)
        found = [d for d in documents if d.url and _url_key(d.url) == wanted]
    else:
        wanted = _title_key(page)
        found = [d for d in documents if _title_key(d.title) == wanted]
    if scope == "namespace" and found:
        spaces = {_namespace(_title_key(d.title)) for d in found}
        found = [d for d in documents if _namespace(_title_key(d.title)) in spaces]
    return frozenset(d.id for d in found)


def ask_on_page(
    kb: Asker,
    documents: Sequence[DocumentInfo],
    question: str,
    history: Sequence[dict[str, str]] | None = None,
    *,
    page: str | None,
    scope: str = "prefer",
    groups: Iterable[str] | None = None,
) -> Answer:
    """Answer with the widget's page first (see the module docstring)."""
    if scope not in SCOPES:
        raise ValueError(f"scope ({scope!r}) must be one of {', '.join(SCOPES)}")
    ids = page_ids(documents, page or "", scope)
    groups = None if groups is None else list(groups)
    if not ids:  # a page not (yet) in the knowledge base: "only" has nothing to answer from
        return kb.ask(question, history, groups=groups, doc_ids=[] if scope == "only" else None)
    answer = kb.ask(question, history, groups=groups, doc_ids=ids)
    if scope == "prefer" and answer.abstained:
        return kb.ask(question, history, groups=groups)
    return answer


@dataclass(frozen=True)
class WikiPage:
    """The page a widget sits on (a URL or a title) and how to use it: one of SCOPES."""

    page: str
    scope: str = "prefer"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope ({self.scope!r}) must be one of {', '.join(SCOPES)}")

    def ask(
        self,
        kb: Asker,
        question: str,
        history: Sequence[dict[str, str]] | None = None,
        *,
        groups: Iterable[str] | None = None,
    ) -> Answer:
        return ask_on_page(
            kb, kb.documents, question, history, page=self.page, scope=self.scope, groups=groups
        )
