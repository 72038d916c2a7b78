"""The scale section of RESULTS.md and its plot (bench/latency_vs_size.png), from raw numbers."""

from __future__ import annotations

from typing import Any

from common import PLOT, STORE_NAMES, STORES, fmt_mb, fmt_ms, fmt_size, table


def vector_index(data: dict[str, Any], row: dict[str, Any]) -> str:
    """What the store's vector search is at that size, as each store documents it."""
    if row["store"] == "embedded":
        exact = row["n"] <= data["approximate_above"]
        return "exact FAISS flat" if exact else "FAISS HNSW"
    return "pgvector HNSW"


def agreement(row: dict[str, Any], key: str = "hit1") -> str:
    return " / ".join(f"{a[key]:.3f}" for a in row["agreement"])


def at(row: dict[str, Any], cosine: float, key: str = "hit1") -> float:
    return float(next(a[key] for a in row["agreement"] if a["cosine"] == cosine))


def rows_of(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return sorted((r for r in data["rows"] if r["store"] == kind), key=lambda r: r["n"])


def build_text(row: dict[str, Any]) -> str:
    minutes = row["build_s"] / 60
    text = f"{minutes:.1f} min" if minutes >= 1 else f"{row['build_s']:.0f} s"
    if row["store"] == "postgres" and row["grown_from"]:
        text += f" (grown from {fmt_size(row['grown_from'])} in {row['step_s'] / 60:.1f} min)"
    elif row["store"] == "postgres" and row.get("fresh"):
        text += " (one fresh build)"
    return text


def render(data: dict[str, Any]) -> list[str]:
    cosines = " / ".join(str(a["cosine"]) for a in data["rows"][0]["agreement"])
    out = [
        "## Scale: latency, agreement with exact search, size and build time",
        "",
        "Synthetic knowledge bases written through `store.writer(info)` with `DocumentUpdate`s, "
        "as a build writes: 1,000 chunks per document, chunk texts the SQuAD paragraphs "
        "repeated (real text for BM25 and the keyword index), one sentence per chunk spanning "
        "it, vectors drawn from a Gaussian fitted to real MiniLM vectors of those paragraphs "
        "and their sentences (bench/corpus.py). As each paragraph recurs every 126 chunks, "
        "every term occurs in at least one chunk in 126: keyword search matches far more "
        "chunks than real text of the same size would, which weighs on PostgreSQL's "
        "SQL-computed BM25 more than on the embedded store's. The embedded store is built "
        "fresh in a new process at each size; PostgreSQL grows one schema from size to size, "
        "as a knowledge base grows, each size committed in one transaction (its build time is "
        "cumulative). Its writer loads rows with binary COPY; a step that adds more than half "
        "the chunks already stored (every step here) builds the HNSW and GIN indexes after its "
        "rows, over the whole table, inside its transaction. "
        f"Embedded search is exact up to {data['approximate_above']:,} vectors "
        "(`approximate_above`), HNSW above; PostgreSQL always searches its pgvector HNSW "
        "indexes.",
        "",
        f"Latency: {data['queries']} single queries per size, stored vectors perturbed to "
        f"cosine 0.7 with real SQuAD questions as terms, through the full `retrieve()` (hybrid, "
        "30 candidates); each query also runs `store.search_chunks` (and, in runs that have the "
        "column, `store.keyword_search`) alone, the exact numpy "
        "search (brute force over the same vectors, top 30) and one query embedding "
        "(`embedder.encode([question])`), the four in a rotating order. Agreement: the share "
        "of queries whose first hit from `store.search_chunks` is the exact nearest chunk, for "
        f"{data['queries']} queries at each cosine ({cosines}); 'exact in top 10' is the share "
        "whose exact nearest chunk is among the store's first 10.",
        "",
    ]
    keyword = all("keyword_p50" in r for r in data["rows"])  # not in runs before it was added
    rows = []
    for kind in STORES:
        for r in rows_of(data, kind):
            rows.append(
                [
                    STORE_NAMES[kind],
                    fmt_size(r["n"]),
                    vector_index(data, r),
                    fmt_ms(r["retrieve_p50"]),
                    fmt_ms(r["retrieve_p95"]),
                    fmt_ms(r["search_p50"], 2),
                    *([fmt_ms(r["keyword_p50"], 2)] if keyword else []),
                    fmt_ms(r["exact_p50"]),
                    fmt_ms(r["encode_p50"]),
                    f"{r['retrieve_p50'] / r['encode_p50']:.2f}x",
                    agreement(r),
                    f"{at(r, 0.7, 'hit10'):.3f}",
                ]
            )
    header = ["store", "chunks", "vector search", "retrieve p50", "retrieve p95"]
    header += ["search_chunks p50", *(["keyword_search p50"] if keyword else [])]
    header += ["exact numpy p50", "one query embedding p50"]
    header += ["retrieve / embedding p50", f"first-hit agreement ({cosines})"]
    out += table([*header, "exact in top 10 (0.7)"], rows)
    out += [
        "",
        "Build, disk and memory (disk: the embedded folder's files, or `pg_database_size` of "
        "the database, which held only this knowledge base; an empty database takes "
        f"{data['database_baseline_mb']:.0f} MB; store RSS: what opening the store added to "
        "the worker, which for PostgreSQL is the client side only; build peak RSS: the "
        "worker's high-water mark while writing, with the synthetic vectors it holds):",
        "",
    ]
    rows = []
    for kind in STORES:
        for r in rows_of(data, kind):
            rows.append(
                [
                    STORE_NAMES[kind],
                    fmt_size(r["n"]),
                    build_text(r),
                    f"{r['n'] / r['build_s']:,.0f}",
                    fmt_mb(r["disk_mb"]),
                    f"{r['open_s']:.1f} s" if kind == "embedded" else "-",
                    fmt_mb(r["store_rss_mb"]),
                    fmt_mb(r["build_peak_mb"]) if kind == "embedded" else "-",
                    r["loadavg"],
                ]
            )
    header = ["store", "chunks", "build time", "chunks/s", "disk", "open (read + verify)"]
    out += table([*header, "store RSS", "build peak RSS", "load average at measure"], rows)
    out += skipped_lines(data)
    out += [line for note in data.get("notes", []) for line in ("", note)]
    earlier = sorted({f"{STORE_NAMES[r['store']]} ({r['measured'][:10]})"
                      for r in data["rows"] if "measured" in r})  # fmt: skip
    if earlier:
        out += ["", f"Rows kept from an earlier run of this section: {', '.join(earlier)}; the "
                "runs table dates the rows measured last."]  # fmt: skip
    out += ["", "![latency against corpus size](latency_vs_size.png)"]
    return out


def skipped_lines(data: dict[str, Any]) -> list[str]:
    if not data["skipped"]:
        return []
    first = data["skipped"][0]
    sizes = " and ".join(fmt_size(s["n"]) for s in data["skipped"])
    projected = " and ".join(
        f"{fmt_size(s['n'])} about {duration(s['projected_s'])}" for s in data["skipped"]
    )
    return [
        "",
        f"**Not measured: PostgreSQL at {sizes} chunks.** The schema grew to "
        f"{fmt_size(first['from'])} chunks at {first['rate']:.0f} chunks/s in its last step; "
        f"at that rate, {SLOWDOWN_TEXT}, the build would have taken in all: {projected}, "
        f"beyond this run's budget of {data['pg_budget_s'] / 60:.0f} min for the PostgreSQL "
        "build. The largest PostgreSQL "
        f"size measured here is {fmt_size(first['from'])} chunks; each step's time is "
        "mostly the two HNSW index builds over the whole table.",
    ]


SLOWDOWN_TEXT = "taken 25% slower for the larger graph"


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def findings(data: dict[str, Any]) -> list[str]:
    lines = []
    for kind in STORES:
        rows = rows_of(data, kind)
        if not rows:
            continue
        big = rows[-1]
        ratio = big["retrieve_p50"] / big["encode_p50"]
        lines.append(
            f"- **Scale, {STORE_NAMES[kind]}**: at {fmt_size(big['n'])} chunks `retrieve()` "
            f"takes {big['retrieve_p50']:.1f} ms (p50; {ratio:.1f}x "
            f"one query embedding, exact numpy search {big['exact_p50']:.0f} ms); its vector "
            f"search finds the exact nearest chunk first for {at(big, 0.7):.1%} of queries at "
            f"cosine 0.7 ({vector_index(data, big)}); built in {build_text(big)}, "
            f"{fmt_mb(big['disk_mb'])} on disk."
        )
    if data["skipped"]:
        s = data["skipped"][-1]
        lines.append(
            f"- **PostgreSQL at {fmt_size(s['n'])} chunks was not built**: projected "
            f"{duration(s['projected_s'])} of build at the measured insert rate "
            f"({s['rate']:.0f} chunks/s); see the scale section."
        )
    return lines


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2), dpi=90)
    for kind, color in zip(STORES, ("tab:blue", "tab:orange"), strict=True):
        rows = rows_of(data, kind)
        xs = [r["n"] for r in rows]
        name = STORE_NAMES[kind]
        left.plot(
            xs,
            [r["retrieve_p50"] for r in rows],
            "o-",
            color=color,
            label=f"{name}: retrieve() p50",
        )
        left.plot(
            xs,
            [r["search_p50"] for r in rows],
            "s--",
            color=color,
            label=f"{name}: search_chunks p50",
        )
        left.plot(
            xs,
            [r["exact_p50"] for r in rows],
            "x:",
            color=color,
            label=f"exact numpy p50 ({name} run)",
        )
        right.plot(xs, [r["disk_mb"] for r in rows], "o-", color=color, label=f"{name}: disk")
    encode = [r["encode_p50"] for r in data["rows"]]
    left.axhline(sorted(encode)[len(encode) // 2], color="grey", linewidth=0.8,
                 linestyle="--", label="one query embedding p50")  # fmt: skip
    for axis, ylabel, title in (
        (left, "ms per query (one at a time)", "Search latency against corpus size"),
        (right, "MB", "Disk against corpus size"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("chunks in the knowledge base")
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.suptitle("Synthetic MiniLM-shaped 384-d vectors, both stores", fontsize=9)
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)
