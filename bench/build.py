"""Index build throughput on both stores, against raw `model.encode` throughput.

`index_documents` builds the three SQuAD articles (`tests/data/squad2-dev-3-articles.json`,
read with `qa.eval.evaluate.load_squad`) into a fresh embedded folder and a fresh PostgreSQL
schema; between builds, the bare model encodes the same chunk texts
(`model.encode(chunk_texts, batch_size=32)`, its default). The three alternate in a rotating
order and the medians are compared: chunks/s built over chunks/s encoded. Then each stage runs
alone, through the same public functions the build uses, to show where the time goes.
"""

from __future__ import annotations

import os
from typing import Any

from common import ARTICLE_DIR, STORE_NAMES, STORES, Bench, alternating, log, median, table, timed
from latency import squad_documents

NAME = "build"
GOALS = {"embedded": 0.8, "postgres": 0.7}  # build chunks/s over raw encode chunks/s, at least


def chunk_all(
    documents: list[Any], embedder: Any, settings: Any
) -> tuple[list[Any], list[str], int]:
    """Every document's chunks and sentence texts, cut as the build cuts them; and the
    tokenizer calls made."""
    from qa.indexing.build import chunk_budget
    from qa.indexing.chunking import chunk_document

    calls = [0]

    def count(texts: Any) -> list[int]:
        calls[0] += 1
        return list(embedder.count_tokens(texts))

    budget = chunk_budget(embedder, settings)
    chunks, sentences = [], []
    for document in documents:
        found, spans = chunk_document(document, count, budget, settings.chunk_overlap_sentences)
        chunks.extend(found)
        sentences += [document.text[a:b] for chunk_spans in spans for a, b in chunk_spans]
    return chunks, sentences, calls[0]


def run(bench: Bench) -> dict[str, Any]:
    from qa.indexing.build import index_documents
    from qa.settings import Settings
    from qa.stores import open_store

    embedder, settings = bench.embedder, Settings()
    documents = squad_documents()
    chunks, _, _ = chunk_all(documents, embedder, settings)
    texts = [c.text for c in chunks]
    model = embedder.model
    reports: dict[str, Any] = {}

    def build(kind: str, n: int, given: list[Any] = documents) -> None:
        store = open_store(bench.spec(kind, f"build{n}"))
        reports[kind] = index_documents(
            store, given, embedder, settings, rebuild=True, progress=False
        )
        store.close()

    def raw(_: int) -> None:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # a build may have left it at one
        model.encode(texts, batch_size=32, normalize_embeddings=True)

    from qa.indexing.documents import load_documents

    article, _ = load_documents([ARTICLE_DIR])
    for kind in STORES:  # warm-up: tokenizer, pysbd, FAISS, bm25s, the SQL connection
        build(kind, 99, article)
    rounds = 2 if bench.quick else 5
    cases = {"raw": raw, **{kind: (lambda n, kind=kind: build(kind, n)) for kind in STORES}}
    seconds = alternating(cases, rounds)
    for n in [*range(rounds), 99]:
        for kind in STORES:
            bench.discard(bench.spec(kind, f"build{n}"))
    raw_s = median(seconds["raw"])
    result: dict[str, Any] = {
        "documents": len(documents),
        "chunks": len(chunks),
        "sentences": reports["embedded"].sentences,
        "rounds": rounds,
        "raw_s": raw_s,
        "raw_chunks_per_s": len(chunks) / raw_s,
        "stores": {},
    }
    for kind in STORES:
        build_s = median(seconds[kind])
        result["stores"][kind] = {
            "build_s": build_s,
            "chunks": reports[kind].chunks,
            "chunks_per_s": reports[kind].chunks / build_s,
            "ratio": (reports[kind].chunks / build_s) / (len(chunks) / raw_s),
        }
        log(f"build: {kind}: {result['stores'][kind]['ratio']:.2f} of raw encode throughput")
    result["stages"] = stages(bench, documents, embedder, settings)
    return result


