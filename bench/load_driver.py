"""The load test's readers: REST and Gradio-chat conversations against a running server, the
memory of every process serving them sampled meanwhile.

`load` runs readers for a while; `load_counted` runs a fixed number of requests (what CI
uses: a slow machine does the same work, only later) and `levels_off` judges the memory.
Readers may each come from their own loopback address (`spread=True`): behind nginx, whose
upstream hashes the client address for the chat path, that is what many readers look like.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load_asks import Page, Refused, ask_gradio, ask_rest, check_body
from bench.servers import rss_mb

# Conversations about the article: a question, then follow-ups that lean on it. The last is
# off-topic on purpose (the answer is a decline, which is a success).
CONVERSATIONS = (
    ("Why did Turkey choose the S-400?", "Who proposed it?", "What did the US offer instead?"),
    ("Who is Conkar?", "What did he say about NATO?", "Where does he sit?"),
    (
        "Why is Turkey's relationship with the US strained?",
        "Whom did Ankara blame for the coup attempt?",
        "When was it?",
    ),
    ("What did Kaidanow say?", "Who would benefit from the purchase, according to her?"),
    ("How long did Ankara study air defense systems?", "What happened when it asked the US?"),
    ("What is the capital of France?",),
)
CHANNELS = ("rest", "gradio")


@dataclass
class Outcome:
    channel: str
    status: str  # "ok", "refused" (429/503 from a guard) or "failed"
    seconds: float
    detail: str = ""


@dataclass
class Report:
    users: int
    seconds: float
    channels: tuple[str, ...] = CHANNELS
    outcomes: list[Outcome] = field(default_factory=list)
    # Per process (name -> RSS MB): "startup", "start" (after warm-up), "peak", "end".
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    load_average: float = 0.0  # the machine's 1-minute load average just before the run
    load_after: float = 0.0  # and just after it
    samples_mb: dict[str, list[float]] = field(default_factory=dict)
    # A counted run (load_counted): the first process's RSS after warm-up and after each round
    # of `round_requests` requests, each taken with no request in flight.
    checkpoints_mb: list[float] = field(default_factory=list)
    round_requests: int = 0

    def of(self, channel: str | None = None, status: str | None = None) -> list[Outcome]:
        return [
            o
            for o in self.outcomes
            if (channel is None or o.channel == channel) and (status is None or o.status == status)
        ]

    @property
    def failed(self) -> list[Outcome]:
        return self.of(status="failed")

    @property
    def refused(self) -> list[Outcome]:
        return self.of(status="refused")

    @property
    def rss_mb(self) -> dict[str, float]:
        """The first process's figures (the one server of a one-process run)."""
        return next(iter(self.memory.values()), {})


async def user(
    number: int,
    channel: str,
    client: httpx.AsyncClient,
    more: Callable[[], bool],
    report: Report,
    think: float,
) -> None:
    """Conversations, question after question, for as long as `more()` (asked before each)."""
    rng = random.Random(number)
    page = Page(session=f"reader{number}-{rng.getrandbits(48):012x}")  # one per tab
    ask = ask_rest if channel == "rest" else functools.partial(ask_gradio, page=page)
    while True:
        history: list[dict[str, str]] = []
        for question in rng.choice(CONVERSATIONS):
            if not more():
                return
            began = time.monotonic()
            try:
                body = await ask(client, question, history)
                check_body(body, question)
            except Refused as error:
                report.outcomes.append(
                    Outcome(channel, "refused", time.monotonic() - began, str(error))
                )
                break
            except Exception as error:  # a timeout, a reset connection, a bad body...
                detail = f"{type(error).__name__}: {error}"
                report.outcomes.append(Outcome(channel, "failed", time.monotonic() - began, detail))
                break
            report.outcomes.append(Outcome(channel, "ok", time.monotonic() - began))
            history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": body["answer"]},
            ]
            if think:
                await asyncio.sleep(rng.uniform(0, 2 * think))


def _sample(pids: Mapping[str, int], report: Report) -> None:
    for name, pid in pids.items():
        report.samples_mb.setdefault(name, []).append(rss_mb(pid))


