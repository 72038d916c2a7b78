"""Scale: search latency, agreement with exact search, size and build time, 10k to 1M chunks.

Each store is written with synthetic MiniLM-shaped vectors (bench/corpus.py) through
`store.writer(info)` and `DocumentUpdate`, as a real build writes, in a fresh worker process:
one per size for the embedded store (every commit rebuilds its folder), one growing schema for
PostgreSQL (each size adds documents to the previous one, as a knowledge base grows), which
stops before a size its build rate says would not fit in the time budget (`--pg-minutes`).

At each size: `retrieve()` p50/p95 (hybrid, the store's own searches), `store.search_chunks`
and `store.keyword_search` p50, how often the store's first hit is the exact nearest chunk
(numpy brute force over the same vectors), the disk it takes and the time to build it. Single
queries are timed in a rotating order with two same-run baselines: the exact numpy search and
one query embedding.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import Bench, fmt_size, log, pct
from corpus import Corpus, Shape, exact_top, minilm_sample, perturbed

NAME = "scale"
SIZES = {
    "embedded": [10_000, 100_000, 1_000_000],
    "postgres": [10_000, 30_000, 100_000, 300_000, 1_000_000],
}
QUICK_SIZES = {"embedded": [2_000, 20_000], "postgres": [2_000, 10_000, 20_000]}
REQUIRED = 100_000  # PostgreSQL always grows to this size; larger ones only within the budget
QUICK_REQUIRED = 10_000
COSINES = (0.9, 0.7, 0.5)  # agreement with exact search, for queries this close to a chunk
LATENCY_COSINE = 0.7
PG_BUILD_MEMORY = "4GB"  # see build_memory()
SLOWDOWN = 1.25  # projected build time of the next size: the last rate, this much slower
# Stores to measure ("embedded,postgres" when unset); the others' rows are kept from the last
# run in results.json, marked with the date they were measured.
ONLY = "QA_BENCH_SCALE_STORES"


def run(bench: Bench, pg_minutes: float = 30.0) -> dict[str, Any]:
    from qa.settings import Settings

    sample = minilm_sample(bench.embedder, Settings(), bench.tmp / "minilm-sample.npy")
    sizes = QUICK_SIZES if bench.quick else SIZES
    queries = 50 if bench.quick else 200
    rows, kept = kept_rows(os.environ.get(ONLY, "embedded,postgres").split(","))
    skipped: list[dict[str, Any]] = []
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    common_args = ["--sample", str(sample), "--queries", str(queries)]
    for n in [] if "embedded" in kept else sizes["embedded"]:
        spec = bench.spec("embedded", f"scale{n}")
        log(f"scale: embedded, {fmt_size(n)} chunks, fresh folder; load {common.loadavg()}")
        out = common.run_child([*me, "embedded", spec, str(n), *common_args])
        rows += out["rows"]
        bench.discard(spec)
    spec = bench.spec("postgres", "scale")
    bench.discard(spec)
    baseline = common.database_mb(spec)
    required = QUICK_REQUIRED if bench.quick else REQUIRED
    budget = (3.0 if bench.quick else pg_minutes) * 60
    log(f"scale: PostgreSQL, growing to {fmt_size(sizes['postgres'][-1])} chunks at most")
    out = common.run_child(
        [
            *me,
            "postgres",
            spec,
            ",".join(map(str, sizes["postgres"])),
            *common_args,
            "--required",
            str(required),
            "--budget",
            str(budget),
        ]
    )
    bench.discard(spec)
    rows += out["rows"]
    skipped += out["skipped"]
    return {
        "rows": rows,
        "skipped": skipped,
        "queries": queries,
        "pg_budget_s": budget,
        "pg_required": required,
        "database_baseline_mb": baseline,
        "approximate_above": Settings().approximate_above,
    }


def kept_rows(measured: list[str]) -> tuple[list[dict[str, Any]], set[str]]:
    """The last run's rows of the stores not measured now, each with the date of its run."""
    last = common.load_raw().get("sections", {}).get("scale", {})
    kept = {kind for kind in common.STORES if kind not in measured}
    rows = [
        {**row, "measured": row.get("measured", last["run"]["date"])}
        for row in last.get("data", {}).get("rows", [])
        if row["store"] in kept
    ]
    return rows, kept


