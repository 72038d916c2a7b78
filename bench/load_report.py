"""The load test's Markdown: latency and throughput tables, memory per process, the goals."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from bench.load_driver import Report

CHANNEL_NAMES = {
    "rest": "REST `POST /api/ask`",
    "gradio": "the chat page (question box, `run/predict`)",
}


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ok_ms(report: Report, channel: str | None = None) -> list[float]:
    return [o.seconds * 1000 for o in report.of(channel, "ok")]


def rate(report: Report, channel: str | None = None) -> float:
    return len(report.of(channel, "ok")) / report.seconds if report.seconds else 0.0


def p(report: Report, q: float, channel: str | None = None) -> float:
    return percentile(ok_ms(report, channel), q)


def channel_rows(report: Report) -> list[str]:
    """One row per channel (and all), for a table headed by CHANNEL_HEADER."""
    rows = []
    channels = list(dict.fromkeys(report.channels))
    for channel in [*channels, None] if len(channels) > 1 else channels:
        ok = ok_ms(report, channel)
        rows.append(
            f"| {CHANNEL_NAMES.get(channel or '', '**all**')} | {len(report.of(channel))} | "
            f"{len(ok)} | {len(report.of(channel, 'refused'))} | "
            f"{len(report.of(channel, 'failed'))} | {percentile(ok, 50):.0f} | "
            f"{percentile(ok, 95):.0f} | {percentile(ok, 99):.0f} | "
            f"{max(ok, default=float('nan')):.0f} | {rate(report, channel):.1f} |"
        )
    return rows


CHANNEL_HEADER = [
    "| channel | requests | ok | refused | failed | p50 ms | p95 ms | p99 ms | max ms "
    "| answers/s |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def verdict(report: Report) -> str:
    failed, refused = report.failed, report.refused
    if not failed and not refused:
        return "**0 errors** (no request failed, none refused)."
    parts = []
    if failed:
        parts.append(f"**{len(failed)} FAILED**, e.g. `{failed[0].detail[:160]}`")
    if refused:
        parts.append(f"**{len(refused)} refused**, e.g. `{refused[0].detail[:160]}`")
    return "; ".join(parts) + "."


def memory_rows(report: Report) -> list[str]:
    rows = [
        "| process | after startup MB | after warm-up MB | peak MB | end MB | over the run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in report.memory.items():
        start = m.get("start", m.get("startup", 0.0))
        rows.append(
            f"| {name} | {m.get('startup', 0):.0f} | {start:.0f} | {m['peak']:.0f} | "
            f"{m['end']:.0f} | {m['end'] - start:+.0f} MB |"
        )
    return rows


def loads(report: Report) -> str:
    return f"load average {report.load_average:.1f} before, {report.load_after:.1f} after"


@dataclass
class Raw:
    """The model alone, in the load test's own process, no server: questions a second."""

    single: float  # one question per model call
    batched: float  # 16 per call on one thread, as the server's batches
    single_ms: float  # median time of one single-question call
    load_average: float
    all_cores: float = 0.0  # 16 per call through the embedder's encode (every core)
    traced: float = 0.0  # one question per call on the traced graph (qa/traced.py)
    traced_ms: float = 0.0


def batching_table(
    levels: Sequence[int], before: Sequence[Report], after: Sequence[Report], raw: Raw
) -> list[str]:
    lines = [
        "| REST readers | before: answers/s | p50 ms | p95 ms | errors | after: answers/s | "
        "p50 ms | p95 ms | p99 ms | errors | after / before | after / raw single | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for users, b, a in zip(levels, before, after, strict=True):
        errors_b = len(b.failed) + len(b.refused)
        errors_a = len(a.failed) + len(a.refused)
        lines.append(
            f"| {users} | {rate(b):.0f} | {p(b, 50):.0f} | {p(b, 95):.0f} | {errors_b} | "
            f"**{rate(a):.0f}** | {p(a, 50):.0f} | {p(a, 95):.0f} | {p(a, 99):.0f} | {errors_a} | "
            f"{rate(a) / max(rate(b), 1e-9):.2f}x | {rate(a) / raw.single:.2f}x | "
            f"{a.load_average:.1f} |"
        )
    return lines


def machine_line(command: str) -> str:
    return (
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, shared with other work; the load generator runs "
        f"on the same cores. Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: `{command}`."
    )


def section(title: str, what: str, report: Report) -> list[str]:
    """A run's own sub-section: what it was, the verdict, the channel table, memory."""
    return [
        f"### {title}",
        "",
        f"{what} {report.users} readers for {report.seconds:.0f} s ({loads(report)}).",
        "",
        verdict(report),
        "",
        *CHANNEL_HEADER,
        *channel_rows(report),
        "",
        *memory_rows(report),
        "",
    ]


def flat(report: Report, max_mb: float) -> tuple[bool, str]:
    """Memory flat per process: none grew more than `max_mb` from warm-up to the end."""
    grown = {n: m["end"] - m.get("start", m["startup"]) for n, m in report.memory.items()}
    worst = max(grown.values(), default=0.0)
    return worst <= max_mb, ", ".join(f"{n} {g:+.0f} MB" for n, g in grown.items())


def goal_rows(goals: Sequence[tuple[str, str, bool]]) -> list[str]:
    return [
        "| goal | measured | met |",
        "|---|---|:---:|",
        *(
            f"| {goal} | {measured} | {'yes' if met else '**no**'} |"
            for goal, measured, met in goals
        ),
    ]