async def sampled(pids: Mapping[str, int], report: Report, work: Awaitable[Any]) -> None:
    """Await `work`, sampling every process's RSS every half second meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        _sample(pids, report)
        await asyncio.wait({task}, timeout=0.5)
    await task


def tickets(count: int) -> Callable[[], bool]:
    """A `more()` for users sharing a fixed number of requests: true `count` times in all."""
    left = count

    def more() -> bool:
        nonlocal left
        left -= 1
        return left >= 0

    return more


async def warm_up(client: httpx.AsyncClient, channels: Sequence[str] = CHANNELS) -> None:
    """Every path once, each checked."""
    for conversation in CONVERSATIONS:
        if "rest" in channels:
            check_body(await ask_rest(client, conversation[0], []), conversation[0])
        if "gradio" in channels:
            check_body(await ask_gradio(client, conversation[0], []), conversation[0])


class Clients:
    """The readers' HTTP clients: one per reader, each with its own small pool, and (`spread`)
    from its own loopback address (127.0.1.1, 127.0.1.2, ...) so that nginx sees as many
    clients as readers; `shared` is for the warm-up.

    One pool shared by every reader was the load test's own bottleneck: httpx looks through its
    pool's connections for every request, so at 200 readers (a pool of up to 404) the driver spent
    16.7 ms of CPU per answer, more than the server (15.6 ms), and reported 32 answers/s where
    per-reader clients, on the same machine a minute later, measured 79/s (50 readers: 5.4 ms
    of driver CPU per answer and 60/s, against 1.5 ms and 92/s).
    All are made before any reader starts (each costs CPU time); plain HTTP, so no TLS setup."""

    def __init__(self, base: str, users: int, spread: bool) -> None:
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        self.shared = httpx.AsyncClient(base_url=base, timeout=120, limits=limits, verify=False)
        own = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        self.own = [
            httpx.AsyncClient(
                base_url=base,
                timeout=120,
                verify=False,
                limits=own,
                transport=httpx.AsyncHTTPTransport(
                    local_address=f"127.0.{1 + n // 250}.{1 + n % 250}", verify=False, limits=own
                )
                if spread
                else None,
            )
            for n in range(users)
        ]

    def of(self, number: int) -> httpx.AsyncClient:
        return self.own[number % len(self.own)] if self.own else self.shared

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with contextlib.AsyncExitStack() as stack:  # every one closed, whatever fails
            for client in [self.shared, *self.own]:
                stack.push_async_callback(client.aclose)


def _begin(report: Report, pids: Mapping[str, int], key: str) -> None:
    for name, pid in pids.items():
        report.memory.setdefault(name, {})[key] = rss_mb(pid)


def _end(report: Report, pids: Mapping[str, int], end: dict[str, float] | None = None) -> None:
    for name, pid in pids.items():
        figures = report.memory.setdefault(name, {})
        figures["end"] = end[name] if end else rss_mb(pid)
        figures["peak"] = max([*report.samples_mb.get(name, []), figures["end"]])
    report.load_after = os.getloadavg()[0]


async def load(
    base: str,
    pids: Mapping[str, int],
    users: int,
    seconds: float,
    think: float = 0.0,
    channels: tuple[str, ...] = CHANNELS,
    spread: bool = False,
    warm: bool = True,
) -> Report:
    """Warm the server up, then run `users` users for `seconds`; the report of that run.

    User n talks through channels[n % len(channels)]; `pids` names the processes whose memory
    is reported (each replica, nginx)."""
    report = Report(users, seconds, channels)
    async with Clients(base, users, spread) as clients:
        _begin(report, pids, "startup")
        if warm:
            await warm_up(clients.shared, channels)  # not measured
        _begin(report, pids, "start")
        report.load_average = os.getloadavg()[0]
        began = time.monotonic()
        until = began + seconds

        def more() -> bool:
            return time.monotonic() < until

        await sampled(
            pids,
            report,
            asyncio.gather(
                *(
                    user(n, channels[n % len(channels)], clients.of(n), more, report, think)
                    for n in range(users)
                )
            ),
        )
        report.seconds = time.monotonic() - began
        _end(report, pids)
    return report


async def load_counted(
    base: str,
    pids: Mapping[str, int],
    users: int,
    requests: int,
    rounds: int = 2,
    channels: tuple[str, ...] = CHANNELS,
    spread: bool = False,
) -> Report:
    """Warm up, then `rounds` rounds of `requests` requests by `users` users; the report.

    A fixed amount of work, whatever the machine's speed (no duration anywhere):
    `report.checkpoints_mb` holds the first process's RSS after the warm-up (every path once)
    and after each round, each taken once every request of the round is answered."""
    report = Report(users, 0.0, channels, round_requests=requests)
    first = next(iter(pids.values()))
    async with Clients(base, users, spread) as clients:
        _begin(report, pids, "startup")
        await warm_up(clients.shared, channels)
        _begin(report, pids, "start")
        report.checkpoints_mb.append(rss_mb(first))
        report.load_average = os.getloadavg()[0]
        began = time.monotonic()
        for number in range(rounds):
            more = tickets(requests)
            work = asyncio.gather(
                *(
                    user(
                        number * users + n,
                        channels[n % len(channels)],
                        clients.of(n),
                        more,
                        report,
                        0,
                    )
                    for n in range(users)
                )
            )
            await sampled(pids, report, work)
            report.checkpoints_mb.append(rss_mb(first))
        report.seconds = time.monotonic() - began
        _end(report, pids)
    return report


@dataclass(frozen=True)
class Memory:
    """What levels_off() makes of a counted run's checkpoints."""

    ok: bool
    first_mb: float  # growth over the first round
    second_mb: float  # growth over the last round
    limit_mb: float  # what the last round may grow
    why: str


def levels_off(
    checkpoints_mb: Sequence[float], round_requests: int, max_kb_per_request: float
) -> Memory:
    """Does the server's memory level off? A verdict on its RSS after warm-up and each round.

    Growth that comes once (allocator arenas, the threads' first requests, caches filling
    up) lands in the first round, however long it takes; a leak grows with every request, so
    the last round grows like the first. So only the last round is judged: it may grow
    `round_requests * max_kb_per_request`. Rounds are counts of requests, not durations: the
    verdict on a slow machine is the verdict on a fast one."""
    if len(checkpoints_mb) < 3:
        raise ValueError(f"need RSS after warm-up and two rounds at least, not {checkpoints_mb}")
    if round_requests <= 0:
        raise ValueError(f"round_requests must be positive, not {round_requests}")
    first = checkpoints_mb[1] - checkpoints_mb[0]
    second = checkpoints_mb[-1] - checkpoints_mb[-2]
    limit = round_requests * max_kb_per_request / 1024
    per_request = second * 1024 / round_requests
    ok = second <= limit
    why = (
        f"RSS {' -> '.join(f'{mb:.1f}' for mb in checkpoints_mb)} MB: the first round of "
        f"{round_requests} requests grew {first:+.1f} MB, the last {second:+.1f} MB "
        f"({per_request:.0f} KB a request); "
        + (f"levels off (at most {limit:.1f} MB)" if ok else f"LEAK: over {limit:.1f} MB")
    )
    return Memory(ok, first, second, limit, why)
