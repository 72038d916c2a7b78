"""HTTP protections around the app: who may embed it, how big a request and how busy a client.

ASGI middlewares (origin policy, body size) wrap every route, Gradio's included; the rate and
in-flight limits guard the REST API, where one client could otherwise keep the model busy.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def send_json(send: Send, status: int, body: dict[str, object], **headers: str) -> None:
    """A whole JSON response, for middlewares that answer before the app does."""
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


_CSP = "Content-Security-Policy"


class OriginPolicy:
    """Only the listed wiki origins may embed the app or read its responses from a browser.

    Every response says so with `Content-Security-Policy: frame-ancestors`, and CORS headers
    meant for any other origin are removed, whoever added them (Gradio echoes any Origin when
    the Host is not localhost).
    """

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed_origins)
        ancestors = " ".join(["'self'", *sorted(self.allowed)])
        self.headers = {
            "Content-Security-Policy": f"frame-ancestors {ancestors}",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "strict-origin-when-cross-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        foreign = origin not in self.allowed

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if foreign:
                    for name in [k for k in headers if k.startswith("access-control-")]:
                        del headers[name]
                own = headers.get("content-security-policy")  # a page's own policy is kept
                headers.update(self.headers)
                if own:
                    headers["content-security-policy"] = f"{own}; {self.headers[_CSP]}"
            await send(message)

        await self.app(scope, receive, guarded_send)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Requests with a body over `max_bytes` get 413, whether they declare it or stream it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, {"error": "Content-Length is not a number"})
                return
            if int(declared) > self.max_bytes:
                await self._refuse(send)
                return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def checked_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app made of the cut-off body, the answer is 413
                if not started:
                    started = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, checked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_json(
            send,
            413,
            {"error": f"the request body is larger than {self.max_bytes} bytes"},
            connection="close",
        )


class RateLimiter:
    """A token bucket per client: `per_minute` requests, refilled evenly over a minute."""

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """0 if `client` may go ahead now (and charges it), else the seconds to wait."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, then = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - then) * rate)
            wait = 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / rate))
            if not wait:
                tokens -= 1
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:  # forget the longest-idle clients
                self._buckets.popitem(last=False)
            return wait


class BusyError(RuntimeError):
    """Too many requests are being answered; the client should retry shortly."""


class InFlight:
    """At most `limit` requests inside at once; the next is refused at once, not queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> InFlight:
        with self._lock:
            if self.count >= self.limit:
                raise BusyError("the server is busy answering other questions; try again shortly")
            self.count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


class Refused(Exception):
    """A question the gate turns away: an HTTP status, a message for the reader, a retry hint."""

    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class AskGate:
    """The one set of limits every way of asking goes through (REST, the Gradio API, the chat):
    a per-client rate, a cap on questions answered at once, and the question's length."""

    def __init__(self, rate_limit: int, max_inflight: int, max_question_chars: int) -> None:
        self.limiter = RateLimiter(rate_limit)
        self.inflight = InFlight(max_inflight)
        self.max_question_chars = max_question_chars

    @contextlib.contextmanager
    def admit(self, client: str, question: str) -> Iterator[None]:
        wait = self.limiter.retry_after(client)
        if wait:
            raise Refused(429, f"too many questions; try again in {wait} s", wait)
        if len(question) > self.max_question_chars:
            raise Refused(
                422,
                f"question: at most {self.max_question_chars} characters, got {len(question)}",
            )
        try:
            with self.inflight:
                yield
        except BusyError as error:
            raise Refused(503, str(error), 1) from None