# ----- the worker (a fresh process) ---------------------------------------------------------
def worker(kind: str, spec: str, sizes: list[int], args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from qa.stores import StoreInfo

    corpus = Corpus(Shape(np.load(args.sample)))
    info = StoreInfo(
        model_id="all-MiniLM-L6-v2",
        fingerprint="synthetic-minilm-shaped",
        dim=common.DIM,
        max_tokens=256,
        chunking={"synthetic": 1},
    )
    if kind == "postgres":
        build_memory(spec, PG_BUILD_MEMORY)
    try:
        return grow(kind, spec, sizes, args, info, corpus)
    finally:
        if kind == "postgres":
            build_memory(spec, None)


def grow(
    kind: str, spec: str, sizes: list[int], args: argparse.Namespace, info: Any, corpus: Any
) -> dict[str, Any]:
    """Write the store up to each size in turn and measure it there."""
    from qa.stores import open_store

    store = open_store(spec)
    rows, skipped = [], []
    built, cumulative = 0, 0.0
    for i, n in enumerate(sizes):
        rss_before = common.rss_mb()
        began = time.perf_counter()
        with store.writer(info, reset=built == 0) as writer:
            for update in corpus.updates(built, n):
                writer.upsert(update)
        step_s = time.perf_counter() - began
        peak = common.peak_rss_mb()  # before measure() loads the model
        cumulative += step_s
        gc.collect()
        log(f"scale worker: {kind} {fmt_size(n)} built in {step_s:.0f} s ({cumulative:.0f} s)")
        row = measure(kind, spec, store, corpus, n, args)
        row.update(
            build_s=cumulative,
            step_s=step_s,
            grown_from=built,
            build_peak_mb=peak,
            worker_rss_before_mb=rss_before,
        )
        rows.append(row)
        built = n
        if i + 1 < len(sizes):
            rate = (n - row["grown_from"]) / step_s
            projected = cumulative + SLOWDOWN * (sizes[i + 1] - n) / rate
            if sizes[i + 1] > args.required and projected > args.budget:
                skipped += [{"n": m, "projected_s": cumulative + SLOWDOWN * (m - n) / rate,
                             "rate": rate, "from": n} for m in sizes[i + 1 :]]  # fmt: skip
                break
    store.close()
    return {"rows": rows, "skipped": skipped}


def build_memory(spec: str, size: str | None) -> None:
    """Give the database's new sessions maintenance_work_mem = `size` (None: its default again):
    pgvector builds an HNSW graph in memory and slows many-fold once it outgrows it (about 2 GB
    per index at 1M 384-d vectors; the writer asks for at least 1 GB). A production server is
    tuned the same way (README, PostgreSQL store). Needs the database's owner."""
    import psycopg

    url, _ = common.without_schema(spec)
    change = "SET maintenance_work_mem = %L" if size else "RESET maintenance_work_mem"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {change}', current_database()"
            + (f", '{size}'" if size else "")
            + "); END $$"
        )


