"""Load test: real readers against real `qa serve` processes, one of them or two behind nginx.

In one run (so that every ratio compares figures taken minutes apart on the same machine):

1. the model alone: questions embedded a second one at a time and in batches of 16;
2. one process, REST readers at 1, 4, 16, 50, 200, before batching (QA_BATCH_MAX=1) and
   after (the defaults), the two servers side by side and measured in turn at each level;
3. one process, 50 readers of the chat page (its question box, as a browser posts it);
4. nginx (docs/deploy/nginx.conf) over two replicas: 50 and then 200 readers, half REST and
   half chat, each from its own loopback address, every process's memory at start, peak and
   end; the 200 run twice on the same replicas, to see whether memory stays flat.

Every reader holds conversations about the S-400 article (a question, then follow-ups that
carry the history; no pause between questions: the worst case for latency). Every server runs
the app's defaults but for the rate limit, which is off (a company's readers do not share one
address; here they do). `--tuning` instead compares settings (the old guard defaults, a batch
window) at 50 readers, one process.

    python bench/load_test.py                      # into bench/RESULTS.md, below the marker
    python bench/load_test.py --seconds 5 --out -  # a quick look

tests/test_load.py runs a small, counted version in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/load_test.py`: bench/ first would make `bench`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/bench.py, not the folder

from bench.load_driver import CHANNELS, CONVERSATIONS, Report, load
from bench.load_report import (
    Raw,
    batching_table,
    flat,
    goal_rows,
    loads,
    machine_line,
    p,
    rate,
    section,
)
from bench.servers import build_index, nginx, replicas

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
MARKER = "<!-- load test -->"  # bench.py writes above it and keeps what follows
TUNING = "<!-- load tuning -->"  # `--tuning` writes below it
READING = "### Reading the figures"  # a person writes it under a run; a new run keeps it
LEVELS = (1, 4, 16, 50, 200)
FLAT_MB = 25.0  # what a process may grow over the second 200-reader round and still be flat


CHAT_WHAT = "The chat page (its question box, posted to `run/predict` as a browser does):"


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raw_rate(seconds: float = 4.0) -> Raw:
    """The bundled model in this process: one question per call (sentence-transformers' eager
    model, the raw rate every ratio divides by), then 16 per call as the server embeds a batch
    (one thread, qa/serve/batching.py), then 16 per call through the embedder's own encode
    (every core), then one per call on the traced graph a server runs for questions
    (qa/traced.py: its bfloat16 graph where that pays)."""
    import torch

    from qa.embedding import get_embedder
    from qa.serve.batching import BatchingEmbedder
    from qa.traced import trace

    embedder = get_embedder().load()  # not traced: its encode is sentence-transformers' own
    traced = trace(embedder.model)
    assert traced is not None, "the bundled model traces (qa/traced.py)"
    server = BatchingEmbedder(embedder)
    questions = [q for conversation in CONVERSATIONS for q in conversation]
    embedder.encode(questions[:16], batch_size=16)  # warm
    load_average = os.getloadavg()[0]

    def measure(size: int, encode: Callable[[list[str]], Any]) -> tuple[float, list[float]]:
        done, calls, began = 0, [], time.perf_counter()
        while time.perf_counter() - began < seconds:
            batch = [questions[(done + i) % len(questions)] for i in range(size)]
            t = time.perf_counter()
            encode(batch)
            calls.append(time.perf_counter() - t)
            done += size
        return done / (time.perf_counter() - began), calls

    single, calls = measure(1, lambda texts: embedder.encode(texts, batch_size=1))
    batched, _ = measure(16, server._encode)
    all_cores, _ = measure(16, lambda texts: embedder.encode(texts, batch_size=16))
    torch.set_num_threads(1)  # as the embedder sets it for one question
    graph, graph_calls = measure(
        1, lambda texts: traced.encode(texts, batch_size=1, progress=False, questions=True)
    )
    return Raw(single, batched, median(calls), load_average, all_cores, graph, median(graph_calls))


def median(seconds: list[float]) -> float:
    return 1000 * sorted(seconds)[len(seconds) // 2]


def run_load(base: str, pids: dict[str, int], users: int, seconds: float, **kw: Any) -> Report:
    report = asyncio.run(load(base, pids, users, seconds, **kw))
    log(
        f"{users} readers {'+'.join(report.channels)}: {rate(report):.0f}/s, p50 "
        f"{p(report, 50):.0f} p95 {p(report, 95):.0f} ms, {len(report.failed)} failed, "
        f"{len(report.refused)} refused ({loads(report)})"
    )
    return report


def main_run(index: Path, workdir: Path, seconds: float) -> tuple[list[str], bool]:
    source = ["--index", str(index)]
    log("raw embedding rate")
    raw = raw_rate()
    log(f"raw: {raw.single:.0f}/s single, {raw.batched:.0f}/s in 16s")
    before: list[Report] = []
    after: list[Report] = []
    (workdir / "before").mkdir()
    (workdir / "after").mkdir()
    with (
        replicas(source, workdir / "before", 1, QA_BATCH_MAX="1") as (b,),
        replicas(source, workdir / "after", 1) as (a,),
    ):
        for number, users in enumerate(LEVELS):
            # Which server goes first alternates, so that neither always meets a warmer machine.
            order = [(b, before), (a, after)] if number % 2 == 0 else [(a, after), (b, before)]
            for replica, into in order:
                pids = {"qa serve": replica.pid}
                into.append(run_load(replica.base, pids, users, seconds, channels=("rest",)))
        log("50 chat readers, one process")
        chat = run_load(a.base, {"qa serve": a.pid}, 50, 2 * seconds, channels=("gradio",))
    (workdir / "two").mkdir()
    with replicas(source, workdir / "two", 2) as pair, nginx(workdir, [r.port for r in pair]) as nx:
        pids = {"replica 1": pair[0].pid, "replica 2": pair[1].pid, "nginx": nx.pid}
        log("through nginx: 50 readers")
        fifty = run_load(nx.base, pids, 50, 2 * seconds, spread=True)
        log("through nginx: 200 readers, twice")
        rounds = [run_load(nx.base, pids, 200, 2 * seconds, spread=True) for _ in range(2)]
        nginx_errors = nx.errors()

    rest50 = after[LEVELS.index(50)]
    lone = after[LEVELS.index(1)]
    ratio = p(lone, 50) / raw.single_ms
    is_flat, growth = flat(rounds[1], FLAT_MB)
    errors = [len(r.failed) + len(r.refused) for r in (rest50, chat, fifty, *rounds)]
    goals = [
        (
            "50 REST readers, one process: >= 2x the raw single-stream rate",
            f"{rate(rest50):.0f}/s = {rate(rest50) / raw.single:.2f}x {raw.single:.0f}/s",
            rate(rest50) >= 2 * raw.single,
        ),
        ("... p95 <= 300 ms", f"{p(rest50, 95):.0f} ms", p(rest50, 95) <= 300),
        ("... 0 errors", str(errors[0]), errors[0] == 0),
        ("50 chat readers: p95 <= 1 s", f"{p(chat, 95):.0f} ms", p(chat, 95) <= 1000),
        ("... 0 errors", str(errors[1]), errors[1] == 0),
        (
            "200 readers, nginx, 2 replicas: 0 errors",
            f"{errors[3]} + {errors[4]}",
            not any(errors[3:]),
        ),
        (f"... memory flat per process (second round, <= {FLAT_MB:.0f} MB)", growth, is_flat),
        (
            "a lone reader's ask <= 1.2x one raw embedding",
            f"p50 {p(lone, 50):.1f} ms / {raw.single_ms:.1f} ms = {ratio:.2f}x",
            ratio <= 1.2,
        ),
    ]
    nginx_what = (
        "Through nginx (docs/deploy/nginx.conf) over two replicas, half the readers on REST and "
        "half on the chat page, each reader from its own loopback address:"
    )
    lines = [
        "## Load test",
        "",
        "Real readers against real `qa serve` processes on loopback (each its own process, the "
        "app's defaults, rate limit off), asking about the S-400 article with follow-ups that "
        "carry the history, no pause between questions. Errors are failed requests plus "
        "requests a guard refused (429/503, a full queue). Written by `bench/load_test.py`.",
        "",
        *goal_rows(goals),
        "",
        "### The model alone",
        "",
        f"In the load test's own process, no server (load average {raw.load_average:.1f}): "
        f"**{raw.single:.0f} questions/s one at a time** ({raw.single_ms:.1f} ms a call), "
        f"**{raw.batched:.0f}/s in batches of 16** on one torch thread, as the server embeds "
        f"a batch ({raw.all_cores:.0f}/s through the embedder's own encode, which uses every "
        "core for 8 texts or more: faster on an idle machine, far slower on a busy one). "
        "The traced graph a server runs for questions (qa/traced.py; bfloat16 where it pays): "
        f"**{raw.traced:.0f}/s one at a time** "
        f"({raw.traced_ms:.1f} ms a call). Every ratio here divides by sentence-transformers' "
        "own eager rate, the first figure.",
        "",
        "### Batching: REST readers against one process",
        "",
        "Before = `QA_BATCH_MAX=1` (every question embedded alone), after = the defaults "
        f"(`QA_BATCH_MAX=16`, `QA_BATCH_WINDOW_MS=0`); {seconds:.0f} s a level, the two servers "
        "measured in turn at each level. Errors: failed + refused.",
        "",
        *batching_table(LEVELS, before, after, raw),
        "",
        *section("50 chat readers, one process", CHAT_WHAT, chat),
        *section("50 readers through nginx, two replicas", nginx_what, fifty),
        *section("200 readers through nginx, two replicas: first round", nginx_what, rounds[0]),
        *section("200 readers: second round, the same replicas", nginx_what, rounds[1]),
        f"nginx's error log over the three runs through it: {len(nginx_errors)} lines"
        + (":" if nginx_errors else "."),
        "",
        *([f"    {line[:200]}" for line in nginx_errors[:8]] + [""] if nginx_errors else []),
    ]
    return lines, not any(errors)


def write_section(path: Path, text: str, tuning: bool = False) -> None:
    """Replace the load test's part of a results file (what follows its marker, up to the
    tuning marker, which a `--tuning` run owns the rest after), keeping its hand-written
    READING section; write any other file whole."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARKER in old:
        head, tail = old.split(MARKER, 1)
        main, _, tuned = tail.partition(TUNING)
        if tuning:
            text = head + MARKER + main.rstrip("\n") + "\n\n" + TUNING + "\n" + text
        else:  # the hand-written reading of the last run stays, to be brought up to date
            notes = main[main.index(READING) :].rstrip("\n") + "\n\n" if READING in main else ""
            text = head + MARKER + "\n" + text + "\n" + notes + TUNING + tuned
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None, run: Callable[..., Any] = main_run) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="per level (chat, nginx: 2x)")
    parser.add_argument("--index", help="knowledge base to serve (default: build the article's)")
    parser.add_argument("--tuning", action="store_true", help="compare settings instead")
    parser.add_argument(
        "--out", default=str(RESULTS), help="markdown file (default: bench/RESULTS.md), or -"
    )
    args = parser.parse_args(argv)
    command = "python bench/load_test.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        workdir = Path(tmp)
        index = Path(args.index) if args.index else build_index(workdir / "kb")
        if args.tuning:
            from bench.load_tuning import tuning_run

            lines, ok = tuning_run(index, workdir, args.seconds)
        else:
            lines, ok = run(index, workdir, args.seconds)
    text = "\n".join([*lines, machine_line(command.strip()), ""])
    print(text)
    if args.out != "-":
        write_section(Path(args.out), text, tuning=args.tuning)
    return 0 if ok else 1


__all__ = ["CHANNELS", "main"]

if __name__ == "__main__":
    sys.exit(main())
