"""The web app over real HTTP: REST, Gradio API and CLI agree; guards answer 4xx/503, never 5xx.

Servers are real uvicorn servers (in threads) around the real S-400 knowledge base.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ARTICLE, REPO
from tests.webserver import free_port, running_app

pytestmark = pytest.mark.slow

WIKI = "http://wiki.test:8080"
EVIL = "http://evil.test:8080"
QUESTIONS = ["Why did Turkey choose the S-400?", "What is the capital of France?"]


def _without_timings(answer: dict[str, Any]) -> dict[str, Any]:
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


def _ask(url: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/api/ask", json=body, headers=headers, timeout=30)


# ----- one engine, three doors -------------------------------------------------------------------
def test_rest_answer_is_the_engines_answer(api, article_kb):
    url, _ = api
    for question in QUESTIONS:
        response = _ask(url, {"question": question})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        expected = article_kb.ask(question).to_dict()
        assert _without_timings(response.json()) == _without_timings(expected)
        for passage in response.json()["passages"]:
            # A stable chunk id, and a source relative to what was indexed: no server path.
            assert passage["chunk_id"].startswith(f"{passage['doc_id']}::")
            assert passage["source"] == passage["doc_id"] == ARTICLE.name
            assert passage["url"] is None  # a local file has no page to link to
        assert str(article_kb.folder) not in response.text
    assert response.json()["abstained"] is True  # the France question is declined


def test_rest_follow_up_uses_history(api, article_kb):
    url, _ = api
    history = [
        {"role": "user", "content": "Who is Conkar?"},
        {"role": "assistant", "content": article_kb.ask("Who is Conkar?").text},
    ]
    response = _ask(url, {"question": "What did he say?", "history": history})
    assert response.status_code == 200
    expected = article_kb.ask("What did he say?", history).to_dict()
    assert _without_timings(response.json()) == _without_timings(expected)
    assert "Conkar" in response.json()["search_query"]


def test_gradio_client_answer_is_the_engines_answer(api, article_kb):
    from gradio_client import Client

    url, _ = api
    client = Client(url + "/", verbose=False)
    result = client.predict("Why did Turkey choose the S-400?", None, api_name="/ask")
    expected = article_kb.ask("Why did Turkey choose the S-400?").to_dict()
    assert _without_timings(result) == _without_timings(expected)


def test_cli_json_answer_is_the_rest_answer(api, article_kb):
    url, _ = api
    question = "Why did Turkey choose the S-400?"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa.cli",
            "ask",
            "--json",
            "--index",
            str(article_kb.folder),
            question,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    assert done.returncode == 0, done.stderr
    rest = _ask(url, {"question": question}).json()
    assert _without_timings(json.loads(done.stdout)) == _without_timings(rest)


def test_openapi_docs_are_served(api):
    url, _ = api
    assert httpx.get(f"{url}/docs").status_code == 200
    schema = httpx.get(f"{url}/openapi.json").json()
    assert "/api/ask" in schema["paths"]
    assert "AnswerOut" in schema["components"]["schemas"]


# ----- bad requests are 4xx JSON -----------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"question": ""},
        {"question": "   \n\t "},
        {"question": 42},
        {"question": None},
        {"question": ["why?"]},
        {"question": "why?", "history": "not a list"},
        {"question": "why?", "history": [{"role": "system", "content": "x"}]},
        {"question": "why?", "history": [{"role": "user"}]},
        {"question": "why?", "extra": 1},
        {"question": "x" * 2001},
        [],
        "just a string",
    ],
)
def test_bad_requests_get_4xx_json(api, body):
    url, _ = api
    response = _ask(url, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"question=why", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_unreadable_bodies_get_4xx_json(api, content, content_type):
    url, _ = api
    response = httpx.post(f"{url}/api/ask", content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()
    assert "Traceback" not in response.text


def test_get_on_the_ask_route_is_405_with_allow_post(api):
    url, _ = api
    response = httpx.get(f"{url}/api/ask", params={"question": "Who is Conkar?"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "POST" in response.json()["error"]


def test_unknown_route_is_4xx(api):
    url, _ = api
    assert httpx.post(f"{url}/nowhere", json={}).status_code in (404, 405)  # Gradio holds /


def test_oversized_body_gets_413(strict):
    url, _ = strict
    big = {"question": "why?", "history": [{"role": "user", "content": "x" * 4000}]}
    response = _ask(url, big, **USER)
    assert response.status_code == 413
    assert "2048" in response.json()["error"]

    def chunks():  # no Content-Length: the limit must count what arrives
        for _ in range(8):
            yield b" " * 1024

    streamed = httpx.post(
        f"{url}/api/ask",
        content=chunks(),
        headers={"content-type": "application/json", **USER},
    )
    assert streamed.status_code == 413


def test_rate_limit_gives_429_with_retry_after_per_client(strict):
    url, _ = strict
    alice = {**USER, "X-Forwarded-User": "rate-test-alice"}
    codes = [_ask(url, {"question": "Who is Conkar?"}, **alice).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = _ask(url, {"question": "Who is Conkar?"}, **alice)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many" in refused.json()["error"]
    bob = {"X-Forwarded-User": "rate-test-bob"}
    assert _ask(url, {"question": "Who is Conkar?"}, **bob).status_code == 200


def test_busy_server_says_503_at_once(busy):
    url, gated = busy
    gated.gate.clear()
    gated.inside.clear()
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_ask, url, {"question": "Who is Conkar?"})
            assert gated.inside.wait(10)
            began = time.monotonic()
            second = _ask(url, {"question": "Who is Conkar?"})
            assert time.monotonic() - began < 5
            assert second.status_code == 503
            assert second.headers["retry-after"] == "1"
            assert "busy" in second.json()["error"]
            gated.gate.set()
            assert first.result(timeout=30).status_code == 200
    finally:
        gated.gate.set()


def test_full_chat_queue_says_busy_instead_of_hanging(busy):
    from gradio_client import Client

    url, gated = busy
    gated.gate.clear()
    gated.inside.clear()
    try:
        client = Client(url + "/", verbose=False)
        answering = client.submit("Who is Conkar?", None, api_name="/ask")
        assert gated.inside.wait(10)
        waiting = client.submit("Who is Conkar?", None, api_name="/ask")
        time.sleep(0.5)
        began = time.monotonic()
        turned_away = client.submit("Who is Conkar?", None, api_name="/ask")
        with pytest.raises(Exception, match=r"(?i)queue is full"):
            turned_away.result(timeout=20)
        assert time.monotonic() - began < 10
        gated.gate.set()
        assert answering.result(timeout=30)["answer"]
        assert waiting.result(timeout=30)["answer"]
    finally:
        gated.gate.set()


def test_identity_header_is_required_when_configured(strict):
    url, _ = strict
    response = _ask(url, {"question": "Who is Conkar?"})
    assert response.status_code == 401
    assert "X-Forwarded-User" in response.json()["error"]
    assert httpx.get(f"{url}/embed/config").status_code == 401
    assert httpx.get(f"{url}/embed/config", headers=USER).status_code == 200


def test_root_path_is_used_in_gradio_config(strict):
    url, _ = strict
    assert httpx.get(f"{url}/config", headers=USER).json()["root"].endswith("/qa")
    assert httpx.get(f"{url}/embed/config", headers=USER).json()["root"].endswith("/qa/embed")
    docs = httpx.get(f"{url}/docs", headers=USER).text
    assert "/qa/openapi.json" in docs


# ----- health and reload -------------------------------------------------------------------------
def test_healthz_reports_the_loaded_knowledge_base(api, article_kb):
    url, _ = api
    health = httpx.get(f"{url}/healthz").json()
    assert health["status"] == "ok"
    assert health["loaded"] is True
    assert health["failed"] is False
    assert health["documents"] == len(article_kb.documents) == 1
    assert health["chunks"] == article_kb.store.counts()["chunks"] > 1
    assert health["model"] == article_kb.embedder.model_id
    assert "error" not in health and str(article_kb.folder) not in json.dumps(health)


def test_healthz_says_loading_then_failed_and_never_names_a_path(gradio_tmp, tmp_path):
    """Loading, then failed: /healthz says which, but never the error's text, which names
    server paths (that goes to the server log)."""
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app, loader_for
    from qa.settings import Settings

    missing = tmp_path / "secret-place" / "kb"
    release = threading.Event()
    load_missing = loader_for(str(missing), Settings())

    def slow_loader(embedder):
        release.wait(30)
        return load_missing(embedder)  # StoreError: "no knowledge base in <missing>; ..."

    live = LiveKnowledgeBase(slow_loader)
    loading = live.load_in_background()
    with running_app(create_app(live)) as port:
        url = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "loading", "loaded": False, "failed": False}
        response = _ask(url, {"question": "Who is Conkar?"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "loading" in response.json()["error"]
        release.set()
        loading.join(30)
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "failed", "loaded": False, "failed": True}
        response = _ask(url, {"question": "Who is Conkar?"})
        assert response.status_code == 503
        assert "could not be opened" in response.json()["error"]
        for text in (health.text, response.text):
            assert "secret-place" not in text and str(tmp_path) not in text


def test_admin_reload_swaps_while_questions_are_answered(api):
    url, live = api
    before = live.reloads

    def ask_many() -> list[int]:
        return [_ask(url, {"question": "Who is Conkar?"}).status_code for _ in range(6)]

    with ThreadPoolExecutor(3) as pool:
        askers = [pool.submit(ask_many) for _ in range(2)]
        reloads = [httpx.post(f"{url}/admin/reload", timeout=60) for _ in range(2)]
        codes = [code for f in askers for code in f.result()]
    assert [r.status_code for r in reloads] == [200, 200]
    assert reloads[-1].json()["reloaded"] is True
    assert codes == [200] * len(codes)
    assert live.reloads == before + 2


def test_a_failed_reload_is_500_without_a_path_and_keeps_answering(
    article_kb, gradio_tmp, tmp_path
):
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app, loader_for
    from qa.serve.webconfig import WebSettings

    # The index that was loaded has gone (or is broken) by the time of the reload.
    missing = tmp_path / "secret-place" / "kb"
    live = LiveKnowledgeBase.of(article_kb, loader=loader_for(str(missing), article_kb.settings))
    app = create_app(live, WebSettings(rate_limit=10_000), article_kb.settings)
    with running_app(app) as port:
        url = f"http://127.0.0.1:{port}"
        reload = httpx.post(f"{url}/admin/reload", timeout=60)
        assert reload.status_code == 500
        error = reload.json()["error"]
        assert "reload failed (StoreError)" in error and "previous index" in error
        assert "secret-place" not in reload.text and str(tmp_path) not in reload.text
        # Still answering from the index it had.
        assert _ask(url, {"question": "Who is Conkar?"}).status_code == 200
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.json()["last_reload_failed"] is True
        assert "secret-place" not in health.text
    assert live.reloads == 0


def test_admin_reload_is_refused_to_others(api, strict):
    url, _ = api
    # uvicorn trusts X-Forwarded-For from 127.0.0.1: this looks like a remote client.
    remote = httpx.post(f"{url}/admin/reload", headers={"X-Forwarded-For": "203.0.113.7"})
    assert remote.status_code == 403
    strict_url, _ = strict
    assert httpx.post(f"{strict_url}/admin/reload").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{strict_url}/admin/reload", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret"}
    assert httpx.post(f"{strict_url}/admin/reload", headers=right, timeout=60).status_code == 200


def test_sighup_reloads_a_running_app_py(tmp_path, real_embedder):
    """`python app.py` in its own process picks up a rebuilt index on SIGHUP, no restart."""
    from qa.knowledge import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    index = tmp_path / "kb"
    KnowledgeBase.build([docs], index, embedder=real_embedder)
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
    }
    server = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "--port", str(port), "--index", str(index)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait_for(lambda: httpx.get(f"{url}/healthz").json()["loaded"]), "never loaded"
        assert httpx.get(f"{url}/healthz").json()["documents"] == 1
        (docs / "falcons.txt").write_text("The peregrine falcon dives at over 300 km/h.\n")
        KnowledgeBase.build([docs], index, embedder=real_embedder)
        server.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: httpx.get(f"{url}/healthz").json()["documents"] == 2)
        answer = _ask(url, {"question": "How fast does the peregrine falcon dive?"}).json()
        assert answer["passages"][0]["doc_id"] == "falcons.txt"
        assert answer["passages"][0]["source"] == "falcons.txt"
        assert answer["passages"][0]["chunk_id"] == "falcons.txt::0"
        assert server.poll() is None  # still the same process
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    assert b"Traceback" not in err, err.decode(errors="replace")


# ----- start-up failures: one line, exit code 2, before anything claims to be serving ------------
ENTRY_POINTS = {"qa serve": ["-m", "qa.cli", "serve"], "app.py": [str(REPO / "app.py")]}


def _serve(
    entry: list[str], *args: str, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the server as a user would; it must exit on its own (the tests expect a failure)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(
        HF_HUB_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(cwd / "gradio"),
        PYTHONPATH=str(REPO),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return subprocess.run(
        [sys.executable, *entry, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "serving on" not in done.stderr, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("qa: error: ")
    return lines[0]


@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
@pytest.mark.parametrize("kind", ["missing folder", "empty folder", "not a manifest"])
def test_serving_a_knowledge_base_that_cannot_be_opened_exits_2(tmp_path, entry, kind):
    folder = Path("/nonexistent") if kind == "missing folder" else tmp_path / "kb"
    if kind != "missing folder":
        folder.mkdir()
    if kind == "not a manifest":
        (folder / "manifest.json").write_text("{not json")
    done = _serve(entry, "--index", str(folder), "--port", str(free_port()), cwd=tmp_path)
    line = _one_error_line(done)
    assert str(folder) in line and "qa index" in line


def test_serving_on_a_taken_port_exits_2(tmp_path, article_kb):
    """A good knowledge base, but another program holds the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(
            ENTRY_POINTS["qa serve"], "--index", str(article_kb.folder), "--port", str(port),
            cwd=tmp_path,
        )  # fmt: skip
    line = _one_error_line(done)
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_serving_a_damaged_knowledge_base_exits_2_before_serving(tmp_path):
    from qa.knowledge import KnowledgeBase
    from tests.fakes import FakeEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    index = tmp_path / "kb"
    KnowledgeBase.build([docs], index, embedder=FakeEmbedder())
    [chunks] = index.glob("chunks-*.npy")
    chunks.write_bytes(chunks.read_bytes()[:10])
    fake_qa = ["-m", "tests.fake_qa", "serve"]  # the real command with FakeEmbedder
    done = _serve(fake_qa, "--index", str(index), "--port", str(free_port()), cwd=tmp_path)
    line = _one_error_line(done)
    assert "truncated" in line and "qa index" in line


