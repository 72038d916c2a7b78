"""Real `qa serve` processes and a real nginx in front of them, for the load test and the tests.

One place for what bench/load_test.py, tests/test_load.py, tests/test_replica.py and
tests/test_replicas.py all start: a replica on a free loopback port (its own process, so its
memory is its own), waited for on /healthz, stopped by its own pid; and docs/deploy/nginx.conf
rendered with the replicas' ports, its own prefix, in the foreground.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "index" / "docs"
NGINX = "/usr/sbin/nginx"
NGINX_CONF = REPO / "docs" / "deploy" / "nginx.conf"
QA = (sys.executable, "-m", "qa.cli")
# The ports docs/deploy/nginx.conf names, replaced by the ones a run uses.
CONF_PORTS = ("127.0.0.1:7861", "127.0.0.1:7862")
FEEDBACK_SECRET = "load-test-shared-feedback-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_index(out: Path) -> Path:
    """The article's knowledge base, built by the real `qa index` into `out`."""
    subprocess.run(
        [*QA, "index", str(DOCS), "--out", str(out), "--quiet"],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
    )
    return out


def serve_env(**env: str) -> dict[str, str]:
    """The environment of a replica: offline, no analytics, the rate limit off (every test
    client is 127.0.0.1), nginx on this machine trusted, one feedback key for every replica."""
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "QA_RATE_LIMIT": "0",
        "QA_TRUSTED_PROXIES": "127.0.0.1",
        "QA_FEEDBACK_SECRET": FEEDBACK_SECRET,
        "PYTHONPATH": pythonpath,
        **env,
    }


class Replica:
    """One `qa serve` process on a port; `command` runs the `qa` command line (default
    `python -m qa.cli`), e.g. a wrapper that patches qa before calling `qa.cli.main`."""

    def __init__(
        self,
        source: Sequence[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.source = list(source)  # ["--index", DIR] or ["--store", URL]
        self.port = port
        self.log = log
        self.env = env or serve_env()
        self.command = tuple(command or QA)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Replica:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [*self.command, "serve", *self.source, "--port", str(self.port)],
                cwd=self.log.parent,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_healthy(self, seconds: float = 180) -> Replica:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"qa serve exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"qa serve not healthy in {seconds:.0f} s: {self.log}")
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def replicas(
    source: Sequence[str],
    workdir: Path,
    count: int = 1,
    command: Sequence[str] | None = None,
    **env: str,
) -> Iterator[list[Replica]]:
    """`count` replicas serving `source`, started together, all healthy; stopped at the end."""
    started = [
        Replica(source, free_port(), workdir / f"replica-{n}.log", serve_env(**env), command)
        for n in range(count)
    ]
    try:
        for replica in started:
            replica.start()
        for replica in started:
            replica.wait_healthy()
        yield started
    finally:
        for replica in started:
            replica.stop()


@contextlib.contextmanager
def server(
    index: Path, workdir: Path, command: Sequence[str] | None = None, **env: str
) -> Iterator[tuple[str, int]]:
    """One `qa serve` of the index folder; yields its base URL and pid."""
    with replicas(["--index", str(index)], workdir, 1, command, **env) as (one,):
        yield one.base, one.pid


def nginx_conf(prefix: Path, listen: int, ports: Sequence[int]) -> str:
    """docs/deploy/nginx.conf with these upstream ports, listening on loopback, logs and
    temporary files under `prefix`, one worker, and X-Served-By naming the replica."""
    conf = NGINX_CONF.read_text()
    if len(ports) != len(CONF_PORTS):
        raise ValueError(f"nginx.conf names {len(CONF_PORTS)} replicas, not {len(ports)}")
    for named, port in zip(CONF_PORTS, ports, strict=True):
        conf = conf.replace(f"server {named}", f"server 127.0.0.1:{port}")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    temp = " ".join(
        f"{kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace(
        "http {",
        f"http {{\n    access_log off; {temp}\n    add_header X-Served-By $upstream_addr always;",
    )
    return f"daemon off; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;\n{conf}"


class Nginx:
    def __init__(self, base: str, process: subprocess.Popen[bytes], prefix: Path) -> None:
        self.base, self.process, self.prefix = base, process, prefix

    def errors(self) -> list[str]:
        """nginx's error log (warnings and worse): upstreams it gave up on, retries."""
        log = self.prefix / "logs" / "error.log"
        return log.read_text(errors="replace").splitlines() if log.exists() else []

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def nginx(workdir: Path, ports: Sequence[int], listen: int | None = None) -> Iterator[Nginx]:
    """A real nginx (Debian's) running docs/deploy/nginx.conf in front of `ports`."""
    prefix = workdir / "nginx"
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
        (prefix / sub).chmod(0o777)  # nginx's worker may run as another user when we are root
    listen = listen or free_port()
    (prefix / "nginx.conf").write_text(nginx_conf(prefix, listen, ports))
    process = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else b""
                raise RuntimeError(f"nginx exited: {output.decode(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base}/healthz", timeout=2)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start in 20 s")
            time.sleep(0.1)
        yield Nginx(base, process, prefix)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, nginx's worker children included."""
    import psutil

    process = psutil.Process(pid)
    total = process.memory_info().rss
    if Path(f"/proc/{pid}/exe").exists() and "nginx" in process.name():
        total += sum(c.memory_info().rss for c in process.children())
    return total / 2**20
