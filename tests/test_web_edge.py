"""Who may embed and call the web app: CORS for the allowed wiki only, framing limits on every
response, and no route that serves files outside the app."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.webapi import EVIL, USER, WIKI

pytestmark = pytest.mark.slow


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


def test_a_loading_replica_sends_unqueued_questions_back_to_the_balancer():
    """Through a trusted proxy, a question to a replica still loading is a 503 at once, which
    nginx retries on another replica; from anyone else (a browser straight at the app) it goes
    on, and the chat waits for the load; other routes never see the check."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from qa.serve.edge import Edge

    async def anything(request: Any) -> PlainTextResponse:
        return PlainTextResponse("reached")

    inner = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])

    loading = True
    app = Edge(inner, allowed_hosts=None, trusted_proxies=["10.0.0.1"], loading=lambda: loading)
    proxy = TestClient(app, client=("10.0.0.1", 5000))
    direct = TestClient(app, client=("192.0.2.9", 5000))
    forged = {"X-Forwarded-For": "10.0.0.1"}
    for path in ("/gradio_api/run/predict", "/embed/gradio_api/run/predict", "/gradio_api/run/ask"):
        refused = proxy.post(path, json={})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["loading"] is True
        assert direct.post(path, json={}, headers=forged).text == "reached"
    assert proxy.post("/api/ask", json={}).text == "reached"  # REST says 503 on its own
    assert proxy.get("/").text == "reached"
    loading = False
    assert proxy.post("/gradio_api/run/predict", json={}).text == "reached"
