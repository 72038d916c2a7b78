"""One segment of the embedded store: the files of a set of documents, written as they stream.

A segment holds whole documents: their JSON lines (metadata and text), chunk and sentence
offsets, typed spans, chunk and sentence vectors (FAISS) and chunk term counts (BM25). The
base segment is written by a full build or a compaction; each later commit that changes a few
documents adds a small one (a delta). Rows inside a segment are local: document `d`, chunk
`c`, sentence `s` of that segment; the snapshot offsets them when it stacks segments.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.embedded import files, vectors
from qa.stores.embedded.lexicon import TermCounts


@dataclass(frozen=True)
class Entry:
    """One document as a segment stores it (from a writer's spill, or copied from a segment)."""

    record: dict[str, Any]  # its JSON line: metadata, sha256, indexed_at and text
    chunks: Sequence[tuple[int, int]]  # (start, end) of each chunk, by ordinal
    sentences: Sequence[tuple[int, int, int, Sequence[Sequence[Any]]]]  # chunk, start, end, spans
    terms: Sequence[Sequence[tuple[str, int]]]  # (term, count) pairs of each chunk
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class Written:
    files: dict[str, dict[str, Any]]  # role -> entry, as the manifest names them
    kinds: dict[str, str]  # "chunks" / "sentences" -> FAISS index type
    documents: int
    chunks: int
    sentences: int


def write(
    folder: Path,
    entries: Iterable[Entry],
    *,
    dim: int,
    chunks: int,
    sentences: int,
    approximate_above: int,
    progress: bool = False,
) -> Written:
    """Write the segment of `entries` (about `chunks` and `sentences` rows, which choose exact
    or HNSW search); nothing but the vector indexes and the row offsets is held whole."""
    documents = files.Streamed(folder, "documents", ".jsonl")
    entities = files.Streamed(folder, "entities", ".json")
    try:
        chunk_rows, sentence_rows = array("q"), array("q")
        chunk_index = vectors.Filler(chunks, dim, approximate_above, progress, "chunks")
        sentence_index = vectors.Filler(sentences, dim, approximate_above, progress, "sentences")
        counts = TermCounts()
        n_docs = n_chunks = n_sentences = 0
        entities.write(b"[")
        spans = 0
        for entry in entries:
            documents.write(json.dumps(entry.record, ensure_ascii=False).encode() + b"\n")
            for ordinal, (start, end) in enumerate(entry.chunks):
                chunk_rows.extend((n_docs, ordinal, start, end))
            ordinal_in: dict[int, int] = {}
            for chunk, start, end, typed in entry.sentences:
                o = ordinal_in.get(chunk, 0)
                ordinal_in[chunk] = o + 1
                sentence_rows.extend((n_chunks + chunk, o, start, end))
                for a, b, label in typed:
                    line = json.dumps([n_sentences, a, b, label], ensure_ascii=False)
                    entities.write((b"," if spans else b"") + line.encode())
                    spans += 1
                n_sentences += 1
            for pairs in entry.terms:
                counts.add(pairs)
            chunk_index.add(entry.chunk_vectors)
            sentence_index.add(entry.sentence_vectors)
            n_docs += 1
            n_chunks += len(entry.chunks)
        entities.write(b"]")
        written = {"documents": documents.close(), "entities": entities.close()}
    except BaseException:
        documents.discard()
        entities.discard()
        raise
    for role, rows in (("chunks", chunk_rows), ("sentences", sentence_rows)):
        table = np.frombuffer(rows, dtype=np.int64).reshape(-1, 4)
        written[role] = files.write_file(folder, role, ".npy", files.npy(table))
    kinds = {}
    for role, filler in (("chunk_vectors", chunk_index), ("sentence_vectors", sentence_index)):
        index = filler.close()
        kinds[role.split("_")[0] + "s"] = vectors.kind(index)
        tmp = files.tmp_name(folder)
        vectors.write_faiss(index, str(tmp))
        filler.index = index = None
        written[role] = files.write_path(folder, role.replace("_", "-"), ".faiss", tmp)
    written["bm25"] = files.write_parts(folder, counts.save)
    return Written(written, kinds, n_docs, n_chunks, n_sentences)
