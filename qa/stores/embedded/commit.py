"""Writing the embedded store: the previous state plus upserts minus deletes, saved atomically.

Every commit writes a whole new set of content-named files and then the manifest. Unchanged
documents keep their vectors (read back from the previous FAISS index, never re-embedded);
deleted ones simply are not written, so a removed document is gone from exact and HNSW indexes
alike once the manifest moves (the HNSW graph is rebuilt from the kept vectors).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa import lexical
from qa.stores.base import DocumentUpdate, StoreInfo
from qa.stores.embedded import files, vectors
from qa.stores.embedded.manifest import MANIFEST, Manifest, library_versions
from qa.stores.embedded.snapshot import Snapshot


class EmbeddedWriter:
    """Collects changes; `commit()` writes them all or, if it dies, nothing."""

    def __init__(self, base: Snapshot | None) -> None:
        self.base = base
        self.upserts: dict[str, DocumentUpdate] = {}
        self.deletes: set[str] = set()
        self.state: dict[str, Any] = {}

    def set_state(self, key: str, value: Any) -> None:
        self.state[key] = json.loads(json.dumps(value))  # JSON only, copied now

    def upsert(self, update: DocumentUpdate) -> None:
        self.deletes.discard(update.document.id)
        self.upserts[update.document.id] = update

    def delete(self, doc_id: str) -> None:
        self.upserts.pop(doc_id, None)
        self.deletes.add(doc_id)


@contextmanager
def writing(
    folder: Path,
    base: Snapshot | None,
    info: StoreInfo,
    sources: Sequence[str],
    approximate_above: int,
    progress: bool,
) -> Iterator[EmbeddedWriter]:
    with files.write_lock(folder):
        writer = EmbeddedWriter(base)
        yield writer
        changed = writer.upserts or writer.deletes or writer.state
        if changed or base is None or base.manifest.sources != sources:
            save(folder, writer, info, tuple(sources), approximate_above, progress)
        else:  # nothing to write, but a build killed after its commit may have left garbage
            files.collect_garbage(folder, {e["name"] for e in base.manifest.files.values()})


def save(
    folder: Path,
    writer: EmbeddedWriter,
    info: StoreInfo,
    sources: tuple[str, ...],
    approximate_above: int,
    progress: bool,
) -> Manifest:
    """Write the new state into `folder` (the caller holds the write lock); return its manifest."""
    import bm25s

    base = writer.base
    now = datetime.now(UTC).isoformat(timespec="seconds")
    doc_lines: list[str] = []
    hashes: dict[str, str] = {}
    chunk_rows: list[tuple[int, int, int, int]] = []
    sentence_rows: list[tuple[int, int, int, int]] = []
    entity_rows: list[tuple[int, int, int, str]] = []  # sentence row, start, end, label
    chunk_parts: list[np.ndarray] = []
    sentence_parts: list[np.ndarray] = []
    terms: list[list[str]] = []

    kept: list[int] = []
    if base is not None:
        kept = [
            n
            for n, d in enumerate(base.documents)
            if d.id not in writer.deletes and d.id not in writer.upserts
        ]
    kept_ids = {base.documents[n].id for n in kept} if base is not None else set()
    ids = sorted(kept_ids | set(writer.upserts))
    base_chunks = vectors.all_vectors(base.chunk_index) if base and kept else None
    base_sentences = vectors.all_vectors(base.sentence_index) if base and kept else None
    for d, doc_id in enumerate(ids):
        update = writer.upserts.get(doc_id)
        if update is not None:
            doc = update.document
            record = {
                "id": doc.id,
                "title": doc.title,
                "source": doc.source,
                "url": doc.url,
                "revision": doc.revision,
                "groups": list(doc.groups),
                "sections": [list(section) for section in doc.sections],
                "sha256": update.sha256,
                "indexed_at": now,
                "text": doc.text,
            }
            first_chunk = len(chunk_rows)
            position = {chunk.id: n for n, chunk in enumerate(update.chunks)}
            for n, chunk in enumerate(update.chunks):
                chunk_rows.append((d, n, chunk.start, chunk.end))
            ordinal: dict[str, int] = {}
            for s in update.sentences:
                o = ordinal.get(s.chunk_id, 0)
                ordinal[s.chunk_id] = o + 1
                entity_rows.extend((len(sentence_rows), a, b, label) for a, b, label in s.entities)
                sentence_rows.append((first_chunk + position[s.chunk_id], o, s.start, s.end))
            chunk_parts.append(update.chunk_vectors)
            sentence_parts.append(update.sentence_vectors)
            terms.extend(list(t) for t in update.terms)
        else:
            assert base is not None and base_chunks is not None and base_sentences is not None
            row = base.doc_row[doc_id]
            info_ = base.documents[row]
            record = {**asdict(info_), "groups": list(info_.groups), "text": base.texts[row]}
            c_rows = np.flatnonzero(base.chunk_doc == row)
            first_chunk = len(chunk_rows)
            for n, row_ in enumerate(c_rows.tolist()):
                old = base.chunks[row_]
                chunk_rows.append((d, n, old.start, old.end))
                terms.append(lexical.terms(old.text))
                a, b = int(base.first_sentence[row_]), int(base.first_sentence[row_ + 1])
                for o, s in enumerate(base.sentences[a:b]):
                    entity_rows.extend((len(sentence_rows), *e) for e in s.entities)
                    sentence_rows.append((first_chunk + n, o, s.start, s.end))
                sentence_parts.append(base_sentences[a:b])
            chunk_parts.append(base_chunks[c_rows])
        hashes[doc_id] = str(record["sha256"])
        doc_lines.append(json.dumps(record, ensure_ascii=False) + "\n")

    dim = info.dim
    chunk_vectors = np.concatenate(chunk_parts) if chunk_parts else np.zeros((0, dim), np.float32)
    sentence_vectors = (
        np.concatenate(sentence_parts) if sentence_parts else np.zeros((0, dim), np.float32)
    )
    written: dict[str, dict[str, Any]] = {}
    written["documents"] = files.write_file(
        folder, "documents", ".jsonl", "".join(doc_lines).encode()
    )
    written["chunks"] = files.write_file(
        folder, "chunks", ".npy", files.npy(np.array(chunk_rows, dtype=np.int64).reshape(-1, 4))
    )
    written["sentences"] = files.write_file(
        folder,
        "sentences",
        ".npy",
        files.npy(np.array(sentence_rows, dtype=np.int64).reshape(-1, 4)),
    )
    written["entities"] = files.write_file(
        folder, "entities", ".json", json.dumps(entity_rows, ensure_ascii=False).encode()
    )
    chunk_index = vectors.build_faiss(chunk_vectors, approximate_above, progress=progress)
    sentence_index = vectors.build_faiss(sentence_vectors, approximate_above, progress=progress)
    written["chunk_vectors"] = files.write_file(
        folder, "chunk-vectors", ".faiss", vectors.serialize(chunk_index)
    )
    written["sentence_vectors"] = files.write_file(
        folder, "sentence-vectors", ".faiss", vectors.serialize(sentence_index)
    )
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
    bm25 = bm25s.BM25()
    # bm25s drops documents with no terms from its vocabulary but keeps their rows.
    bm25.index([t or ["\x00"] for t in terms] or [["\x00"]], show_progress=False)
    written["bm25"] = files.write_bm25(folder, bm25)
    manifest = Manifest(
        info=info,
        files=written,
        documents=hashes,
        counts={
            "documents": len(ids),
            "chunks": len(chunk_rows),
            "sentences": len(sentence_rows),
        },
        sources=sources,
        faiss={"chunks": vectors.kind(chunk_index), "sentences": vectors.kind(sentence_index)},
        libraries=library_versions(),
        created=now,
        state={**(base.manifest.state if base is not None else {}), **writer.state},
    )
    files.commit_json(folder, MANIFEST, manifest.to_json())
    files.collect_garbage(folder, {entry["name"] for entry in written.values()})
    return manifest
