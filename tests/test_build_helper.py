"""The build's helper process: same vectors, spans and chunks as one process, survives its own
death or hang, dies with its parent, never starts where it is unsafe. Real MiniLM, real spaCy,
a real forked process."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qa.indexing import build, helper, tagging
from qa.settings import Settings
from qa.types import Document
from tests.conftest import REPO
from tests.fakes import FakeEmbedder

pytestmark = [
    pytest.mark.skipif(not tagging.available(), reason="entity model not installed"),
    pytest.mark.skipif(
        sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2,
        reason="the helper runs on Linux with two cores or more (CI has both)",
    ),
]
SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"


def squad_paragraphs() -> list[str]:
    data = json.loads(SQUAD.read_text())
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


def squad_sentences(n: int = 200) -> list[str]:
    texts = [s.strip() + "." for p in squad_paragraphs() for s in p.split(". ") if s.strip()]
    texts = list(dict.fromkeys(texts))[:n]
    assert sum(map(len, texts)) >= build.SHARE_CHARACTERS
    return texts


def helper_pid() -> int:
    session = helper._session
    assert session is not None and session.pid is not None, "no helper process was started"
    assert session.pid != os.getpid()
    return session.pid


def gone(pid: int, within: float = 20.0) -> bool:
    """Whether the process has exited (a zombie nobody reaped yet counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def same(a: tuple[np.ndarray, list], b: tuple[np.ndarray, list]) -> bool:
    return a[0].shape == b[0].shape and np.allclose(a[0], b[0], atol=1e-5) and a[1] == b[1]


def test_the_helper_shares_the_work_and_everything_comes_out_the_same(real_embedder, caplog):
    texts = squad_sentences()
    alone = build.embed_and_type(real_embedder, texts, 16)
    documents = [
        Document(f"p{n}", f"P{n}", f"p{n}.txt", p) for n, p in enumerate(squad_paragraphs()[:40])
    ]
    chunked = build.chunk_all(documents, real_embedder, Settings())
    with caplog.at_level(logging.WARNING), helper.sharing():
        assert helper._session is not None and helper._session.pid is None  # not started yet
        small = build.embed_and_type(real_embedder, texts[:3], 16)  # a small batch: no helper
        assert same(small, (alone[0][:3], alone[1][:3]))
        assert helper._session.pid is None
        shared = build.embed_and_type(real_embedder, texts, 16)
        pid = helper_pid()
        assert same(shared, alone)  # in the texts' order, though dealt to two processes
        assert build.chunk_all(documents, real_embedder, Settings()) == chunked
        assert same(build.embed_and_type(real_embedder, texts, 16), alone)  # the same helper
        assert helper_pid() == pid and not helper._session.failed
    assert "helper process failed" not in caplog.text
    assert helper._session is None
    assert gone(pid)


def test_both_processes_take_pieces_and_the_order_is_kept():
    items = list(range(400))
    with helper.sharing():
        shared = helper.share(_slow_pid, items, size=lambda n: n % 7)
        assert shared is not None and [n for _, n in shared] == items
        pids = {pid for pid, _ in shared}
        assert pids == {os.getpid(), helper_pid()}  # pieces were taken by both
        few = helper.share(_slow_pid, items[:11])  # fewer than two pieces' worth: two pieces
        assert few is not None and [n for _, n in few] == items[:11]
        assert helper._session is not None and not helper._session.failed


@pytest.mark.parametrize("how", ["dies", "hangs"])
def test_a_helper_that_fails_inside_a_piece_loses_nothing(how, monkeypatch, caplog):
    monkeypatch.setattr(helper, "GRACE_S", 1.0)
    monkeypatch.setattr(helper, "SLACK", 0.0)
    items = list(range(400))
    with caplog.at_level(logging.WARNING), helper.sharing():
        helper.share(_slow_pid, items[:64])  # starts the helper
        pid = helper_pid()
        fails = _dies_in_helper if how == "dies" else _hangs_in_helper
        shared = helper.share(fails, items)
        assert shared == [(os.getpid(), n) for n in items]  # its pieces redone here, in order
        assert helper._session.failed
        assert gone(pid)
    assert "helper process failed" in caplog.text


def test_a_helper_that_hangs_as_it_starts_is_killed_not_waited_for():
    script = (
        "import time\n"
        "from qa.indexing import helper\n"
        "helper.GRACE_S = 1.0\n"
        "helper._in_helper = lambda parent: time.sleep(3600)  # a deadlocked start\n"
        "with helper.sharing():\n"
        "    assert helper.share(list, ['a', 'b', 'c']) is None\n"
        "    assert helper._session.failed\n"
        "print('done', flush=True)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr[-2000:]
    assert "helper process failed" in run.stderr


PARENT = os.getpid()  # the forked helper has the same value, and another pid


def _dies_in_helper(items: list[int]) -> list[tuple[int, int]]:
    if os.getpid() != PARENT:
        os._exit(3)  # after taking a piece, as an OOM kill would
    return _slow_pid(items)


def _hangs_in_helper(items: list[int]) -> list[tuple[int, int]]:
    if os.getpid() != PARENT:
        time.sleep(3600)
    return _slow_pid(items)


def _slow_pid(items: list[int]) -> list[tuple[int, int]]:
    time.sleep(0.02)  # a piece takes long enough that the helper gets its turn
    return [(os.getpid(), n) for n in items]


def test_a_killed_helper_loses_nothing(caplog):
    texts, fake = squad_sentences(), FakeEmbedder()
    alone = build.embed_and_type(fake, texts, 16)
    with caplog.at_level(logging.WARNING), helper.sharing():
        build.embed_and_type(fake, texts, 16)
        pid = helper_pid()
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert same(build.embed_and_type(fake, texts, 16), alone)
        assert helper._session.failed and helper._session.pool is None  # not tried again
        assert same(build.embed_and_type(fake, texts, 16), alone)
    assert "helper process failed" in caplog.text


def test_a_hung_helper_is_killed_and_its_pieces_done_here(monkeypatch, caplog):
    texts, fake = squad_sentences(), FakeEmbedder()
    alone = build.embed_and_type(fake, texts, 16)
    monkeypatch.setattr(helper, "GRACE_S", 1.0)
    monkeypatch.setattr(helper, "SLACK", 0.0)
    with caplog.at_level(logging.WARNING), helper.sharing():
        build.embed_and_type(fake, texts, 16)
        pid = helper_pid()
        os.kill(pid, signal.SIGSTOP)  # as good as a deadlock: it never answers
        try:
            assert same(build.embed_and_type(fake, texts, 16), alone)
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed, as it should be
                os.kill(pid, signal.SIGCONT)
        assert gone(pid)
    assert "TimeoutError" in caplog.text


def test_no_helper_from_another_thread_than_the_main_one():
    texts, fake = squad_sentences(), FakeEmbedder()
    seen: list[object] = []

    def reload() -> None:
        with helper.sharing():
            seen.append(helper._session)
            seen.append(build.embed_and_type(fake, texts, 16))

    worker = threading.Thread(target=reload)
    worker.start()
    worker.join(120)
    assert seen[0] is None  # as a server reloading its knowledge base in a thread would
    assert same(seen[1], build.embed_and_type(fake, texts, 16))  # type: ignore[arg-type]


def test_the_helper_dies_with_a_killed_parent():
    script = (
        "import json, time\n"
        "from qa.indexing import build, helper\n"
        "from tests.fakes import FakeEmbedder\n"
        f"texts = [p['context'] for a in json.load(open({str(SQUAD)!r}))['data'] for p in a['paragraphs']]\n"  # noqa: E501
        "with helper.sharing():\n"
        "    build.embed_and_type(FakeEmbedder(), texts, 16)\n"
        "    print(helper._session.pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 120)
        assert ready, "the parent never started its helper"
        pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert gone(pid), "the helper outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
