"""Scale-out proof: one `qa serve` on a PostgreSQL primary, one on its streaming read replica.

A document indexed on the primary becomes answerable through the process that reads the
replica, without a reload: the PostgreSQL store reads committed state on every question.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import Replica, free_port, serve_env
from tests.conftest import ARTICLE, REPO
from tests.pgserver import postgres, replica

pytestmark = pytest.mark.slow

FACT = (
    "The lighthouse on Kestrel Point was kept by Martha Quill for forty years. "
    "She lit the lamp every evening at dusk."
)
QUESTION = "Who kept the lighthouse on Kestrel Point?"


def _qa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        cwd=REPO,
        env=serve_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextlib.contextmanager
def _serve(store: str, log: Path) -> Iterator[str]:
    server = Replica(["--store", store], free_port(), log).start()
    try:
        yield server.wait_healthy().base
    finally:
        server.stop()


def _sources(base: str) -> list[str]:
    reply = httpx.post(f"{base}/api/ask", json={"question": QUESTION}, timeout=60)
    assert reply.status_code == 200, reply.text
    return [p["doc_id"] for p in reply.json()["passages"]]


def test_a_document_indexed_on_the_primary_is_answered_through_the_replica(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / ARTICLE.name).write_text(ARTICLE.read_text())
    with postgres(tmp_path / "primary") as primary:
        url = f"{primary}?schema=kb"
        built = _qa("index", str(docs), "--store", url, "--quiet")
        assert built.returncode == 0, built.stderr
        with (
            replica(primary, tmp_path / "replica") as standby,
            _serve(f"{standby}?schema=kb", tmp_path / "replica-serve.log") as reader,
            _serve(url, tmp_path / "primary-serve.log") as writer_side,
        ):
            assert "lighthouse.txt" not in _sources(reader)
            (docs / "lighthouse.txt").write_text(FACT)
            added = _qa("index", str(docs), "--store", url, "--quiet")
            assert added.returncode == 0, added.stderr
            assert "embedded 1, reused 1" in added.stdout
            committed = time.monotonic()
            while "lighthouse.txt" not in _sources(reader):
                assert time.monotonic() - committed < 30, "the replica never answered from it"
                time.sleep(0.1)
            seconds = time.monotonic() - committed
            print(f"commit on the primary to an answer through the replica: {seconds:.2f} s")
            reply = httpx.post(f"{reader}/api/ask", json={"question": QUESTION}, timeout=60)
            assert "Martha Quill" in reply.json()["answer"]
            assert _sources(writer_side)[0] == "lighthouse.txt"

            # A removed document is gone from the replica's answers too.
            (docs / "lighthouse.txt").unlink()
            removed = _qa("index", str(docs), "--store", url, "--quiet")
            assert "removed 1" in removed.stdout, removed.stdout + removed.stderr
            deadline = time.monotonic() + 30
            while "lighthouse.txt" in _sources(reader):
                assert time.monotonic() < deadline, "the replica kept answering from it"
                time.sleep(0.1)
