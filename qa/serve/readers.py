"""Who is asking: the signed-in reader and their access groups, as a trusted proxy says.

With `QA_AUTH_HEADER` set, a request without that header has no reader (it must sign in);
with `QA_GROUPS_HEADER` set, every question is limited to the documents open to everyone or
to one of the reader's groups. When `QA_TRUSTED_PROXIES` is set, both headers are believed only
from those proxies: anyone else could send them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qa.serve.edge import CLIENT_HEADER, parse_networks
from qa.serve.guards import AskGate
from qa.serve.live import LiveKnowledgeBase
from qa.serve.wikipage import WikiPage
from qa.types import Answer, DocumentInfo

if TYPE_CHECKING:
    from qa.knowledge import KnowledgeBase

MAX_GROUPS = 200  # groups kept from one header; a reader in more is cut to these


@dataclass(frozen=True)
class Reader:
    user: str | None  # the signed-in user the proxy vouches for; None when sign-in is not used
    groups: frozenset[str] | None  # access groups; None = no restriction (no groups header)
    client: str  # whom the rate limits count: the user when known, else the client address

    @property
    def access(self) -> dict[str, list[str]]:
        """Keyword arguments for `KnowledgeBase.ask`: the groups, when they restrict anything."""
        return {} if self.groups is None else {"groups": sorted(self.groups)}

    def may_read(self, document: DocumentInfo) -> bool:
        return (
            self.groups is None or not document.groups or bool(self.groups & set(document.groups))
        )


class Readers:
    """Turns a request's headers into a Reader (or None: sign-in is required and missing)."""

    def __init__(
        self, auth_header: str = "", groups_header: str = "", trusted_proxies: Sequence[str] = ()
    ) -> None:
        self.auth_header = auth_header.lower()
        self.groups_header = groups_header.lower()
        self.proxies = parse_networks(trusted_proxies)

    @property
    def sign_in_required(self) -> bool:
        return bool(self.auth_header)

    def _believed(self, peer: str) -> bool:
        if not self.proxies:
            return True  # no proxy named: the deployment guarantees the headers (README)
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def of(self, headers: Mapping[str, str], peer: str) -> Reader | None:
        believed = self._believed(peer)
        user = None
        if self.auth_header:
            user = (headers.get(self.auth_header) or "").strip()[:200] if believed else ""
            if not user:
                return None
        groups = None
        if self.groups_header:
            raw = headers.get(self.groups_header, "") if believed else ""
            groups = frozenset(parse_groups(raw))
        client = user or headers.get(CLIENT_HEADER.decode()) or "?"  # named by the edge
        return Reader(user=user, groups=groups, client=client)


def parse_groups(raw: str) -> list[str]:
    """ "hr, staff" -> ["hr", "staff"]: comma- or space-separated, blanks dropped, bounded."""
    names = [g.strip() for g in raw.replace(" ", ",").split(",")]
    return [g[:100] for g in names if g][:MAX_GROUPS]


def visible(documents: Iterable[DocumentInfo], reader: Reader) -> list[DocumentInfo]:
    """The documents this reader may read: only these may be named to them."""
    return [d for d in documents if reader.may_read(d)]


async def ask_async(
    live: LiveKnowledgeBase,
    gate: AskGate,
    reader: Reader,
    question: str,
    history: Sequence[dict[str, str]] | None,
    page: WikiPage | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> Answer:
    """Every way of asking ends here: the gate's limits, then the reader's documents only.
    Admitted on the event loop and answered on a worker thread, so a question waiting for a
    thread already counts against the in-flight cap. With a `page` (a widget placed on a wiki
    page), that page is asked first or only; `ready` is awaited once admitted (the chat waits
    there for a knowledge base still loading)."""
    import anyio

    with gate.admit(reader.client, question):
        if ready is not None:
            await ready()
        kb = live.current()
        return await anyio.to_thread.run_sync(_ask, kb, reader, question, history, page)


def _ask(
    kb: KnowledgeBase,
    reader: Reader,
    question: str,
    history: Sequence[dict[str, str]] | None,
    page: WikiPage | None,
) -> Answer:
    if page is None:
        return kb.ask(question, history, **reader.access)
    return page.ask(kb, question, history, groups=reader.groups)
