"""What the web-app tests share: the real S-400 knowledge base served by real uvicorn servers
(in threads) with generous limits (`api`), tight ones (`strict`) or room for one question
(`busy`), and a way to post a question."""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import pytest

from tests.webserver import running_app

WIKI = "http://wiki.test:8080"
EVIL = "http://evil.test:8080"
QUESTIONS = ["Why did Turkey choose the S-400?", "What is the capital of France?"]


def without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


class GatedKB:
    """The real knowledge base, except that `ask` can be held at a gate (to fill the server)."""

    def __init__(self, kb: Any) -> None:
        self._kb = kb
        self.gate = threading.Event()
        self.gate.set()
        self.inside = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kb, name)

    def ask(self, question: str, history: Any = None) -> Any:
        self.inside.set()
        self.gate.wait(timeout=30)
        return self._kb.ask(question, history)


@pytest.fixture(scope="module")
def gradio_tmp(tmp_path_factory):
    # Before Gradio is first imported: it reads the folder once, at import.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))


@pytest.fixture(scope="module")
def api(article_kb, gradio_tmp):
    """The app with one allowed wiki origin and generous limits."""
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    live = LiveKnowledgeBase.of(article_kb)
    # Tests call it as 127.0.0.1 and, for CORS, as app.test (see APP_HOST).
    web = WebSettings(
        allowed_origins=(WIKI,), rate_limit=10_000, allowed_hosts=("127.0.0.1", "app.test")
    )
    with running_app(create_app(live, web, article_kb.settings)) as port:
        yield f"http://127.0.0.1:{port}", live


@pytest.fixture(scope="module")
def strict(article_kb, gradio_tmp):
    """The app with tight limits, an admin token, an identity header and no allowed origins."""
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    live = LiveKnowledgeBase.of(article_kb)
    web = WebSettings(
        rate_limit=3,
        max_body_bytes=2048,
        admin_token="s3cret",
        auth_header="X-Forwarded-User",
        root_path="/qa",
    )
    # As behind a proxy that serves the app under /qa and strips the prefix.
    with running_app(create_app(live, web, article_kb.settings), root_path="/qa") as port:
        yield f"http://127.0.0.1:{port}", live


@pytest.fixture(scope="module")
def busy(article_kb, gradio_tmp):
    """The app with room for one question at a time, whose answers wait at a gate."""
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    gated = GatedKB(article_kb)
    live = LiveKnowledgeBase.of(gated)  # type: ignore[arg-type]
    web = WebSettings(max_inflight=1, concurrency=1, queue_size=1)
    with running_app(create_app(live, web, article_kb.settings)) as port:
        yield f"http://127.0.0.1:{port}", gated


USER = {"X-Forwarded-User": "alice"}


def post_ask(url: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/api/ask", json=body, headers=headers, timeout=30)