def stages(bench: Bench, documents: list[Any], embedder: Any, settings: Any) -> dict[str, Any]:
    """The build's steps one at a time: chunking, the model pass over distinct sentences, the
    rest of `embed_batch` (chunk means, lexical terms), and each store's write and commit."""
    from qa.indexing.build import document_hash, embed_batch, encode, store_info
    from qa.indexing.helper import sharing
    from qa.stores import open_store

    batch = [(d, document_hash(d)) for d in documents]
    chunk_s, (chunks, sentences, calls) = timed(lambda: chunk_all(documents, embedder, settings))
    distinct = list(dict.fromkeys(sentences))
    encode_s, _ = timed(lambda: encode(embedder, distinct, settings.batch_size))
    tagging_s = tag_time(distinct)
    shared_s = shared_time(embedder, distinct, settings.batch_size)
    with sharing():  # as in the build
        batch_s, updates = timed(lambda: embed_batch(batch, embedder, settings, None))
    info = store_info(embedder, settings)
    write_s = {}
    for kind in STORES:
        spec = bench.spec(kind, "stages")
        store = open_store(spec)

        def write(store: Any = store) -> None:
            with store.writer(info, reset=True) as writer:
                for update in updates:
                    writer.upsert(update)

        write_s[kind], _ = timed(write)
        store.close()
        bench.discard(spec)
    return {
        "chunking_s": chunk_s,
        "encode_s": encode_s,
        "tagging_s": tagging_s,
        "shared_s": shared_s,
        "rest_s": max(0.0, batch_s - chunk_s - (shared_s or encode_s + (tagging_s or 0.0))),
        "write_s": write_s,
        "tokenizer_calls": calls,
        "sentences": len(sentences),
        "distinct_sentences": len(distinct),
        "sentence_tokens": sum(embedder.count_tokens(distinct)),
        "chunk_tokens": sum(embedder.count_tokens([c.text for c in chunks])),
    }


def tag_time(sentences: list[str]) -> float | None:
    """Seconds of the build's index-time typing of sentences alone, on one core (spaCy entities
    and noun phrases, `qa.indexing.tagging.tag`), after one warm-up call; None where qa has no
    such step."""
    try:
        from qa.indexing.tagging import tag
    except ImportError:
        return None
    tag(sentences[:8])  # loads the pipeline once, as the warmed-up build has
    return timed(lambda: tag(sentences))[0]


def shared_time(embedder: Any, sentences: list[str], batch_size: int) -> float | None:
    """Seconds of the model pass and the typing as the build runs them: inside
    `helper.sharing()`, half of each in a forked helper process (`embed_and_type`), the fork
    included; None where qa has no such step."""
    try:
        from qa.indexing.build import embed_and_type
        from qa.indexing.helper import sharing
    except ImportError:
        return None
    with sharing():
        return timed(lambda: embed_and_type(embedder, sentences, batch_size))[0]


# ----- report -------------------------------------------------------------------------------
def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [
        (
            f"{STORE_NAMES[kind]}: index build chunks/s / raw model.encode chunks/s (SQuAD)",
            f"{data['stores'][kind]['ratio']:.2f}",
            f"at least {GOALS[kind]}",
            data["stores"][kind]["ratio"] >= GOALS[kind],
        )
        for kind in STORES
    ]


def findings(data: dict[str, Any]) -> list[str]:
    st = data["stages"]
    emb, pg = data["stores"]["embedded"], data["stores"]["postgres"]
    return [
        f"- **Index build** runs at {emb['ratio']:.2f} of raw chunk-encode speed into the "
        f"embedded store and {pg['ratio']:.2f} into PostgreSQL: the model pass over distinct "
        f"sentences takes {st['encode_s']:.2f} s of either on its own"
        + (
            f" ({st['shared_s']:.2f} s with the typing, the two shared with the helper process)"
            if st.get("shared_s") is not None
            else ""
        )
        + "; writing and committing "
        f"{data['chunks']} chunks and {data['sentences']} sentences takes "
        f"{st['write_s']['embedded']:.2f} s in the folder and {st['write_s']['postgres']:.2f} s "
        "in PostgreSQL (binary COPY into a fresh schema, its HNSW and GIN indexes built after "
        "the rows)."
    ]


