"""The build's helper process: same spans as one process, survives its own death or hang, dies
with its parent, never starts where it is unsafe. Real spaCy, a real forked process."""

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

import pytest

from qa.indexing import helper, tagging
from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif(not tagging.available(), reason="entity model not installed"),
    pytest.mark.skipif(
        sys.platform != "linux" or len(os.sched_getaffinity(0)) < 2,
        reason="the helper runs on Linux with two cores or more (CI has both)",
    ),
]


def squad_paragraphs() -> list[str]:
    data = json.loads((REPO / "tests" / "data" / "squad2-dev-3-articles.json").read_text())
    texts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    assert len(texts) >= tagging.SPLIT_AT
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


def test_the_helper_types_half_and_the_spans_are_the_same(caplog):
    texts = squad_paragraphs()
    alone = tagging.tag(texts)
    with caplog.at_level(logging.WARNING), helper.sharing():
        assert helper._session is not None and helper._session.pid is None  # not started yet
        assert tagging.tag(texts[:3]) == alone[:3]  # a small batch starts nothing
        assert helper._session.pid is None
        assert tagging.tag(texts) == alone
        pid = helper_pid()
        assert tagging.tag(texts) == alone  # the same helper, again
        assert helper_pid() == pid and not helper._session.failed
    assert "helper process failed" not in caplog.text
    assert helper._session is None
    assert gone(pid)


def test_a_killed_helper_loses_nothing(caplog):
    texts = squad_paragraphs()
    alone = tagging.tag(texts)
    with caplog.at_level(logging.WARNING), helper.sharing():
        tagging.tag(texts)
        pid = helper_pid()
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert tagging.tag(texts) == alone
        assert helper._session.failed and helper._session.pool is None  # not tried again
        assert tagging.tag(texts) == alone
    assert "helper process failed" in caplog.text


def test_a_hung_helper_is_killed_and_its_half_done_here(monkeypatch, caplog):
    texts = squad_paragraphs()
    alone = tagging.tag(texts)
    monkeypatch.setattr(helper, "GRACE_S", 1.0)
    monkeypatch.setattr(helper, "SLACK", 0.0)
    with caplog.at_level(logging.WARNING), helper.sharing():
        tagging.tag(texts)
        pid = helper_pid()
        os.kill(pid, signal.SIGSTOP)  # as good as a deadlock: it never answers
        try:
            assert tagging.tag(texts) == alone
        finally:
            with contextlib.suppress(ProcessLookupError):  # killed, as it should be
                os.kill(pid, signal.SIGCONT)
        assert gone(pid)
    assert "TimeoutError" in caplog.text


def test_no_helper_from_another_thread_than_the_main_one():
    texts = squad_paragraphs()
    seen: list[object] = []

    def build() -> None:
        with helper.sharing():
            seen.append(helper._session)
            seen.append(tagging.tag(texts))

    worker = threading.Thread(target=build)
    worker.start()
    worker.join(120)
    assert seen[0] is None  # as a server reloading its knowledge base in a thread would
    assert seen[1] == tagging.tag(texts)


def test_the_helper_dies_with_a_killed_parent():
    script = (
        "import json, time\n"
        "from qa.indexing import helper, tagging\n"
        f"texts = [p['context'] for a in json.load(open({str(REPO / 'tests' / 'data' / 'squad2-dev-3-articles.json')!r}))['data'] for p in a['paragraphs']]\n"  # noqa: E501
        "with helper.sharing():\n"
        "    tagging.tag(texts)\n"
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
