"""Load test: N concurrent users for T seconds against a real `qa serve` on loopback.

Half the users ask through the REST API (POST /api/ask), half through the Gradio chat API
(POST /gradio_api/call/ask, then its event stream). Each user holds conversations about the
S-400 article: a question, then follow-ups that carry the history. Reported: failed requests
(the check is that there are none), requests refused by the guards (429/503, counted apart),
p50/p95/p99 latency, throughput, and the server's RSS at start, peak and end.

    python bench/load_test.py                      # 50 users x 60 s, into bench/RESULTS.md
    python bench/load_test.py --users 10 --seconds 10 --out -

The server runs as its own process (so its memory is its own), with the rate limit off and
room for every user in the REST and chat queues: this measures capacity, not the guards.
tests/test_load.py runs a small, counted version in CI (load_counted: a fixed number of requests,
the server's RSS after each round, judged by levels_off).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOCS = REPO / "index" / "docs"
RESULTS = HERE / "RESULTS.md"
MARKER = "<!-- load test -->"  # bench.py writes above it and keeps what follows

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
QA = (sys.executable, "-m", "qa.cli")


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
    rss_mb: dict[str, float] = field(default_factory=dict)  # startup, start, peak, end
    load_average: float = 0.0  # the machine's 1-minute load average just before the run
    samples_mb: list[float] = field(default_factory=list)
    # A counted run (load_counted): the server's RSS after warm-up and after each round of
    # `round_requests` requests, each taken with no request in flight.
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


# ----- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_index(out: Path) -> Path:
    """The article's knowledge base, built by the real `qa index` into `out`."""
    subprocess.run(
        [sys.executable, "-m", "qa.cli", "index", str(DOCS), "--out", str(out), "--quiet"],
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
    )
    return out


@contextlib.contextmanager
def server(
    index: Path, workdir: Path, users: int, command: Sequence[str] | None = None, **env: str
) -> Iterator[tuple[str, int]]:
    """`qa serve` on a free loopback port; yields its base URL and pid.

    `command` runs the `qa` command line (default `python -m qa.cli`), e.g. a wrapper that
    patches qa before calling `qa.cli.main`; `serve` and its options are added to it."""
    port = free_port()
    environ = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(workdir / "gradio"),
        "QA_RATE_LIMIT": "0",  # every user comes from 127.0.0.1: one client to the limiter
        "QA_MAX_INFLIGHT": str(max(8, users)),
        "QA_QUEUE_SIZE": str(max(64, 2 * users)),
        **env,
    }
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [*(command or QA), "serve", "--index", str(index), "--port", str(port)],
        cwd=workdir,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"qa serve exited: {(workdir / 'server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("qa serve did not become healthy in 180 s")
            time.sleep(0.25)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


# ----- the users ---------------------------------------------------------------------------------


async def ask_rest(client: httpx.AsyncClient, question: str, history: list[dict[str, str]]) -> Any:
    response = await client.post("/api/ask", json={"question": question, "history": history})
    if response.status_code in (429, 503):
        raise Refused(f"{response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise Failed(f"{response.status_code} {response.text[:200]}")
    return response.json()


async def ask_gradio(
    client: httpx.AsyncClient, question: str, history: list[dict[str, str]]
) -> Any:
    """The chat's API: queue the call, then read its server-sent events to the end."""
    response = await client.post("/gradio_api/call/ask", json={"data": [question, history]})
    if response.status_code in (429, 503):
        raise Refused(f"{response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise Failed(f"{response.status_code} {response.text[:200]}")
    event_id = response.json()["event_id"]
    event = None
    async with client.stream("GET", f"/gradio_api/call/ask/{event_id}") as stream:
        if stream.status_code != 200:
            raise Failed(f"stream {stream.status_code}")
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line.removeprefix("data:"))
                if event == "error":
                    message = json.dumps(data)
                    if "busy" in message.lower() or "queue is full" in message.lower():
                        raise Refused(message[:200])
                    raise Failed(f"error event: {message[:200]}")
                return data[0]
    raise Failed(f"the event stream ended without a result (last event {event!r})")


class Refused(Exception):
    """A guard turned the request away (429, 503, a full queue): by design, counted apart."""


class Failed(Exception):
    """Anything else that is not a well-formed answer."""


def check_body(body: Any, question: str) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("answer"), str) or not body["answer"]:
        raise Failed(f"not an answer: {str(body)[:200]}")
    if not isinstance(body.get("passages"), list) or body.get("question") != question:
        raise Failed(f"malformed answer: {str(body)[:200]}")


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
    ask = ask_rest if channel == "rest" else ask_gradio
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


