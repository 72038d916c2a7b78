"""The forked typing helper: same spans as one process, survives its own death, dies with
its parent. Real spaCy, a real forked process."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from qa.indexing import tagging
from tests.conftest import REPO

needs_model = pytest.mark.skipif(not tagging.available(), reason="entity model not installed")


def squad_paragraphs() -> list[str]:
    data = json.loads((REPO / "tests" / "data" / "squad2-dev-3-articles.json").read_text())
    texts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    assert len(texts) >= tagging.SPLIT_AT
    return texts


def helper_pid() -> int:
    assert tagging._helper is not None
    [pid] = list(tagging._helper._processes)
    return pid


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it, else it lingers as a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


@needs_model
def test_the_helper_types_half_and_the_spans_are_the_same():
    sentences = squad_paragraphs()
    alone = tagging.tag(sentences)
    with tagging.helper():
        pid = helper_pid()
        assert pid != os.getpid()
        assert tagging.tag(sentences) == alone
        assert tagging.tag(sentences[:3]) == alone[:3]  # small batches stay here
    assert tagging._helper is None
    assert gone(pid)


@needs_model
def test_a_killed_helper_loses_nothing(caplog):
    sentences = squad_paragraphs()
    alone = tagging.tag(sentences)
    with caplog.at_level(logging.WARNING), tagging.helper():
        pid = helper_pid()
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert tagging.tag(sentences) == alone
        assert tagging._helper is None  # not tried again in this run
        assert tagging.tag(sentences) == alone
    assert "typing helper stopped" in caplog.text


@needs_model
def test_the_helper_dies_with_a_killed_parent():
    script = (
        "import sys, time\n"
        "from qa.indexing import tagging\n"
        "with tagging.helper():\n"
        "    print(list(tagging._helper._processes)[0], flush=True)\n"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert gone(pid), "the typing helper outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
