"""The web app over real HTTP: REST, Gradio API and CLI agree; guards answer 4xx/503, never 5xx.

Servers are real uvicorn servers (in threads) around the real S-400 knowledge base
(tests/webapi.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ARTICLE, REPO
from tests.webapi import QUESTIONS, USER, post_ask, without_timings

pytestmark = pytest.mark.slow


# ----- one engine, three doors -------------------------------------------------------------------
def test_rest_answer_is_the_engines_answer(api, article_kb):
    url, _ = api
    for question in QUESTIONS:
        response = post_ask(url, {"question": question})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        expected = article_kb.ask(question).to_dict()
        assert without_timings(response.json()) == without_timings(expected)
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
    response = post_ask(url, {"question": "What did he say?", "history": history})
    assert response.status_code == 200
    expected = article_kb.ask("What did he say?", history).to_dict()
    assert without_timings(response.json()) == without_timings(expected)
    assert "Conkar" in response.json()["search_query"]


def test_gradio_client_answer_is_the_engines_answer(api, article_kb):
    from gradio_client import Client

    url, _ = api
    client = Client(url + "/", verbose=False)
    result = client.predict("Why did Turkey choose the S-400?", None, api_name="/ask")
    expected = article_kb.ask("Why did Turkey choose the S-400?").to_dict()
    assert without_timings(result) == without_timings(expected)


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
    rest = post_ask(url, {"question": question}).json()
    assert without_timings(json.loads(done.stdout)) == without_timings(rest)


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
    response = post_ask(url, body)
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
    response = post_ask(url, big, **USER)
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
    codes = [post_ask(url, {"question": "Who is Conkar?"}, **alice).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = post_ask(url, {"question": "Who is Conkar?"}, **alice)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many" in refused.json()["error"]
    bob = {"X-Forwarded-User": "rate-test-bob"}
    assert post_ask(url, {"question": "Who is Conkar?"}, **bob).status_code == 200


def test_busy_server_says_503_at_once(busy):
    url, gated = busy
    gated.gate.clear()
    gated.inside.clear()
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post_ask, url, {"question": "Who is Conkar?"})
            assert gated.inside.wait(10)
            began = time.monotonic()
            second = post_ask(url, {"question": "Who is Conkar?"})
            assert time.monotonic() - began < 5
            assert second.status_code == 503
            assert second.headers["retry-after"] == "1"
            assert "busy" in second.json()["error"]
            # Unqueued questions meet the same cap at once: the page's and the Gradio API's.
            events = httpx.get(f"{url}/config", timeout=10).json()["dependencies"]
            box = next(e["id"] for e in events if e["targets"][0][1] == "submit")
            body = {"data": ["Who is Conkar?", [], []], "fn_index": box, "session_hash": "b1"}
            began = time.monotonic()
            page = httpx.post(f"{url}/gradio_api/run/predict", json=body, timeout=10)
            api = httpx.post(f"{url}/gradio_api/run/ask", json={"data": ["Who?", []]}, timeout=10)
            assert time.monotonic() - began < 5
            assert page.status_code == 200 and "busy" in page.json()["data"][3]
            assert api.status_code == 500 and "busy" in api.json()["error"]
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
    response = post_ask(url, {"question": "Who is Conkar?"})
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