def render(data: dict[str, Any]) -> list[str]:
    st = data["stages"]
    out = [
        "## Index build throughput, both stores",
        "",
        f"`index_documents` on the {data['documents']} SQuAD articles ({data['chunks']} chunks, "
        f"{data['sentences']} sentences), model loaded, into a fresh folder or a fresh "
        "PostgreSQL schema, against `model.encode(chunk_texts, batch_size=32)` on the same chunk "
        f"texts; the three alternate in a rotating order, {data['rounds']} times each, and the "
        "medians are compared. Build times include the commit and the store's reopening.",
        "",
    ]
    rows = [["raw model.encode of the chunk texts", f"{data['raw_s']:.2f}"]]
    rows[0] += [f"{data['raw_chunks_per_s']:.1f}", ""]
    for kind in STORES:
        s = data["stores"][kind]
        rows.append(
            [
                f"`index_documents` into the {STORE_NAMES[kind]} store",
                f"{s['build_s']:.2f}",
                f"{s['chunks_per_s']:.1f}",
                f"**{s['ratio']:.2f}**",
            ]
        )
    out += table(["", "seconds", "chunks/s", "ratio to raw"], rows)
    rows = [
        ["chunking (pysbd sentences, tokenizer counts, packing)", st["chunking_s"]],
        ["embed the distinct sentences (the model)", st["encode_s"]],
    ]
    if st.get("shared_s") is not None:
        alone = (
            f"alone they take {st['encode_s']:.2f} s (the model on every core) and "
            f"{st['tagging_s']:.2f} s (spaCy on one)"
        )
        step = f"embed and type the distinct sentences, half in the helper process ({alone})"
        rows = [rows[0], [step, st["shared_s"]]]
        rows.append(["rest of `embed_batch` (chunk means, lexical terms)", st["rest_s"]])
    elif st.get("tagging_s") is not None:
        step = "type the distinct sentences (spaCy entities, noun phrases; half in a helper)"
        rows.append([step, st["tagging_s"]])
        rows.append(["rest of `embed_batch` (chunk means, lexical terms)", st["rest_s"]])
    else:  # runs before the typing step was timed on its own
        rows.append(["rest of `embed_batch` (typing if any, chunk means, terms)", st["rest_s"]])
    shared = sum(s for _, s in rows)
    out += [
        "",
        "Where the build's time goes (each step run alone on the same input through the public "
        "functions the build calls: `chunk_document`, `embed_and_type`, `embed_batch`, then "
        "`store.writer(info)` with every `DocumentUpdate`):",
        "",
    ]
    lines = []
    for kind in STORES:
        total = shared + st["write_s"][kind]
        for name, s in [*rows, [f"write and commit ({STORE_NAMES[kind]})", st["write_s"][kind]]]:
            lines.append([STORE_NAMES[kind], name, f"{s:.2f}", f"{100 * s / total:.0f}%"])
    out += table(["store", "step", "seconds", "share"], lines)
    ratio = st["sentence_tokens"] / max(1, st["chunk_tokens"])
    out += [
        "",
        f"The build embeds each of its {st['distinct_sentences']} distinct sentence texts once "
        f"({st['sentence_tokens']:,} tokens, {ratio:.2f}x the tokens of the chunk texts raw "
        "encode reads) and makes each chunk's vector the length-weighted mean of its sentences' "
        f"vectors; chunking calls the tokenizer {st['tokenizer_calls']:,} times.",
    ]
    return out