async def sample_memory(pid: int, report: Report, running: Callable[[], bool]) -> None:
    while running():
        report.samples_mb.append(rss_mb(pid))
        await asyncio.sleep(0.5)


async def sampled(pid: int, report: Report, work: Awaitable[Any]) -> None:
    """Await `work`, sampling the server's RSS every half second meanwhile."""
    task = asyncio.ensure_future(work)
    while not task.done():
        report.samples_mb.append(rss_mb(pid))
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


async def warm_up(client: httpx.AsyncClient) -> None:
    """Every path once, each checked."""
    for conversation in CONVERSATIONS:
        check_body(await ask_rest(client, conversation[0], []), conversation[0])
        check_body(await ask_gradio(client, conversation[0], []), conversation[0])


def client_for(base: str, users: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=2 * users + 4, max_keepalive_connections=2 * users + 4)
    return httpx.AsyncClient(base_url=base, timeout=120, limits=limits)


async def load(
    base: str,
    pid: int,
    users: int,
    seconds: float,
    think: float = 0.0,
    channels: tuple[str, ...] = CHANNELS,
) -> Report:
    """Warm the server up, then run `users` users for `seconds`; the report of that run.

    User n talks through channels[n % len(channels)]."""
    report = Report(users, seconds, channels)
    async with client_for(base, users) as client:
        report.rss_mb["startup"] = rss_mb(pid)
        await warm_up(client)  # not measured
        report.rss_mb["start"] = rss_mb(pid)
        report.load_average = os.getloadavg()[0]
        began = time.monotonic()
        until = began + seconds

        def more() -> bool:
            return time.monotonic() < until

        await asyncio.gather(
            sample_memory(pid, report, more),
            *(
                user(n, channels[n % len(channels)], client, more, report, think)
                for n in range(users)
            ),
        )
        report.seconds = time.monotonic() - began
        report.rss_mb["end"] = rss_mb(pid)
        report.rss_mb["peak"] = max([*report.samples_mb, report.rss_mb["end"]])
    return report


async def load_counted(
    base: str,
    pid: int,
    users: int,
    requests: int,
    rounds: int = 2,
    channels: tuple[str, ...] = CHANNELS,
) -> Report:
    """Warm up, then `rounds` rounds of `requests` requests by `users` users; the report.

    A fixed amount of work, whatever the machine's speed (no duration anywhere):
    `report.checkpoints_mb` holds the server's RSS after the warm-up (every path once) and
    after each round, each taken once every request of the round is answered, none in flight.
    User n talks through channels[n % len(channels)]."""
    report = Report(users, 0.0, channels, round_requests=requests)
    async with client_for(base, users) as client:
        report.rss_mb["startup"] = rss_mb(pid)
        await warm_up(client)
        report.rss_mb["start"] = rss_mb(pid)
        report.checkpoints_mb.append(report.rss_mb["start"])
        report.load_average = os.getloadavg()[0]
        began = time.monotonic()
        for number in range(rounds):
            more = tickets(requests)
            await sampled(
                pid,
                report,
                asyncio.gather(
                    *(
                        user(
                            number * users + n, channels[n % len(channels)], client, more, report, 0
                        )
                        for n in range(users)
                    )
                ),
            )
            report.checkpoints_mb.append(rss_mb(pid))
        report.seconds = time.monotonic() - began
        report.rss_mb["end"] = report.checkpoints_mb[-1]
        report.rss_mb["peak"] = max([*report.samples_mb, *report.checkpoints_mb])
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


