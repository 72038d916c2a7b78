"""A small load test for CI: 10 users, 2 x 200 requests against a real `qa serve`, REST and chat,
and 20 readers through nginx over two replicas.

The full one (1 to 200 readers, one process and two behind nginx, with latency figures) is
bench/load_test.py; here only what must hold at any load: every request is answered, none
refused (at the app's default guards), and the server's memory levels off. No latency is
asserted, and nothing is timed: the load is a fixed number of requests, so a slow machine does
the same work as a fast one, only later.

The memory check (bench.load_test.levels_off) compares the server's RSS after warm-up, after
ROUND requests and after 2 x ROUND. The first round takes what a server grows once, whatever
the request count (about 40-65 MB here: allocator arenas, each worker thread's first
requests); the second may grow MAX_GROWTH_PER_REQUEST_KB a request. A leak of 200 KB a question
(tests/leaky_qa.py) must fail it, and does: the last test runs the server through that wrapper.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.load_driver import CHANNELS, Report, levels_off, load_counted
from bench.servers import nginx, replicas, server

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
    # The server runs in workdir; its PYTHONPATH (bench.servers) has the wrapper in tests/.
    with server(kb_folder, workdir, command) as (base, pid), ThreadPoolExecutor(1) as pool:
        work = load_counted(base, {"qa serve": pid}, USERS, ROUND, rounds=2)
        return pool.submit(asyncio.run, work).result()


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
def test_twenty_readers_through_nginx_over_two_replicas_all_get_answers(article_kb, tmp_path):
    """docs/deploy/nginx.conf over two replicas, each reader from its own loopback address (the
    pages are pinned to a replica by the client's address, questions go to the least busy):
    no error on either path."""
    readers, requests = 20, 200
    source = ["--index", str(article_kb.folder)]
    with (
        replicas(source, tmp_path, 2) as pair,
        nginx(tmp_path, [r.port for r in pair]) as front,
        ThreadPoolExecutor(1) as pool,
    ):
        pids = {"replica 1": pair[0].pid, "replica 2": pair[1].pid}
        work = load_counted(front.base, pids, readers, requests, rounds=1, spread=True)
        report = pool.submit(asyncio.run, work).result()
    assert report.failed == [], [o.detail for o in report.failed[:5]]
    assert report.refused == [], [o.detail for o in report.refused[:5]]
    assert len(report.outcomes) == requests
    for channel in CHANNELS:
        assert len(report.of(channel, "ok")) >= readers // 2, f"too few through {channel}"


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


def test_a_new_load_run_keeps_the_reading_of_the_figures(tmp_path):
    """bench/RESULTS.md: the run's tables are replaced, the hand-written reading stays under
    them, and what bench.py writes above and `--tuning` below is untouched."""
    from bench.load_test import MARKER, READING, TUNING, write_section

    results = tmp_path / "RESULTS.md"
    results.write_text(
        f"# bench.py part\n\n{MARKER}\n## Load test\n\nOLD TABLES\n\n{READING}\n\n- why\n\n"
        f"{TUNING}\n### Tuning\n\nTUNED\n",
        encoding="utf-8",
    )
    write_section(results, "## Load test\n\nNEW TABLES\n")
    text = results.read_text(encoding="utf-8")
    assert "OLD TABLES" not in text
    assert text.startswith("# bench.py part\n")
    assert text.index("NEW TABLES") < text.index(READING) < text.index("- why") < text.index(TUNING)
    assert text.endswith(f"{TUNING}\n### Tuning\n\nTUNED\n")
