"""Writing the embedded store: the previous state plus upserts minus deletes, saved atomically.

Upserts are spilled to the writer's staging folder as they come (qa/stores/embedded/spill.py),
so a build of any size holds one batch at a time. The commit then writes, as content-named
files, either

- a delta: a small segment of the new and changed documents, the previous files kept as they
  are and the documents it replaces or deletes listed as dead (filtered out of every search:
  an HNSW graph cannot delete, and need not be rebuilt for a few pages); or
- a compaction: one new base segment of every live document (vectors copied, never
  re-embedded), once dead rows and deltas pass COMPACT_SHARE of all chunk rows, so a commit
  costs what it changes, plus rewrites paid for by at least that share of the store changing;

and then the manifest, renamed into place last: the commit point. A crash before it leaves the
previous manifest and every file it names untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import DocumentUpdate, StoreInfo
from qa.stores.embedded import files, segment
from qa.stores.embedded.manifest import MANIFEST, Manifest, library_versions
from qa.stores.embedded.snapshot import Snapshot, load
from qa.stores.embedded.spill import Spill

# A full rewrite once dead rows plus delta rows pass this share of the chunk rows.
COMPACT_SHARE = 0.2
# Deltas kept before they are merged into one (each is read, and searched, on its own).
MAX_DELTAS = 8


class EmbeddedWriter:
    """Collects changes (upserts spilled to disk); `commit()` writes them all or nothing."""

    def __init__(self, folder: Path, base: Snapshot | None, dim: int) -> None:
        self.base = base
        self.spill = Spill(folder, dim)
        self.deletes: set[str] = set()
        self.state: dict[str, Any] = {}

    def set_state(self, key: str, value: Any) -> None:
        self.state[key] = json.loads(json.dumps(value))  # JSON only, copied now

    def upsert(self, update: DocumentUpdate) -> None:
        self.deletes.discard(update.document.id)
        self.spill.add(update, datetime.now(UTC).isoformat(timespec="seconds"))

    def delete(self, doc_id: str) -> None:
        self.spill.drop(doc_id)
        self.deletes.add(doc_id)


@contextmanager
def writing(
    folder: Path,
    base_of: Callable[[], Snapshot | None],
    info: StoreInfo,
    sources: Sequence[str],
    approximate_above: int,
    progress: bool,
) -> Iterator[EmbeddedWriter]:
    """The write lock, then the committed state (read under it), then the writer."""
    with files.write_lock(folder):
        base = base_of()
        writer = EmbeddedWriter(folder, base, info.dim)
        try:
            yield writer
            changed = writer.spill.ids or writer.deletes or writer.state
            if changed or base is None or base.manifest.sources != tuple(sources):
                save(folder, writer, info, tuple(sources), approximate_above, progress)
            else:  # nothing to write, but a build killed after its commit may have left garbage
                files.collect_garbage(folder, base.manifest.names())
        finally:
            writer.spill.close()


def save(
    folder: Path,
    writer: EmbeddedWriter,
    info: StoreInfo,
    sources: tuple[str, ...],
    approximate_above: int,
    progress: bool,
) -> Manifest:
    """Write the new state into `folder` (the caller holds the write lock); return its manifest."""
    base, spill = writer.base, writer.spill
    hashes: dict[str, str] = dict(base.manifest.documents) if base is not None else {}
    gone = {d for d in (writer.deletes | set(spill.ids)) if base is not None and d in base.doc_row}
    for doc_id in writer.deletes:
        hashes.pop(doc_id, None)
    hashes.update(spill.hashes())

    def write(entries: Sequence[tuple[str, Snapshot | None]]) -> segment.Written:
        ids = [d for d, _ in entries]
        chunks = sum(spill.chunks(d) if s is None else len(s.chunk_rows_of(s.doc_row[d]))
                     for d, s in entries)  # fmt: skip
        sentences = sum(spill.sentences(d) if s is None else _sentences(s, d) for d, s in entries)
        return segment.write(
            folder,
            (spill.entry(d) if s is None else _copied(s, s.doc_row[d]) for d, s in entries),
            dim=info.dim,
            chunks=chunks,
            sentences=sentences,
            approximate_above=approximate_above,
            progress=progress and len(ids) > 0,
        )

    new = sorted(spill.ids)
    deltas: tuple[dict[str, dict[str, Any]], ...] = ()
    dead: set[int] = set()
    compact = base is not None and _compact(base, gone, spill)
    if (
        base is not None
        and not base.complete
        and (compact or len(base.manifest.deltas) >= MAX_DELTAS)
    ):
        base = load(folder)  # documents are copied: their chunks, vectors and terms are read
    if base is None or compact:
        kept = sorted(set(base.doc_row) - gone) if base is not None else []
        entries = sorted([*((d, base) for d in kept), *((d, None) for d in new)])
        written = write(entries)
        base_files, kinds = written.files, written.kinds
    else:
        base_files, kinds = base.manifest.files, base.manifest.faiss
        dead = set(base.manifest.dead) | {base.doc_row[d] for d in gone}
        if len(base.manifest.deltas) >= MAX_DELTAS:  # merge the deltas (and the new documents)
            in_deltas = [d for d, row in base.doc_row.items() if row >= base.base_documents]
            kept = sorted(set(in_deltas) - gone)
            entries = sorted([*((d, base) for d in kept), *((d, None) for d in new)])
            deltas = (write(entries).files,) if entries else ()
            dead = {row for row in dead if row < base.base_documents}
        else:
            deltas = base.manifest.deltas
            if new:
                deltas = (*deltas, write([(d, None) for d in new]).files)
    alive_chunks = (
        0
        if base is None
        else int(base.alive_chunk.sum())
        - sum(len(base.chunk_rows_of(base.doc_row[d])) for d in gone)
    )
    alive_sentences = (
        0
        if base is None
        else int(base.alive_chunk[base.sentence_chunk].sum())
        - sum(_sentences(base, d) for d in gone)
    )
    manifest = Manifest(
        info=info,
        files=base_files,
        documents=dict(sorted(hashes.items())),
        counts={
            "documents": len(hashes),
            "chunks": alive_chunks + sum(spill.chunks(d) for d in new),
            "sentences": alive_sentences + sum(spill.sentences(d) for d in new),
        },
        sources=sources,
        faiss=kinds,
        libraries=library_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        state={**(base.manifest.state if base is not None else {}), **writer.state},
        deltas=deltas,
        dead=tuple(sorted(dead)),
    )
    files.commit_json(folder, MANIFEST, manifest.to_json())
    files.collect_garbage(folder, manifest.names())
    return manifest


def _compact(base: Snapshot, gone: set[str], spill: Spill) -> bool:
    """Whether this commit rewrites everything: dead and delta rows pass COMPACT_SHARE."""
    total = len(base.chunk_doc) + spill.total_chunks()
    if not total:
        return True
    newly_dead = sum(len(base.chunk_rows_of(base.doc_row[d])) for d in gone)
    dead = int((~base.alive_chunk).sum()) + newly_dead
    in_deltas = int(np.count_nonzero(base.chunk_doc >= base.base_documents))
    return dead + in_deltas + spill.total_chunks() > COMPACT_SHARE * total


def _sentences(snap: Snapshot, doc_id: str) -> int:
    rows = snap.chunk_rows_of(snap.doc_row[doc_id])
    if not len(rows):
        return 0
    return int(snap.first_sentence[rows.stop] - snap.first_sentence[rows.start])


def _copied(snap: Snapshot, row: int) -> segment.Entry:
    """A live document of a segment, to write into a new one (nothing is re-embedded)."""
    info = snap.documents[row]
    record = {**asdict(info), "groups": list(info.groups), "text": snap.texts[row]}
    rows = snap.chunk_rows_of(row)
    chunks = [(snap.chunks[r].start, snap.chunks[r].end) for r in rows]
    sentences = []
    for n, r in enumerate(rows):
        a, b = int(snap.first_sentence[r]), int(snap.first_sentence[r + 1])
        sentences += [(n, s.start, s.end, s.entities) for s in snap.sentences[a:b]]
    first = int(snap.first_sentence[rows.start]) if len(rows) else 0
    chunk_ids = np.arange(rows.start, rows.stop, dtype=np.int64)
    sentence_ids = np.arange(first, first + len(sentences), dtype=np.int64)
    return segment.Entry(
        record=record,
        chunks=chunks,
        sentences=sentences,
        terms=[snap.lexicon.chunk_terms(r) for r in rows],
        chunk_vectors=snap.chunk_vectors.rows(chunk_ids),
        sentence_vectors=snap.sentence_vectors.rows(sentence_ids),
    )
