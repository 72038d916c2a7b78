"""What reaches the app at all: known hosts, trusted proxies, and only the routes it uses.

One ASGI middleware in front of everything (FastAPI routes and the mounted Gradio apps):
- a request for a Host that is not configured is refused (DNS rebinding, forged base URLs);
- forwarding headers (X-Forwarded-*, X-Real-IP, Forwarded) are honoured only from configured
  trusted proxies, and removed otherwise, so neither Gradio's page URLs nor the rate limit's
  idea of who a client is can be spoofed;
- Gradio routes the app never uses (deep links, uploads, file serving, runs and calls of any
  handler but the page's `predict` and the public `ask`) answer 404 before Gradio sees them;
- through a trusted proxy, an unqueued question to a replica still loading its knowledge base
  answers 503 at once (`loading`), so the balancer retries it on another replica instead of
  the page waiting here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from qa.serve.guards import send_json

CLIENT_HEADER = b"x-qa-client"  # set here, for every handler: who the client is
FORWARDED_HEADER = b"x-qa-forwarded"  # set here when the request came through any proxy
FORWARDING: frozenset[bytes] = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
        b"forwarded",
        CLIENT_HEADER,
        FORWARDED_HEADER,
    }
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})

# Gradio routes under a mount that must not exist for this app (regexes on the path below it).
_BLOCKED = re.compile(
    r"^/gradio_api/("
    r"deep_link|upload|upload_progress|file[=/].*|proxy=.*|api/.*|stream/.*|"
    r"process_recording|vibe-.*|undo-vibe-edit/?|mcp/.*|run-history/.*|runs/?|dev/.*|"
    r"token/?|call/v2/.*|custom_component/.*"
    r")$"
    r"|^/(file=.*|login/?|logout/?|monitoring.*|manifest\.json|pwa_icon.*)$"
)
_CALL = re.compile(r"^/gradio_api/call/([^/]+)(/.*)?$")
# Unqueued calls: the page's questions (`predict`, by event index) and the API's `ask`.
_RUN = re.compile(r"^/gradio_api/run/([^/]*)/?$|^/gradio_api/run(/.*)?$")
# Query parameters a page may take; Gradio's `page` and `deep_link` answered 500 or showed a
# forged conversation.
_PAGE_QUERY = frozenset({"__theme", "view"})


def default_hosts(bind_host: str) -> frozenset[str] | None:
    """Hosts implied by the address the app listens on; None (any) for a wildcard address."""
    if bind_host in WILDCARD_HOSTS:
        return None
    return LOOPBACK_HOSTS | {bind_host.lower()}


def parse_networks(
    values: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def host_name(host: str) -> str:
    """The name part of a Host header: no port, no IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: frozenset[str] | None,
        trusted_proxies: Iterable[str] = (),
        api_mounts: Iterable[str] = ("",),
        page_mounts: Iterable[str] = ("", "/embed"),
        loading: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.loading = loading
        self.allowed_hosts = allowed_hosts
        self.proxies = parse_networks(trusted_proxies)
        self.api_mounts = tuple(api_mounts)
        self.page_mounts = tuple(page_mounts)

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)

    def client(self, peer: str, headers: Headers) -> str:
        """The client's address: the peer, or through trusted proxies the last hop before them."""
        if not self.trusted(peer):
            return peer
        hops = [h.strip() for h in ",".join(headers.getlist("x-forwarded-for")).split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self.trusted(hop):
                return hop  # the right-most address no trusted proxy added: not spoofable
        return peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope["client"][0] if scope.get("client") else ""
        from_proxy = self.trusted(peer)
        host = (headers.get("x-forwarded-host") if from_proxy else None) or headers.get("host", "")
        if self.allowed_hosts is not None and host_name(host) not in self.allowed_hosts:
            await send_json(send, 400, {"error": "unknown host; set QA_ALLOWED_HOSTS"})
            return
        client = self.client(peer, headers)
        forwarded = any(k in FORWARDING for k, _ in scope["headers"])
        ours = (CLIENT_HEADER, FORWARDED_HEADER)
        kept = [
            (k, v)
            for k, v in scope["headers"]
            if k not in FORWARDING or (from_proxy and k not in ours)
        ]
        kept.append((CLIENT_HEADER, client.encode("latin-1")))
        if forwarded:
            kept.append((FORWARDED_HEADER, b"1"))
        scope = dict(scope, headers=kept)
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for mount in sorted(self.page_mounts, key=len, reverse=True):
            if mount and path != mount and not path.startswith(mount + "/"):
                continue
            below = path[len(mount) :] or "/"
            call = _CALL.match(below)
            run = _RUN.match(below)
            if (
                _BLOCKED.match(below)
                or (call and (mount not in self.api_mounts or call.group(1) != "ask"))
                or (run and not _runnable(run.group(1), mount in self.api_mounts))
            ):
                await send_json(send, 404, {"error": "not found"})
                return
            if run and from_proxy and self.loading():
                busy = {"error": "the knowledge base is still loading", "loading": True}
                await send_json(send, 503, busy, Retry_After="1")
                return
            if below == "/" and scope.get("query_string"):
                query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
                kept_query = [(k, v) for k, v in query if k in _PAGE_QUERY]
                scope["query_string"] = urlencode(kept_query).encode("latin-1")
            break
        await self.app(scope, receive, send)


def _runnable(name: str | None, api: bool) -> bool:
    """/gradio_api/run/<name>: the page's `predict` on every page, `ask` where the API is."""
    return name == "predict" or (api and name == "ask")


def client_of(headers: Headers | dict[str, str]) -> str:
    """Who a request comes from, as the edge decided (for rate limits)."""
    return headers.get(CLIENT_HEADER.decode()) or "?"
