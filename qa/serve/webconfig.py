"""Web server settings: one frozen dataclass, filled from QA_* environment variables or flags.

These only concern the web edge (who may embed it, how much load it accepts), so they live apart
from the engine's `Settings`, which decide what an answer is.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from qa.settings import SettingsError

MAX_BATCH_CALLS = 64


def default_calls() -> int:
    """Model calls at once by default: one per core this process may use, at most 4 (measured
    on 2 cores; a container's CPU quota is not seen here: set QA_BATCH_CALLS to match it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 4))


DEFAULT_EXAMPLES = (
    "Why did Turkey choose the S-400?",
    "Who is Conkar?",
    "Why is Turkey's relationship with the US strained?",
    "What is the capital of France?",
)
"""Example questions for the default S-400 knowledge base (and for no other)."""


@dataclass(frozen=True)
class WebSettings:
    # Address and port to listen on. 127.0.0.1 keeps the app private to this machine.
    host: str = "127.0.0.1"
    port: int = 7860
    # Knowledge base folder; "" opens the default S-400 knowledge base.
    index: str = ""
    # Wiki origins (scheme://host[:port]) allowed to embed the app and call it from a browser.
    # Empty: no cross-origin embedding at all.
    allowed_origins: tuple[str, ...] = ()
    # A header set by a trusted proxy with the signed-in user (e.g. X-Forwarded-User); when set,
    # requests without it are refused. Only safe behind a proxy that sets or strips it.
    auth_header: str = ""
    # The sub-path the app is served under behind a reverse proxy, e.g. "/qa".
    root_path: str = ""
    # Token for POST /admin/reload ("Authorization: Bearer <token>"). Empty: loopback clients only.
    admin_token: str = ""
    # REST questions a client may ask per minute (a token bucket of that size); 0 = no limit.
    rate_limit: int = 60
    # Largest request body accepted, in bytes; larger ones get 413.
    max_body_bytes: int = 65536
    # Questions inside the process at once (REST, Gradio API and chat together: being answered
    # or waiting for a worker thread); more get 503 "busy, try again" instead of waiting. Room
    # for 200 readers on one process; 8 refused 278-630 requests of 50 readers in 15 s
    # (bench/RESULTS.md, "Tuning the defaults").
    max_inflight: int = 256
    # Events waiting in the Gradio queue (page loads, thumbs, the queued API call); more are
    # turned away as busy. The chat page's questions skip the queue (qa/serve/ui.py).
    queue_size: int = 256
    # Queued Gradio events run at once (the queued API's questions share model calls in
    # batches of up to batch_max, so as many).
    concurrency: int = 16
    # Host names the app answers to (the Host header); others get 400, which stops DNS
    # rebinding and forged page URLs. Empty: what `host` implies (loopback names for 127.0.0.1;
    # any host when listening on 0.0.0.0, with a warning to set this).
    allowed_hosts: tuple[str, ...] = ()
    # Reverse proxies (IP addresses or networks, e.g. 10.0.0.5 or 10.0.0.0/24) whose
    # X-Forwarded-For / X-Forwarded-Host headers are believed; from anyone else they are dropped.
    # The rate limit counts the client the trusted proxies name. Empty: trust no proxy.
    trusted_proxies: tuple[str, ...] = ()
    # Questions embedded together at most, when many arrive at once (one model call).
    batch_max: int = 16
    # How long a batch waits for company when the model is already busy, in milliseconds;
    # 0 = never (batches form while the previous one runs). A lone reader never waits.
    batch_window_ms: int = 0
    # Model calls at once (0 = one per core this process may use, at most 4; up to 64). The
    # traced model runs without the GIL, so on 2 cores two calls embed side by side: 50 REST
    # readers 104-116 -> 137-173 answers/s (bench/RESULTS.md, "Load test").
    batch_calls: int = 0
    # Clickable example questions on the chat pages and the widget; QA_EXAMPLES separates them
    # with "|". Empty: the S-400 ones for the default knowledge base; for any other, questions
    # about its documents open to everyone that it does answer (see qa/serve/examples.py).
    examples: tuple[str, ...] = ()
    # A header a trusted proxy sets with the signed-in reader's access groups, comma-separated
    # (e.g. X-Forwarded-Groups). When set, every question searches only documents open to
    # everyone or to one of those groups; a request without it sees only the former.
    groups_header: str = ""
    # Key that signs the feedback tokens handed out with widget answers. Empty: a random key per
    # process (set one shared key when several processes serve behind a load balancer).
    feedback_secret: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port ({self.port}) must be between 1 and 65535")
        for key in ("batch_window_ms", "batch_calls"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise SettingsError(f"{key} ({getattr(self, key)!r}) must be 0 or more")
        if self.batch_calls > MAX_BATCH_CALLS:  # each call is a thread with its own malloc arena
            raise SettingsError(f"batch_calls ({self.batch_calls}) is over {MAX_BATCH_CALLS}")
        for key in ("max_body_bytes", "max_inflight", "queue_size", "concurrency", "batch_max"):
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise SettingsError(f"{key} ({value!r}) must be a positive integer")
        if self.rate_limit < 0:
            raise SettingsError(f"rate_limit ({self.rate_limit}) must be 0 (off) or more")
        for origin in self.allowed_origins:
            check_origin(origin)
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise SettingsError(
                f"root_path ({self.root_path!r}) must start with '/' and not end with one"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"trusted proxy ({proxy!r}) must be an IP address or network"
                ) from None
        for name in self.allowed_hosts:
            if not name or any(c in name for c in "/@ ") or name != name.lower():
                raise SettingsError(
                    f"allowed host ({name!r}) must be a lower-case host name, without a port"
                )
        if self.groups_header and not self.trusted_proxies:
            raise SettingsError(
                f"groups_header ({self.groups_header!r}) needs trusted_proxies: without them "
                "anyone could claim any group (set QA_TRUSTED_PROXIES to your proxy's address)"
            )
        for key in ("auth_header", "groups_header"):
            value = getattr(self, key)
            if value and not value.replace("-", "").isalnum():
                raise SettingsError(f"{key} ({value!r}) must be a header name")

    def with_overrides(self, **overrides: Any) -> WebSettings:
        """A copy with the given fields replaced; None values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebSettings:
        """Settings from QA_* variables: QA_ALLOWED_ORIGINS="https://wiki.example.org,...", ..."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"QA_{f.name.upper()}"
            raw = environ.get(key)
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            if isinstance(default, tuple):
                separator = "|" if f.name == "examples" else ","
                values[f.name] = tuple(o.strip() for o in raw.split(separator) if o.strip())
            elif isinstance(default, int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise SettingsError(f"{key} ({raw!r}) must be an integer") from None
            else:
                values[f.name] = raw.strip()
        return cls(**values)


def check_origin(origin: str) -> str:
    """An origin exactly as browsers send it: scheme://host[:port], nothing more."""
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or origin != origin.strip().lower()
    ):
        raise SettingsError(
            f"allowed origin ({origin!r}) must look like https://wiki.example.org[:port] "
            "(lower case, no path, no trailing slash)"
        )
    return origin
