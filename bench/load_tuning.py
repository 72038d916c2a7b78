"""`python bench/load_test.py --tuning`: the measurements behind the serving defaults.

One process at a time, 50 readers, REST and then the chat page, under: the guard
defaults before this change (QA_MAX_INFLIGHT=8, QA_CONCURRENCY=4, QA_QUEUE_SIZE=64), today's
defaults, and today's with a batch window of 3 ms. (Since the chat page's questions skip
Gradio's queue, QA_CONCURRENCY and QA_QUEUE_SIZE no longer bound them: QA_MAX_INFLIGHT
does.) The servers run side by side and are measured in turn, twice, alternating the order.
"""

from __future__ import annotations

from pathlib import Path

from bench.load_driver import Report
from bench.load_report import CHANNEL_HEADER, channel_rows, loads, p, rate
from bench.servers import replicas

SETUPS: dict[str, dict[str, str]] = {
    "old guards (inflight 8, chat concurrency 4, queue 64)": {
        "QA_MAX_INFLIGHT": "8",
        "QA_CONCURRENCY": "4",
        "QA_QUEUE_SIZE": "64",
    },
    "defaults": {},
    "defaults + QA_BATCH_WINDOW_MS=3": {"QA_BATCH_WINDOW_MS": "3"},
}
USERS = 50


def tuning_run(index: Path, workdir: Path, seconds: float) -> tuple[list[str], bool]:
    from contextlib import ExitStack

    from bench.load_test import log, run_load

    results: dict[tuple[str, str], list[Report]] = {}
    with ExitStack() as stack:
        servers = {}
        for number, (name, env) in enumerate(SETUPS.items()):
            folder = workdir / f"setup-{number}"
            folder.mkdir()
            (one,) = stack.enter_context(replicas(["--index", str(index)], folder, 1, **env))
            servers[name] = one
        for repeat in range(2):
            names = list(servers) if repeat % 2 == 0 else list(reversed(servers))
            for channel in ("rest", "gradio"):
                for name in names:
                    log(f"{name}: {USERS} {channel} readers")
                    server = servers[name]
                    report = run_load(
                        server.base, {name: server.pid}, USERS, seconds, channels=(channel,)
                    )
                    results.setdefault((name, channel), []).append(report)
    lines = [
        "### Tuning the defaults",
        "",
        f"{USERS} readers against one process, {seconds:.0f} s a run, each setup measured "
        "twice (order alternated); one row per run.",
        "",
        "| setup | channel | run | answers/s | p50 ms | p95 ms | failed | refused | load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (name, channel), reports in results.items():
        for number, report in enumerate(reports, start=1):
            lines.append(
                f"| {name} | {channel} | {number} | {rate(report):.0f} | {p(report, 50):.0f} | "
                f"{p(report, 95):.0f} | {len(report.failed)} | {len(report.refused)} | "
                f"{loads(report)} |"
            )
    example = results[("defaults", "rest")][0]
    lines += ["", "One run in full (defaults, REST):", "", *CHANNEL_HEADER, *channel_rows(example)]
    lines.append("")
    return lines, True
