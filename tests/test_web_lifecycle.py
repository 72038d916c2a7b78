"""The web app's life: health, reloads (admin route and SIGHUP) and start-up failures that
say one line and exit 2 before anything claims to be serving."""

from __future__ import annotations

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

import httpx
import pytest

from tests.conftest import ARTICLE, REPO
from tests.webapi import post_ask
from tests.webserver import free_port, running_app

pytestmark = pytest.mark.slow


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
        response = post_ask(url, {"question": "Who is Conkar?"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "loading" in response.json()["error"]
        release.set()
        loading.join(30)
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "failed", "loaded": False, "failed": True}
        response = post_ask(url, {"question": "Who is Conkar?"})
        assert response.status_code == 503
        assert "could not be opened" in response.json()["error"]
        for text in (health.text, response.text):
            assert "secret-place" not in text and str(tmp_path) not in text


def test_admin_reload_swaps_while_questions_are_answered(api):
    url, live = api
    before = live.reloads

    def ask_many() -> list[int]:
        return [post_ask(url, {"question": "Who is Conkar?"}).status_code for _ in range(6)]

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
        assert post_ask(url, {"question": "Who is Conkar?"}).status_code == 200
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
        answer = post_ask(url, {"question": "How fast does the peregrine falcon dive?"}).json()
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


def test_connections_to_the_served_socket_send_at_once():
    """Each accepted connection has Nagle off (TCP_NODELAY), so a response's body never waits
    for the reader's delayed ACK of its headers (40 ms a question on a reused connection)."""
    import asyncio

    from qa.serve.web import listen

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):  # type: ignore[no-untyped-def]
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(seen, 10)
            writer.close()
        return value

    # On a thread of its own: browser tests may leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: asyncio.run(accepted_nodelay())).result(timeout=30) == 1
