"""One committed state of an embedded store, read from its folder and verified, in memory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import StoreError
from qa.stores.embedded import files, vectors
from qa.stores.embedded.lexicon import Lexicon, Segment
from qa.stores.embedded.manifest import Manifest, read_manifest, rebuild_hint
from qa.types import Chunk, DocumentInfo, Sentence, chunk_id, sentence_id

# Tries of a load while builds keep committing new manifests under it.
LOAD_ATTEMPTS = 5


@dataclass
class Snapshot:
    """Every segment stacked into one row space. Rows of dead documents (replaced or deleted
    since their segment was written) stay in the arrays but are alive in no search."""

    manifest: Manifest
    documents: list[DocumentInfo]  # every row, dead ones too: see `alive_doc`
    texts: list[str]  # each document's text, by document row
    chunks: list[Chunk]
    chunk_doc: np.ndarray  # document row of each chunk (non-decreasing)
    sentences: list[Sentence]
    sentence_chunk: np.ndarray  # chunk row of each sentence
    chunk_vectors: vectors.Stack  # ids = chunk rows
    sentence_vectors: vectors.Stack  # ids = sentence rows
    lexicon: Lexicon  # BM25 over chunk rows
    base_documents: int = 0  # document rows of the base segment (the rest are deltas')
    # False for a catalog: documents and row tables only, no chunk texts, vectors or BM25 (what
    # a writer needs to add a delta, and a sync to list documents); empty lists stand in.
    complete: bool = True

    def __post_init__(self) -> None:
        alive = np.ones(len(self.documents), dtype=bool)
        alive[list(self.manifest.dead)] = False
        self.alive_doc = alive
        self.alive_chunk = alive[self.chunk_doc] if len(self.chunk_doc) else np.zeros(0, bool)
        self.any_dead = not bool(alive.all())
        self.chunk_row = {c.id: n for n, c in enumerate(self.chunks) if self.alive_chunk[n]}
        self.doc_row = {d.id: n for n, d in enumerate(self.documents) if alive[n]}
        # Sentences of chunk i are sentences[first[i]:first[i+1]] (they are stored in order).
        counts = np.bincount(self.sentence_chunk, minlength=len(self.chunk_doc))
        self.first_sentence = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def chunk_index(self) -> Any:
        """The base segment's FAISS index (with a flat base, every segment's vectors)."""
        return self.chunk_vectors.base

    @property
    def sentence_index(self) -> Any:
        return self.sentence_vectors.base

    def alive_documents(self) -> list[DocumentInfo]:
        return [self.documents[n] for n in sorted(self.doc_row.values())]

    def chunk_rows_of(self, doc_row: int) -> range:
        """The chunk rows of one document (a document's chunks are contiguous)."""
        a = int(np.searchsorted(self.chunk_doc, doc_row, side="left"))
        b = int(np.searchsorted(self.chunk_doc, doc_row, side="right"))
        return range(a, b)


def load(folder: Path, *, full: bool = True) -> Snapshot:
    """Read and verify an index folder: every file read must exist and match its recorded
    hash (all of them, unless `full` is false: then a catalog, see `Snapshot.complete`)."""
    for _ in range(LOAD_ATTEMPTS - 1):
        manifest = read_manifest(folder)
        try:
            return _load(folder, manifest, full)
        except StoreError:
            # A build that commits while we read deletes the files of the manifest we read
            # (they are its garbage): read the new manifest and try again. The same manifest
            # twice means the damage is real.
            if _files_unchanged(folder, manifest):
                raise
    return _load(folder, read_manifest(folder), full)


def _files_unchanged(folder: Path, manifest: Manifest) -> bool:
    try:
        return read_manifest(folder).names() == manifest.names()
    except StoreError:
        return True


CATALOG = ("documents", "chunks", "sentences")


def _load(folder: Path, manifest: Manifest, full: bool) -> Snapshot:
    hint = rebuild_hint(folder, manifest.sources)
    for segment in manifest.segments:
        for role, entry in segment.items():
            if full or role in CATALOG:
                files.verify(folder, entry, hint)
    try:
        parts = [_read_segment(folder, segment, full) for segment in manifest.segments]
        if not full:
            return _catalog(manifest, parts)
        documents: list[DocumentInfo] = []
        texts: list[str] = []
        chunks: list[Chunk] = []
        sentences: list[Sentence] = []
        chunk_doc, sentence_chunk, lexicons = [], [], []
        for part in parts:
            d0, c0 = len(documents), len(chunks)
            documents += part.documents
            texts += part.texts
            for d, ordinal, start, end in part.chunk_rows.tolist():
                doc = documents[d0 + d]
                chunks.append(
                    Chunk(chunk_id(doc.id, ordinal), doc.id, texts[d0 + d][start:end], start, end)
                )
            for n, (c, ordinal, start, end) in enumerate(part.sentence_rows.tolist()):
                sentences.append(
                    Sentence(
                        sentence_id(chunks[c0 + c].id, ordinal),
                        chunks[c0 + c].id,
                        start,
                        end,
                        tuple(part.entities.get(n, ())),
                    )
                )
            chunk_doc.append(part.chunk_rows[:, 0] + d0)
            sentence_chunk.append(part.sentence_rows[:, 0] + c0)
            lexicons.append(Segment.load(part.bm25, c0))
        base = parts[0]
        chunk_vectors = vectors.Stack(base.chunk_index, [p.chunk_index for p in parts[1:]])
        sentence_vectors = vectors.Stack(base.sentence_index, [p.sentence_index for p in parts[1:]])
        if max(manifest.dead, default=-1) >= len(documents):
            raise IndexError("a dead document row past the last document")
    except (OSError, ValueError, KeyError, IndexError, RuntimeError, TypeError) as error:
        raise StoreError(
            f"index in {folder} is damaged ({type(error).__name__}: {error}); {hint}"
        ) from None
    if chunk_vectors.ntotal != len(chunks) or sentence_vectors.ntotal != len(sentences):
        raise StoreError(f"index in {folder} is inconsistent; {hint}")
    chunk_doc_rows = np.concatenate(chunk_doc).astype(np.int64)
    alive = np.ones(len(documents), dtype=bool)
    alive[list(manifest.dead)] = False
    return Snapshot(
        manifest,
        documents,
        texts,
        chunks,
        chunk_doc_rows,
        sentences,
        np.concatenate(sentence_chunk).astype(np.int64),
        chunk_vectors,
        sentence_vectors,
        Lexicon(lexicons, alive[chunk_doc_rows] if len(chunk_doc_rows) else np.zeros(0, bool)),
        len(base.documents),
    )


@dataclass
class _Part:
    documents: list[DocumentInfo]
    texts: list[str]
    chunk_rows: np.ndarray
    sentence_rows: np.ndarray
    entities: dict[int, list[tuple[int, int, str]]]
    chunk_index: Any
    sentence_index: Any
    bm25: Path


def _catalog(manifest: Manifest, parts: list[_Part]) -> Snapshot:
    documents = [d for part in parts for d in part.documents]
    chunk_doc, sentence_chunk = [], []
    d0 = c0 = 0
    for part in parts:
        chunk_doc.append(part.chunk_rows[:, 0] + d0)
        sentence_chunk.append(part.sentence_rows[:, 0] + c0)
        d0, c0 = d0 + len(part.documents), c0 + len(part.chunk_rows)
    if max(manifest.dead, default=-1) >= len(documents):
        raise IndexError("a dead document row past the last document")
    return Snapshot(
        manifest,
        documents,
        [t for part in parts for t in part.texts],
        [],
        np.concatenate(chunk_doc).astype(np.int64),
        [],
        np.concatenate(sentence_chunk).astype(np.int64),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        len(parts[0].documents),
        complete=False,
    )


def _read_segment(folder: Path, segment: dict[str, dict[str, Any]], full: bool) -> _Part:
    def path(role: str) -> Path:
        return folder / segment[role]["name"]

    lines = path("documents").read_text(encoding="utf-8").splitlines()
    raw_docs = [json.loads(line) for line in lines]
    documents = [
        DocumentInfo(
            id=d["id"],
            title=d["title"],
            source=d["source"],
            url=d.get("url"),
            revision=d.get("revision"),
            groups=tuple(d.get("groups", ())),
            sha256=d["sha256"],
            indexed_at=d.get("indexed_at", ""),
            sections=tuple((int(a), str(t), str(h)) for a, t, h in d.get("sections", ())),
        )
        for d in raw_docs
    ]
    entities: dict[int, list[tuple[int, int, str]]] = {}
    for s, a, b, label in json.loads(path("entities").read_text(encoding="utf-8")) if full else ():
        entities.setdefault(int(s), []).append((int(a), int(b), str(label)))
    return _Part(
        documents,
        [d["text"] for d in raw_docs],
        np.load(path("chunks"), allow_pickle=False).reshape(-1, 4).astype(np.int64),
        np.load(path("sentences"), allow_pickle=False).reshape(-1, 4).astype(np.int64),
        entities,
        vectors.read_faiss(str(path("chunk_vectors"))) if full else None,
        vectors.read_faiss(str(path("sentence_vectors"))) if full else None,
        path("bm25"),
    )
