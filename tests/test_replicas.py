"""Two `qa serve` replicas behind a real nginx (docs/deploy/nginx.conf): one dies under load.

Requests already inside the killed replica may fail; every request that starts after the kill
succeeds (nginx retries connections the dead one refuses), the Gradio API keeps answering, and
the restarted replica rejoins without a failed request.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.pgserver import free_port

pytestmark = pytest.mark.slow

NGINX = "/usr/sbin/nginx"
QUESTIONS = ["Who is Conkar?", "Why did Turkey choose the S-400?", "What did Kaidanow say?"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "QA_RATE_LIMIT": "0",
        "QA_TRUSTED_PROXIES": "127.0.0.1",
    }


def _start_replica(index: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--port", str(port)],
            cwd=REPO,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)


@contextlib.contextmanager
def _nginx(tmp: Path, listen: int, ports: list[int]) -> Iterator[str]:
    """docs/deploy/nginx.conf with this test's ports, its own prefix, in the foreground."""
    conf = (REPO / "docs" / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server 127.0.0.1:7861", f"server 127.0.0.1:{ports[0]}")
    conf = conf.replace("server 127.0.0.1:7862", f"server 127.0.0.1:{ports[1]}")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    prefix = tmp / "nginx"
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
        (prefix / sub).chmod(0o777)
    temp = " ".join(
        f"{kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace(
        "http {",
        f"http {{\n    access_log off; {temp}\n    add_header X-Served-By $upstream_addr always;",
    )
    conf = f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;\n{conf}"
    (prefix / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base}/healthz", timeout=2)
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class Load:
    """Clients asking through nginx until stopped; every outcome with its start time."""

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.outcomes: list[tuple[float, int, str]] = []  # (start, status, served by)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(clients)]

    def run(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    reply = client.post(
                        f"{self.base}/api/ask", json={"question": QUESTIONS[n % len(QUESTIONS)]}
                    )
                    status, served = reply.status_code, reply.headers.get("x-served-by", "")
                except httpx.HTTPError:
                    status, served = 0, ""
                self.outcomes.append((began, status, served))
                n += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _gradio_ask(base: str, question: str) -> str:
    started = httpx.post(f"{base}/gradio_api/call/ask", json={"data": [question, []]}, timeout=30)
    assert started.status_code == 200, started.text
    event = started.json()["event_id"]
    return httpx.get(f"{base}/gradio_api/call/ask/{event}", timeout=60).text


def test_losing_a_replica_under_load(article_kb, tmp_path):
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"replica-{n}.log" for n in range(2)]
    replicas = [
        _start_replica(article_kb.folder, p, log) for p, log in zip(ports, logs, strict=True)
    ]
    try:
        for port, process, log in zip(ports, replicas, logs, strict=True):
            _wait_healthy(f"http://127.0.0.1:{port}", process, log)
        with _nginx(tmp_path, free_port(), ports) as base:
            assert "event: complete" in _gradio_ask(base, "Who is Conkar?")
            with Load(base, clients=8) as load:
                time.sleep(3)
                served = {s for _, status, s in load.outcomes if status == 200}
                assert len(served) == 1, served  # one client address: one replica (hash)
                victim = ports.index(int(served.pop().rsplit(":", 1)[1]))
                killed = time.monotonic()
                replicas[victim].send_signal(signal.SIGKILL)
                replicas[victim].wait(timeout=10)
                time.sleep(4)
                # The chat path (the Gradio API) works after the kill without any reset.
                assert "event: complete" in _gradio_ask(base, "Why did Turkey choose the S-400?")
                replicas[victim] = _start_replica(article_kb.folder, ports[victim], logs[victim])
                _wait_healthy(f"http://127.0.0.1:{ports[victim]}", replicas[victim], logs[victim])
                rejoined = time.monotonic()
                time.sleep(3)
            failed = [(t - killed, s) for t, s, _ in load.outcomes if s != 200]
            after_kill = [f for f in failed if f[0] > 0.5]
            after_rejoin = [o for o in load.outcomes if o[0] > rejoined and o[1] != 200]
            recovered = min(
                (t - killed for t, s, _ in load.outcomes if t > killed and s == 200), default=None
            )
            print(
                f"\nreplica loss: {len(load.outcomes)} requests, {len(failed)} failed "
                f"(all started within 0.5 s of the kill: {not after_kill}); first success "
                f"{recovered:.2f} s after the kill; after rejoining: {len(after_rejoin)} failed"
            )
            assert not after_kill, after_kill
            assert not after_rejoin, after_rejoin
            assert recovered is not None and recovered < 2
    finally:
        for process in replicas:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
