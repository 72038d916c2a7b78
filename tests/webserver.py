"""Real servers for the web tests: the app under uvicorn in a thread, and a static "wiki"."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_app(app: Any, port: int | None = None, root_path: str = "") -> Iterator[int]:
    """Serve an ASGI app on 127.0.0.1 in a thread until the block ends; yields the port."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        root_path=root_path,
        log_level="warning",
        proxy_headers=False,  # as `qa serve`: the app's Edge middleware decides whom to trust
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app server on port {port} did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.requested.append(self.path)
        super().do_GET()


@contextlib.contextmanager
def static_site(folder: Path) -> Iterator[tuple[int, list[str]]]:
    """Serve `folder` on 127.0.0.1; yields the port and the list of paths requested so far."""
    requested: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requested": requested})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, name="wiki", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requested
    finally:
        server.shutdown()
        server.server_close()
