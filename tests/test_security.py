"""Hostile documents, readers and requests (issue 13), against a real server and real files.

Each test here failed on the main branch before the fix it covers: symlinked files indexed,
unbounded chunks from giant words and zero-width floods, bidi controls kept, Gradio's deep
links, uploads and private handlers open, the Gradio API outside the REST limits, any Host
and X-Forwarded-* believed, and /admin/reload open to cross-site and proxied requests.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from qa.knowledge import KnowledgeBase
from qa.settings import Settings
from tests.fakes import FakeEmbedder
from tests.webserver import running_app

SETTINGS = Settings(chunk_tokens=60)


@pytest.fixture(scope="module")
def gradio_tmp(tmp_path_factory):
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))


@pytest.fixture(scope="module")
def hostile_kb(tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs")
    (docs / "notes.txt").write_text("The lighthouse keeper was Martha. She kept the lamp lit.")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "giant.txt").write_text("Giant word follows. " + "x" * 1_000_000 + " The end.")
    (docs / "zero.txt").write_text("Zero width " + "\u200b" * 2_000_000 + "flood ends here.")
    (docs / "bidi.txt").write_text("The pole is \u202egnol sretem 3\u202c today.")
    return KnowledgeBase.build(
        [docs], tmp_path_factory.mktemp("kb"), settings=SETTINGS, embedder=FakeEmbedder()
    )


def _app(kb, **web_options):
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    return create_app(LiveKnowledgeBase.of(kb), WebSettings(**web_options), kb.settings)


def test_symlinked_files_are_not_indexed(hostile_kb):
    ids = {d.id for d in hostile_kb.documents}
    assert "passwd.txt" not in ids and "notes.txt" in ids
    skipped = [str(s) for s in hostile_kb.last_build.skipped]
    assert any("passwd.txt" in s and "symbolic link" in s for s in skipped)


def test_every_chunk_is_bounded_in_characters(hostile_kb):
    answer = hostile_kb.ask("giant word")
    limit = hostile_kb.settings.chunk_tokens * 8
    store = hostile_kb.store
    ids = [c for c, _ in store.search_chunks(FakeEmbedder().encode(["x"])[0], 10_000, _all())]
    chunks = store.fetch(ids, FakeEmbedder().encode(["x"])[0])
    assert chunks and max(len(c.chunk.text) for c in chunks.values()) <= limit
    assert len(str(answer.to_dict())) < 50_000


def test_invisible_and_bidi_characters_are_gone(hostile_kb):
    texts = {
        c.chunk.doc_id: c.chunk.text
        for c in hostile_kb.store.fetch(
            [
                c
                for c, _ in hostile_kb.store.search_chunks(
                    FakeEmbedder().encode(["x"])[0], 10_000, _all()
                )
            ],
            FakeEmbedder().encode(["x"])[0],
        ).values()
    }
    assert "\u202e" not in texts["bidi.txt"] and "gnol sretem 3" in texts["bidi.txt"]
    assert texts["zero.txt"] == "Zero width flood ends here."


def _all():
    from qa.stores import EVERYTHING

    return EVERYTHING


def test_unused_gradio_routes_do_not_exist(hostile_kb, gradio_tmp):
    with running_app(_app(hostile_kb)) as port:
        base = f"http://127.0.0.1:{port}"
        for method, path in [
            ("GET", "/gradio_api/deep_link"),
            ("GET", "/embed/gradio_api/deep_link"),
            ("POST", "/gradio_api/upload"),
            ("GET", "/gradio_api/file=/etc/passwd"),
            ("GET", "/file=/etc/passwd"),
            ("POST", "/gradio_api/run/predict"),
            ("POST", "/gradio_api/call/partial_4"),
            ("POST", "/gradio_api/call/v2/ask"),
            ("POST", "/embed/gradio_api/call/ask"),
            ("GET", "/embed/gradio_api/call/ask"),
            ("POST", "/embed/gradio_api/run/ask"),  # the API lives on the main page only
            ("POST", "/gradio_api/run/partial_4"),
            ("POST", "/gradio_api/run"),
            ("POST", "/gradio_api/api/ask"),
        ]:
            reply = httpx.request(method, base + path, json={"data": []}, timeout=10)
            assert reply.status_code == 404, (path, reply.status_code, reply.text[:200])
        # Pages ignore the query parameters that used to crash them or preload a conversation.
        for path in ("/?page=abc", "/?deep_link=abc", "/embed/?page=x"):
            reply = httpx.get(base + path, timeout=10, follow_redirects=True)
            assert reply.status_code == 200, path
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def _gradio_ask(base: str, question: str, headers: dict[str, str] | None = None) -> str:
    started = httpx.post(
        f"{base}/gradio_api/call/ask", json={"data": [question, []]}, headers=headers, timeout=10
    )
    assert started.status_code == 200, started.text
    event = started.json()["event_id"]
    return httpx.get(f"{base}/gradio_api/call/ask/{event}", timeout=30).text


def test_only_the_questions_skip_the_queue(hostile_kb, gradio_tmp):
    """/run/predict (the page's unqueued questions) refuses every queued event, an index past
    the last and a call naming none, with 404 and no traceback; a question runs."""
    with running_app(_app(hostile_kb)) as port:
        base = f"http://127.0.0.1:{port}"
        for mount in ("", "/embed"):
            config = httpx.get(f"{base}{mount}/config", timeout=10).json()
            events = config["dependencies"]
            unqueued = [e["id"] for e in events if e.get("queue") is False]
            assert len(unqueued) >= 2 and len(events) - len(unqueued) >= 4, events
            for event in events:
                body = {"data": [], "fn_index": event["id"], "session_hash": "probe"}
                reply = httpx.post(f"{base}{mount}/gradio_api/run/predict", json=body, timeout=10)
                if event["id"] not in unqueued:
                    assert reply.status_code == 404, (mount, event, reply.text[:200])
            for body in (
                {"data": []},
                {"data": [], "fn_index": 10_000},
                {"data": [], "fn_index": -1},
            ):
                reply = httpx.post(f"{base}{mount}/gradio_api/run/predict", json=body, timeout=10)
                assert reply.status_code == 404 and "Traceback" not in reply.text, (mount, body)
            # The question box's event, as the page sends it: [question, shown, history].
            box = next(e for e in events if e["id"] in unqueued and e["targets"][0][1] == "submit")
            body = {
                "data": ["Who kept the lamp?", [], []],
                "fn_index": box["id"],
                "session_hash": "s1",
            }
            reply = httpx.post(f"{base}{mount}/gradio_api/run/predict", json=body, timeout=30)
            assert reply.status_code == 200, reply.text[:300]
            shown = reply.json()["data"][0]
            assert [turn["role"] for turn in shown] == ["user", "assistant"], shown


def _run_ask(base: str, question: str) -> str:
    """The unqueued API: 200 with the answer, or Gradio's 500 with the refusal's message."""
    reply = httpx.post(f"{base}/gradio_api/run/ask", json={"data": [question, []]}, timeout=30)
    assert reply.status_code in (200, 500), reply.text
    return json.dumps(reply.json())


def test_the_gradio_api_goes_through_the_rest_limits(hostile_kb, gradio_tmp):
    with running_app(_app(hostile_kb, rate_limit=3)) as port:
        base = f"http://127.0.0.1:{port}"
        replies = [_gradio_ask(base, "Who kept the lamp?") for _ in range(5)]
        assert sum("event: complete" in r for r in replies) == 3, replies
        assert "too many questions" in replies[-1]
        # Unqueued (/run/ask) it is the same gate and the same bucket.
        assert "too many questions" in _run_ask(base, "Who kept the lamp?")
        # REST shares the same bucket: this client is out of questions there too.
        rest = httpx.post(f"{base}/api/ask", json={"question": "Who kept the lamp?"}, timeout=10)
        assert rest.status_code == 429 and rest.headers["retry-after"]
    with running_app(_app(hostile_kb, rate_limit=1000)) as port:
        long = _gradio_ask(f"http://127.0.0.1:{port}", "why " * 1000)
        assert "at most 2000 characters" in long and "event: complete" not in long
        assert "at most 2000 characters" in _run_ask(f"http://127.0.0.1:{port}", "why " * 1000)


def test_forwarded_headers_are_believed_only_from_trusted_proxies(hostile_kb, gradio_tmp):
    with running_app(_app(hostile_kb, rate_limit=3)) as port:
        base = f"http://127.0.0.1:{port}"
        codes = [
            httpx.post(
                f"{base}/api/ask",
                json={"question": "lamp"},
                headers={"X-Forwarded-For": f"10.0.0.{n}", "X-Real-IP": f"10.1.0.{n}"},
                timeout=10,
            ).status_code
            for n in range(6)
        ]
        assert codes.count(200) == 3 and codes.count(429) == 3, codes
        page = httpx.get(f"{base}/", headers={"X-Forwarded-Host": "evil.test"}, timeout=10)
        assert page.status_code == 200 and "evil.test" not in page.text
    with running_app(_app(hostile_kb, rate_limit=2, trusted_proxies=("127.0.0.1",))) as port:
        base = f"http://127.0.0.1:{port}"

        def ask(forwarded: str) -> int:
            return httpx.post(
                f"{base}/api/ask",
                json={"question": "lamp"},
                headers={"X-Forwarded-For": forwarded},
                timeout=10,
            ).status_code

        # Behind a trusted proxy, readers have their own quotas...
        assert [ask("203.0.113.7") for _ in range(3)] == [200, 200, 429]
        assert ask("203.0.113.8") == 200
        # ...and a reader cannot mint new ones by prepending addresses the proxy passes on.
        assert ask("198.51.100.1, 203.0.113.7") == 429


def test_unknown_hosts_are_refused(hostile_kb, gradio_tmp):
    with running_app(_app(hostile_kb)) as port:
        base = f"http://127.0.0.1:{port}"
        for host in ("evil.test", f"evil.test:{port}", "127.0.0.1.evil.test"):
            reply = httpx.get(f"{base}/healthz", headers={"Host": host}, timeout=10)
            assert reply.status_code == 400, host
        assert httpx.get(f"http://localhost:{port}/healthz", timeout=10).status_code == 200
    with running_app(_app(hostile_kb, allowed_hosts=("qa.example.org",))) as port:
        reply = httpx.get(
            f"http://127.0.0.1:{port}/healthz", headers={"Host": "qa.example.org"}, timeout=10
        )
        assert reply.status_code == 200


def test_reload_refuses_cross_site_and_proxied_requests_and_coalesces(hostile_kb, gradio_tmp):
    with running_app(_app(hostile_kb)) as port:
        base = f"http://127.0.0.1:{port}"
        refused = [
            {"Origin": "http://evil.test", "Content-Type": "text/plain"},
            {"Sec-Fetch-Site": "cross-site"},
            {"X-Forwarded-For": "203.0.113.9"},
            {"X-Real-IP": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9"},
        ]
        for headers in refused:
            reply = httpx.post(f"{base}/admin/reload", headers=headers, content="x", timeout=30)
            assert reply.status_code == 403, headers
        assert httpx.post(f"{base}/admin/reload", timeout=60).status_code == 200

        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            reloads = [
                pool.submit(httpx.post, f"{base}/admin/reload", timeout=120) for _ in range(30)
            ]
            time.sleep(0.2)
            began = time.monotonic()
            health = httpx.get(f"{base}/healthz", timeout=30)
            waited = time.monotonic() - began
            codes = [r.result().status_code for r in reloads]
        assert health.status_code == 200 and waited < 5, waited
        assert set(codes) <= {200, 202} and codes.count(202) > 0, codes


def test_healthz_and_errors_carry_no_server_paths(hostile_kb, gradio_tmp, tmp_path: Path):
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app

    def broken(_embedder):
        raise OSError(f"cannot read {tmp_path}/secret/manifest.json")

    live = LiveKnowledgeBase(broken)
    with running_app(create_app(live)) as port:
        base = f"http://127.0.0.1:{port}"
        with pytest.raises(OSError):
            live.load()
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "failed"
        asked = httpx.post(f"{base}/api/ask", json={"question": "lamp"}, timeout=10)
        for reply in (health, asked):
            assert str(tmp_path) not in reply.text and "secret" not in reply.text