def measure(
    kind: str, spec: str, store: Any, corpus: Any, n: int, args: argparse.Namespace
) -> dict[str, Any]:
    import numpy as np

    from qa import lexical
    from qa.asking.retrieval import retrieve
    from qa.embedding import get_embedder
    from qa.settings import Settings
    from qa.stores import EVERYTHING

    row: dict[str, Any] = {"store": kind, "n": n, "loadavg": common.loadavg()}
    rss = common.rss_mb()
    row["open_s"], counts = common.timed(store.counts)  # the embedded store reads its folder
    row["store_rss_mb"] = common.rss_mb() - rss
    assert counts["chunks"] == n, counts
    if kind == "embedded":
        row["disk_mb"] = common.folder_mb(Path(spec))
    else:
        row["disk_mb"] = common.database_mb(spec)
    stored = np.concatenate(
        [corpus.vectors(b, min(1000, n - b * 1000)) for b in range(-(-n // 1000))]
    )
    rng = np.random.default_rng(n)

    row["agreement"] = []
    for cosine in COSINES:
        sources = rng.choice(n, size=args.queries, replace=False)
        queries = perturbed(rng, stored[sources], cosine)
        exact = exact_top(stored, queries, 1)[:, 0]
        hit1 = hit10 = 0
        for q, e in zip(queries, exact.tolist(), strict=True):
            found = [c for c, _ in store.search_chunks(q, 10, EVERYTHING)]
            hit1 += bool(found) and found[0] == corpus.chunk_id(e)
            hit10 += corpus.chunk_id(e) in found
        row["agreement"].append(
            {
                "cosine": cosine,
                "source_is_exact": float(np.mean(exact == sources)),
                "hit1": hit1 / args.queries,
                "hit10": hit10 / args.queries,
            }
        )
    embedder = get_embedder().load()
    candidates = Settings().candidates
    questions = common.squad_questions()
    sources = rng.choice(n, size=args.queries, replace=False)
    queries = perturbed(rng, stored[sources], LATENCY_COSINE)
    terms = [lexical.terms(questions[i % len(questions)]) for i in range(args.queries)]

    def exact(q: Any) -> Any:
        scores = stored @ q
        return np.argpartition(-scores, candidates)[:candidates]

    steps = {
        "retrieve": lambda i: retrieve(store, queries[i], terms[i], candidates=candidates),
        "search": lambda i: store.search_chunks(queries[i], candidates, EVERYTHING),
        "keyword": lambda i: store.keyword_search(terms[i], candidates, EVERYTHING),
        "exact": lambda i: exact(queries[i]),
        "encode": lambda i: embedder.encode([questions[i % len(questions)]]),
    }
    for i in range(min(10, args.queries)):
        for step in steps.values():
            step(i)
    ms: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for i in range(args.queries):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            began = time.perf_counter()
            steps[name](i)
            ms[name].append((time.perf_counter() - began) * 1000)
    for name, values in ms.items():
        row[f"{name}_p50"] = pct(values, 50)
        row[f"{name}_p95"] = pct(values, 95)
    hit = row["agreement"][[c["cosine"] for c in row["agreement"]].index(LATENCY_COSINE)]["hit1"]
    log(f"scale worker: {kind} {fmt_size(n)}: retrieve p50 {row['retrieve_p50']:.1f} ms, "
        f"first-hit agreement at cosine {LATENCY_COSINE} {hit:.2f}")  # fmt: skip
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description="one scale worker (started by bench.py)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "SPEC", "SIZES"), required=True)
    parser.add_argument("--sample", required=True, help="real MiniLM vectors (.npy) to fit")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--required", type=int, default=0)
    parser.add_argument("--budget", type=float, default=float("inf"), help="seconds of build")
    args = parser.parse_args()
    kind, spec, sizes = args.worker
    result = worker(kind, spec, [int(s) for s in sizes.split(",")], args)
    print(json.dumps(result))
    return 0


# ----- report -------------------------------------------------------------------------------
def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return []  # informative: the brief sets no goal for scale


def largest(data: dict[str, Any], kind: str) -> dict[str, Any]:
    return max((r for r in data["rows"] if r["store"] == kind), key=lambda r: r["n"])


def findings(data: dict[str, Any]) -> list[str]:
    from scale_report import findings as found

    return found(data)


def render(data: dict[str, Any]) -> list[str]:
    from scale_report import render as rendered

    return rendered(data)


if __name__ == "__main__":
    sys.exit(main())
