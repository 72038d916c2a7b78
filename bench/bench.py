"""Benchmark of both stores (embedded folder, PostgreSQL): speed, size and memory, as ratios
against baselines measured moments apart in the same run.

    python bench/bench.py [--only NAME[,NAME]] [--store postgresql://...] [--quick]

Sections, each its own module: latency (ask against one query embedding), build (index build
against raw `model.encode`), incremental (change 1 of 1,000 documents), startup (cold start,
import, peak memory), scale (10k to 1M chunks). Without --store, a local PostgreSQL + pgvector
is started for the run (tests/pgserver.py) and stopped at the end. Each section's raw numbers
go to bench/results.json; RESULTS.md is re-rendered from them above the `<!-- load test -->`
marker, so `--only` rewrites that section and keeps the others (and the load test's part).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import build
import common
import incremental
import latency
import scale
import scale_report
import startup
from common import RESULTS, Bench, log, table

SECTIONS = {m.NAME: m for m in (latency, build, incremental, startup, scale)}


def run(args: argparse.Namespace, names: list[str]) -> None:
    raw = common.load_raw()
    sections = raw.setdefault("sections", {})
    command = "python bench/bench.py " + " ".join(sys.argv[1:])
    with (
        tempfile.TemporaryDirectory(prefix="qa-bench-") as name,
        common.postgres_server(args.store, Path(name)) as (url, origin),
    ):
        bench = Bench(quick=args.quick, tmp=Path(name), pg_url=url)
        postgres = f"{common.postgres_version(url)}, {origin}"
        bench.embedder  # noqa: B018 - load the model once, before anything is timed
        for section in names:
            module = SECTIONS[section]
            facts = common.machine()
            facts.update(loadavg_start=common.loadavg(), command=command, quick=args.quick)
            facts["postgres"] = postgres
            log(f"{section}: start, load {facts['loadavg_start']}")
            began = time.perf_counter()
            data = scale.run(bench, args.pg_minutes) if module is scale else module.run(bench)
            facts.update(minutes=(time.perf_counter() - began) / 60, loadavg_end=common.loadavg())
            sections[section] = {"run": facts, "data": data}
            common.save_raw(raw)  # a later failure keeps this section
            render(raw)
            log(f"{section}: done in {facts['minutes']:.1f} min")


def render(raw: dict[str, Any]) -> None:
    sections = raw.get("sections", {})
    present = [name for name in SECTIONS if name in sections]
    if not present:
        return
    latest = max((sections[name]["run"] for name in present), key=lambda r: r["date"])
    libs = ", ".join(f"{k} {v}" for k, v in latest["libraries"].items())
    out = [
        "# Benchmark results",
        "",
        "Produced by `python bench/bench.py` (bench/: one module per section). Both stores are "
        "measured in the same run: the embedded folder (FAISS + BM25 files) and PostgreSQL + "
        "pgvector. Every goal is a ratio against a baseline measured moments apart in the same "
        "run (medians of alternating runs), so the numbers travel between machines better "
        "than absolute times do; absolute times are shown, never used as goals. The runs table "
        "at the end says when each section was measured.",
        "",
        f"- Machine: {latest['cpu']}, {latest['cores']} cores, {latest['ram_gib']} GiB RAM, "
        f"no GPU; {latest['os']}",
        f"- Python {latest['python']}; {libs}",
        f"- {latest['postgres']}",
        "- The machine is shared with other agents running tests: load averages are in the "
        "runs table; ratios pair each measurement with its baseline taken moments apart.",
    ]
    if any(sections[name]["run"]["quick"] for name in present):
        out += ["", "**Some sections below come from a `--quick` run (smaller inputs).**"]
    rows = []
    for name in present:
        for measure, value, goal, met in SECTIONS[name].goals(sections[name]["data"]):
            rows.append([measure, value, goal, "yes" if met else "**no**"])
    out += ["", "## Goals", "", *table(["measure", "value", "goal", "met"], rows)]
    out += ["", "## What the numbers say", ""]
    for name in present:
        out += SECTIONS[name].findings(sections[name]["data"])
    for name in present:
        out += ["", *SECTIONS[name].render(sections[name]["data"])]
    rows = []
    for name in present:
        r = sections[name]["run"]
        rows.append(
            [
                name,
                r["date"],
                r["commit"],
                f"`{r['command'].strip()}`",
                f"{r['minutes']:.1f} min",
                f"{r['loadavg_start']} / {r['loadavg_end']}",
            ]
        )
    out += ["", "## Runs", "", "Load averages are 1/5/15-minute, at the section's start / end.", ""]
    out += table(["section", "date", "commit", "command", "took", "load average"], rows)
    common.write_results("\n".join(out))
    if "scale" in sections:
        scale_report.plot(sections["scale"]["data"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--store", help="a PostgreSQL server URL to use instead of a local one")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, a few minutes")
    parser.add_argument(
        "--pg-minutes",
        type=float,
        default=30.0,
        help="build time allowed for PostgreSQL scale sizes above 100k (default 30)",
    )
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if args.store and not args.store.startswith(("postgresql://", "postgres://")):
        parser.error("--store takes a postgresql:// URL")
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.render:
        render(common.load_raw())
    else:
        run(args, names)
    log(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
