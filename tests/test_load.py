"""A small load test for CI: 10 users for 10 s against a real `qa serve`, REST and Gradio chat.

The full one (50 users x 60 s, with latency figures) is bench/load_test.py; here only what must
hold at any load: every request is answered, none refused (the guards are set wide), and the
server's memory does not run away. No latency is asserted.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.load_test import CHANNELS, load, server

pytestmark = pytest.mark.slow

USERS, SECONDS = 10, 10
# Memory a request may leave behind, on average, after warm-up. Gradio keeps the state of each
# API call's session (its default cap is 10,000 sessions), about 30-40 KB each; anything that
# copies the index, the model or whole answers per request is far above this.
MAX_GROWTH_PER_REQUEST_KB = 100


def test_ten_users_for_ten_seconds_all_get_answers(article_kb, tmp_path):
    # The load runs in its own thread: Playwright's sync API (the browser tests' session
    # fixture) leaves an event loop running on this one, and asyncio.run() refuses to nest.
    with server(article_kb.folder, tmp_path, USERS) as (base, pid), ThreadPoolExecutor(1) as pool:
        report = pool.submit(asyncio.run, load(base, pid, USERS, SECONDS)).result()

    assert report.failed == [], [o.detail for o in report.failed[:5]]
    assert report.refused == [], [o.detail for o in report.refused[:5]]
    for channel in CHANNELS:
        assert len(report.of(channel, "ok")) >= USERS, f"too few answers through {channel}"

    answered = len(report.of(status="ok"))
    growth_kb = (report.rss_mb["end"] - report.rss_mb["start"]) * 1024
    assert growth_kb / answered < MAX_GROWTH_PER_REQUEST_KB, (growth_kb, answered)
