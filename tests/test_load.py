"""A small load test for CI: 10 users, 2 x 200 requests against a real `qa serve`, REST and chat.

The full one (50 users x 60 s, with latency figures) is bench/load_test.py; here only what must
hold at any load: every request is answered, none refused (the guards are set wide), and the
server's memory levels off. No latency is asserted, and nothing is timed: the load is a fixed
number of requests, so a slow machine does the same work as a fast one, only later.

The memory check (bench.load_test.levels_off) compares the server's RSS after warm-up, after
ROUND requests and after 2 x ROUND. The first round takes what a server grows once, whatever
the request count (about 40-65 MB here: allocator arenas, each worker thread's first
requests); the second may grow MAX_GROWTH_PER_REQUEST_KB a request. A leak of 200 KB a question
(tests/leaky_qa.py) must fail it, and does: the last test runs the server through that wrapper.
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.load_test import CHANNELS, Report, levels_off, load_counted, server

REPO = Path(__file__).resolve().parent.parent
USERS = 10
ROUND = 200  # requests per round; two rounds, after a warm-up of every path once
# Memory a request of the second round may leave behind, on average. Gradio keeps the state of
# each API call's session (the app caps them at 1,000), about 30-40 KB each, half the requests
# here: about 20 KB a request, which the runs measured; anything that copies the index, the
# model or whole answers per request is far above this, and so is the 200 KB leak below.
MAX_GROWTH_PER_REQUEST_KB = 100
LEAKY_QA = (sys.executable, "-m", "tests.leaky_qa")


def run_load(kb_folder: Path, workdir: Path, command: tuple[str, ...] | None = None) -> Report:
    # The load runs in its own thread: Playwright's sync API (the browser tests' session
    # fixture) leaves an event loop running on this one, and asyncio.run() refuses to nest.
    # The server runs in workdir: PYTHONPATH lets it import the wrapper from tests/.
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    with (
        server(kb_folder, workdir, USERS, command, PYTHONPATH=pythonpath) as (base, pid),
        ThreadPoolExecutor(1) as pool,
    ):
        return pool.submit(asyncio.run, load_counted(base, pid, USERS, ROUND, rounds=2)).result()


def assert_all_answered(report: Report) -> None:
    assert report.failed == [], [o.detail for o in report.failed[:5]]
    assert report.refused == [], [o.detail for o in report.refused[:5]]
    assert len(report.outcomes) == 2 * ROUND
    for channel in CHANNELS:
        assert len(report.of(channel, "ok")) >= USERS, f"too few answers through {channel}"


@pytest.mark.slow
def test_ten_users_all_get_answers_and_memory_levels_off(article_kb, tmp_path):
    report = run_load(article_kb.folder, tmp_path)

    assert_all_answered(report)
    memory = levels_off(report.checkpoints_mb, ROUND, MAX_GROWTH_PER_REQUEST_KB)
    print(memory.why)
    assert memory.ok, memory.why


@pytest.mark.slow
def test_the_memory_check_catches_a_leak_of_200_kb_a_question(article_kb, tmp_path):
    report = run_load(article_kb.folder, tmp_path, LEAKY_QA)

    assert_all_answered(report)  # the leak leaves the answers alone; only the memory tells
    memory = levels_off(report.checkpoints_mb, ROUND, MAX_GROWTH_PER_REQUEST_KB)
    print(memory.why)
    assert not memory.ok, memory.why


# ----- the check alone, on made-up figures -------------------------------------------------------


def test_growth_that_comes_once_levels_off_however_large():
    memory = levels_off([650.0, 720.0, 726.0], 200, 100)
    assert memory.ok, memory.why
    assert (memory.first_mb, memory.second_mb) == (70.0, 6.0)
    assert memory.limit_mb == pytest.approx(200 * 100 / 1024)


def test_growth_in_every_round_is_a_leak_even_after_a_large_first_round():
    memory = levels_off([650.0, 730.0, 770.0], 200, 100)  # 40 MB / 200 = 205 KB a request
    assert not memory.ok
    assert "LEAK" in memory.why


def test_only_the_last_round_is_judged():
    assert levels_off([650.0, 720.0, 740.0, 745.0], 200, 100).ok
    assert not levels_off([650.0, 720.0, 725.0, 750.0], 200, 100).ok


def test_the_limit_is_per_request_so_the_same_rate_gets_the_same_verdict():
    # 150 KB a request, in rounds of 100 or of 400: a leak either way; 50 KB: fine either way.
    for requests in (100, 400):
        assert not levels_off([600.0, 660.0, 660.0 + requests * 150 / 1024], requests, 100).ok
        assert levels_off([600.0, 660.0, 660.0 + requests * 50 / 1024], requests, 100).ok


def test_memory_given_back_levels_off():
    assert levels_off([650.0, 720.0, 700.0], 200, 100).ok


def test_it_needs_two_rounds_and_a_request_count():
    with pytest.raises(ValueError):
        levels_off([650.0, 720.0], 200, 100)
    with pytest.raises(ValueError):
        levels_off([650.0, 720.0, 730.0], 0, 100)