def _wait_for(check, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    return False


# ----- who may embed and call it -----------------------------------------------------------------
APP_HOST = {"Host": "app.test"}  # not localhost: where Gradio on its own echoes any Origin


@pytest.mark.parametrize("path", ["/api/ask", "/embed/config", "/config", "/gradio.js", "/healthz"])
def test_cors_only_for_the_allowed_wiki(api, path):
    url, _ = api

    def get(origin: str) -> httpx.Response:
        headers = {**APP_HOST, "Origin": origin}
        if path == "/api/ask":
            return httpx.post(url + path, json={"question": "Who is Conkar?"}, headers=headers)
        return httpx.get(url + path, headers=headers)

    allowed, refused = get(WIKI), get(EVIL)
    assert allowed.status_code == refused.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == WIKI
    assert not [h for h in refused.headers if h.lower().startswith("access-control-")]


def test_cors_preflight_only_for_the_allowed_wiki(api):
    url, _ = api
    for path in ("/api/ask", "/embed/gradio_api/queue/join"):
        preflight = {**APP_HOST, "Access-Control-Request-Method": "POST"}
        ok = httpx.options(url + path, headers={**preflight, "Origin": WIKI})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == WIKI
        no = httpx.options(url + path, headers={**preflight, "Origin": EVIL})
        assert no.status_code == 400
        assert "access-control-allow-origin" not in no.headers


@pytest.mark.parametrize("path", ["/", "/embed", "/embed/", "/healthz", "/gradio.js", "/missing"])
def test_every_response_limits_framing(api, strict, path):
    url, _ = api
    response = httpx.get(url + path)
    assert response.headers["content-security-policy"] == f"frame-ancestors 'self' {WIKI}"
    strict_url, _ = strict
    response = httpx.get(strict_url + path, headers={**USER, "Origin": WIKI})
    assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/gradio.js/../../etc/passwd",
        "/gradio.js/..%2f..%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/file=/etc/passwd",
        "/embed/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../../../etc/passwd",
        "/gradio_api/file=pyproject.toml",
        f"/gradio_api/file={REPO}/pyproject.toml",
        "/assets/../../../../../etc/passwd",
        "/assets/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/embed/assets/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gradio_api/proxy=http://127.0.0.1:1/",
        "/proxy=http://example.com/",
    ],
)
def test_no_route_serves_files_outside_the_app(api, path):
    url, _ = api
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)  # sent exactly as written, dots and all
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert 400 <= response.status < 500, (response.status, body[:200])
    assert b"root:" not in body and b"[project]" not in body


def test_gradio_js_loads_the_installed_bundle(api):
    url, _ = api
    script = httpx.get(f"{url}/gradio.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    bundle = script.text.split('"./', 1)[1].split('"', 1)[0]
    assert bundle.startswith("assets/index-")
    loaded = httpx.get(f"{url}/{bundle}")
    assert loaded.status_code == 200
    assert len(loaded.content) > 10_000
    assert Path(bundle).suffix == ".js"