# ----- the report --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def markdown(report: Report, command: str) -> str:
    rows = []
    for channel in (*dict.fromkeys(report.channels), None):
        done = report.of(channel)
        ok = [o.seconds * 1000 for o in report.of(channel, "ok")]
        name = {"rest": "REST `POST /api/ask`", "gradio": "Gradio `ask` (call + stream)"}.get(
            channel or "", "**all**"
        )
        rows.append(
            f"| {name} | {len(done)} | {len(ok)} | {len(report.of(channel, 'refused'))} | "
            f"{len(report.of(channel, 'failed'))} | {percentile(ok, 50):.0f} | "
            f"{percentile(ok, 95):.0f} | {percentile(ok, 99):.0f} | "
            f"{max(ok, default=float('nan')):.0f} | {len(ok) / report.seconds:.1f} |"
        )
    failed = report.failed
    verdict = (
        "**0 failed requests.**"
        if not failed
        else f"**{len(failed)} FAILED requests**, e.g. `{failed[0].detail}`"
    )
    rss = report.rss_mb
    ways = (
        "half through the REST API and half through the Gradio chat API"
        if len(set(report.channels)) > 1
        else f"all through the {'REST' if report.channels[0] == 'rest' else 'Gradio chat'} API"
    )
    return "\n".join(
        [
            "## Load test",
            "",
            f"{report.users} concurrent users for {report.seconds:.0f} s against `qa serve` on "
            f"loopback, {ways}, each asking about the S-400 article with follow-ups that "
            "carry the history (no pause between questions: a stress test, the worst case for "
            "latency). Server guards: rate limit off (every user is 127.0.0.1), room for every "
            "user in the REST and chat queues, chat concurrency at its default.",
            "",
            verdict,
            "",
            "| channel | requests | ok | refused | failed | p50 ms | p95 ms | p99 ms | max ms | "
            "answers/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Server RSS: {rss['startup']:.0f} MB after startup, {rss['start']:.0f} MB after "
            f"warm-up, {rss['peak']:.0f} MB peak, {rss['end']:.0f} MB at the end "
            f"({rss['end'] - rss['start']:+.0f} MB over the run).",
            "",
            f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Python {platform.python_version()}; the load generator shares the machine, whose "
            f"load average was {report.load_average:.1f} before the run. "
            f"Run {dt.date.today().isoformat()}: `{command}`.",
            "",
        ]
    )


def soak_markdown(first: Report, rounds: list[Report]) -> str:
    if not rounds:
        return ""
    lines = [
        "",
        "### Memory over a longer run",
        "",
        "The same server, more rounds of the same load:",
        "",
        "| round | requests so far | failed | server RSS at its end, MB |",
        "|---:|---:|---:|---:|",
    ]
    total = 0
    for number, report in enumerate([first, *rounds], start=1):
        total += len(report.outcomes)
        lines.append(f"| {number} | {total} | {len(report.failed)} | {report.rss_mb['end']:.0f} |")
    return "\n".join([*lines, ""])


def write_section(path: Path, text: str) -> None:
    """Replace what follows the load-test marker of a results file; write any other file whole."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARKER in old:
        text = old.split(MARKER, 1)[0] + MARKER + "\n" + text
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between questions")
    parser.add_argument("--index", help="knowledge base to serve (default: build the article's)")
    parser.add_argument(
        "--out", default=str(RESULTS), help="markdown file (default: bench/RESULTS.md), or -"
    )
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="then run this many more rounds on the same server, to watch its memory",
    )
    parser.add_argument(
        "--channels", default=",".join(CHANNELS), help="rest, gradio or both (rest,gradio)"
    )
    args = parser.parse_args(argv)
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    if not channels or set(channels) - set(CHANNELS):
        parser.error(f"--channels must name rest and/or gradio, not {args.channels!r}")
    soak: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        workdir = Path(tmp)
        index = Path(args.index) if args.index else build_index(workdir / "kb")
        with server(index, workdir, args.users) as (base, pid):
            for _ in range(1 + args.soak):
                soak.append(
                    asyncio.run(load(base, pid, args.users, args.seconds, args.think, channels))
                )
    report, soak = soak[0], soak[1:]
    command = "python bench/load_test.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(report, command.strip()) + soak_markdown(report, soak)
    if args.out == "-":
        print(text)
    else:
        write_section(Path(args.out), text)
        print(text)
    return 1 if report.failed or any(r.failed for r in soak) else 0


if __name__ == "__main__":
    sys.exit(main())
