"""Incremental update on both stores: change one document of 1,000, run `index_documents` again.

The knowledge base holds 1,000 synthetic documents (sentences drawn from the SQuAD paragraphs,
each document with a sentence of its own), embedded with the real MiniLM. Then one document's
text changes and `index_documents` runs over all 1,000 again: `BuildReport.embedded_documents`
must say exactly one document was re-embedded. Its time is set against two baselines taken in
the same run: embedding that one document alone (`embed_batch`), and the full first build.
"""

from __future__ import annotations

import random
import re
from typing import Any

from common import STORE_NAMES, STORES, Bench, log, median, squad_paragraphs, table, timed

NAME = "incremental"
DOCUMENTS = 1000
POOL = 150


def synthetic_documents(n: int, seed: int = 0) -> list[Any]:
    """n short documents: a line only this one has, then three SQuAD sentences from a pool of
    POOL (so a batch of documents shares sentences, which the build embeds once)."""
    from qa.types import Document

    sentences = [
        s.strip()
        for p in squad_paragraphs()
        for s in re.split(r"(?<=[.!?])\s+", p)
        if 40 <= len(s.strip()) <= 200
    ]
    rng = random.Random(seed)
    pool = rng.sample(sentences, POOL)
    documents = []
    for i in range(n):
        own = f"Record {i} was filed by clerk {rng.choice(CLERKS)} in {1900 + rng.randrange(120)}."
        documents.append(
            Document(
                id=f"record-{i:04d}.txt",
                title=f"Record {i}",
                source=f"record-{i:04d}.txt",
                text=" ".join([own, *rng.sample(pool, 3)]) + "\n",
            )
        )
    return documents


CLERKS = ("Ada", "Brook", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun")


def changed(documents: list[Any], index: int, round_: int) -> list[Any]:
    """The same documents with one sentence appended to document `index`."""
    from dataclasses import replace

    out = list(documents)
    doc = out[index]
    out[index] = replace(doc, text=doc.text + f"It was amended in round {round_}.\n")
    return out


def run(bench: Bench) -> dict[str, Any]:
    from qa.indexing.build import document_hash, embed_batch, index_documents
    from qa.settings import Settings
    from qa.stores import open_store

    embedder, settings = bench.embedder, Settings()
    n = 200 if bench.quick else DOCUMENTS
    documents = synthetic_documents(n)
    stores = {kind: open_store(bench.spec(kind, "incremental")) for kind in STORES}
    first = {}
    for kind, store in stores.items():
        log(f"incremental: first build of {n} documents into the {kind} store")
        report = index_documents(store, documents, embedder, settings, rebuild=True, progress=False)
        first[kind] = {"seconds": report.seconds, "chunks": report.chunks}
    rounds = 3
    runs: dict[str, list[Any]] = {kind: [] for kind in STORES}
    alone: list[float] = []
    current = documents
    for r in range(rounds):
        target = (r + 1) * n // (rounds + 1)
        current = changed(current, target, r)
        doc = current[target]
        # One change, every store synced to it, and the one document embedded alone, in a
        # rotating order.
        steps = [*STORES, "alone"]
        for step in steps[r % 3 :] + steps[: r % 3]:
            if step == "alone":
                batch = [(doc, document_hash(doc))]
                alone.append(timed(lambda b=batch: embed_batch(b, embedder, settings, None))[0])
                continue
            report = index_documents(stores[step], current, embedder, settings, progress=False)
            runs[step].append(
                {
                    "embedded": report.embedded_documents,
                    "reused": report.reused_documents,
                    "removed": report.removed_documents,
                    "seconds": report.seconds,
                }
            )
    result: dict[str, Any] = {"documents": n, "rounds": rounds, "alone_s": median(alone)}
    result["stores"] = {}
    for kind, store in stores.items():
        seconds = median([x["seconds"] for x in runs[kind]])
        result["stores"][kind] = {
            "first_build_s": first[kind]["seconds"],
            "chunks": first[kind]["chunks"],
            "runs": runs[kind],
            "seconds": seconds,
            "re_embedded": sorted({x["embedded"] for x in runs[kind]}),
            "reused": sorted({x["reused"] for x in runs[kind]}),
            "exactly_one": all(x["embedded"] == 1 for x in runs[kind]),
        }
        store.close()
        bench.discard(bench.spec(kind, "incremental"))
        log(f"incremental: {kind}: re-embedded {result['stores'][kind]['re_embedded']} in "
            f"{seconds:.2f} s (median)")  # fmt: skip
    return result


# ----- report -------------------------------------------------------------------------------
def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = []
    for kind in STORES:
        s = data["stores"][kind]
        value = "/".join(str(x) for x in s["re_embedded"])
        rows.append(
            (
                f"{STORE_NAMES[kind]}: documents re-embedded after 1 of {data['documents']:,} "
                "changed",
                value,
                "exactly 1",
                s["exactly_one"],
            )
        )
    return rows


def findings(data: dict[str, Any]) -> list[str]:
    emb, pg = data["stores"]["embedded"], data["stores"]["postgres"]
    return [
        f"- **Incremental update**: after one of {data['documents']:,} documents changed, "
        f"`index_documents` re-embedded {'/'.join(map(str, emb['re_embedded']))} document in "
        f"the embedded store ({emb['seconds']:.2f} s, which rewrites the folder's files) and "
        f"{'/'.join(map(str, pg['re_embedded']))} in PostgreSQL ({pg['seconds']:.2f} s, one "
        f"transaction); embedding that document alone takes {data['alone_s'] * 1000:.0f} ms."
    ]


def render(data: dict[str, Any]) -> list[str]:
    out = [
        "## Incremental update, both stores",
        "",
        f"A knowledge base of {data['documents']:,} synthetic documents (a line of its own and "
        f"three SQuAD sentences from a pool of {POOL}), built with the real MiniLM. Then, "
        f"{data['rounds']} times, one document gains a sentence and `index_documents` runs over "
        "all of them again; each time the same document is also embedded alone "
        "(`embed_batch`), in a rotating order with the two stores. Times are medians; the "
        "ratios divide them by that one document's embedding and by the first full build.",
        "",
    ]
    rows = []
    for kind in STORES:
        s = data["stores"][kind]
        rows.append(
            [
                STORE_NAMES[kind],
                f"{s['first_build_s']:.1f} s ({s['chunks']:,} chunks)",
                "/".join(map(str, s["re_embedded"])),
                "/".join(map(str, s["reused"])),
                f"{s['seconds']:.2f} s",
                f"{data['alone_s'] * 1000:.0f} ms",
                f"{s['seconds'] / data['alone_s']:.1f}x",
                f"{s['seconds'] / s['first_build_s']:.3f}",
            ]
        )
    header = ["store", "first build", "re-embedded", "reused", "update", "one document alone"]
    out += table([*header, "update / one document", "update / first build"], rows)
    return out
