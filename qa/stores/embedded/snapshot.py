"""One committed state of an embedded store, read from its folder and verified, in memory."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import StoreError
from qa.stores.embedded import files, vectors
from qa.stores.embedded.manifest import Manifest, read_manifest, rebuild_hint
from qa.types import Chunk, DocumentInfo, Sentence, chunk_id, sentence_id

# Tries of a load while builds keep committing new manifests under it.
LOAD_ATTEMPTS = 5


@dataclass
class Snapshot:
    manifest: Manifest
    documents: list[DocumentInfo]
    texts: list[str]  # each document's text, by document row
    chunks: list[Chunk]
    chunk_doc: np.ndarray  # document row of each chunk
    sentences: list[Sentence]
    sentence_chunk: np.ndarray  # chunk row of each sentence
    chunk_index: Any  # faiss.Index over chunk vectors, ids = chunk rows
    sentence_index: Any  # faiss.Index over sentence vectors, ids = sentence rows
    bm25: Any  # bm25s.BM25 over chunk terms, ids = chunk rows

    def __post_init__(self) -> None:
        self.chunk_row = {c.id: n for n, c in enumerate(self.chunks)}
        self.doc_row = {d.id: n for n, d in enumerate(self.documents)}
        # Sentences of chunk i are sentences[first[i]:first[i+1]] (they are stored in order).
        counts = np.bincount(self.sentence_chunk, minlength=len(self.chunks))
        self.first_sentence = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def load(folder: Path) -> Snapshot:
    """Read and verify an index folder: every file must exist and match its recorded hash."""
    for _ in range(LOAD_ATTEMPTS - 1):
        manifest = read_manifest(folder)
        try:
            return _load(folder, manifest)
        except StoreError:
            # A build that commits while we read deletes the files of the manifest we read
            # (they are its garbage): read the new manifest and try again. The same manifest
            # twice means the damage is real.
            if _files_unchanged(folder, manifest):
                raise
    return _load(folder, read_manifest(folder))


def _files_unchanged(folder: Path, manifest: Manifest) -> bool:
    try:
        return read_manifest(folder).files == manifest.files
    except StoreError:
        return True


def _load(folder: Path, manifest: Manifest) -> Snapshot:
    import bm25s

    hint = rebuild_hint(folder, manifest.sources)
    for entry in manifest.files.values():
        files.verify(folder, entry, hint)

    def path(role: str) -> Path:
        return folder / manifest.files[role]["name"]

    try:
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
        texts = [d["text"] for d in raw_docs]
        chunk_rows = np.load(path("chunks"), allow_pickle=False).reshape(-1, 4)
        sentence_rows = np.load(path("sentences"), allow_pickle=False).reshape(-1, 4)
        chunks = []
        for d, ordinal, start, end in chunk_rows.tolist():
            doc = documents[d]
            chunks.append(Chunk(chunk_id(doc.id, ordinal), doc.id, texts[d][start:end], start, end))
        entities: dict[int, list[tuple[int, int, str]]] = {}
        for s, a, b, label in json.loads(path("entities").read_text(encoding="utf-8")):
            entities.setdefault(int(s), []).append((int(a), int(b), str(label)))
        sentences = [
            Sentence(
                sentence_id(chunks[c].id, ordinal),
                chunks[c].id,
                start,
                end,
                tuple(entities.get(n, ())),
            )
            for n, (c, ordinal, start, end) in enumerate(sentence_rows.tolist())
        ]
        chunk_index = vectors.read_faiss(str(path("chunk_vectors")))
        sentence_index = vectors.read_faiss(str(path("sentence_vectors")))
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        bm25 = bm25s.BM25.load(str(path("bm25")))
    except (OSError, ValueError, KeyError, IndexError, RuntimeError, TypeError) as error:
        raise StoreError(
            f"index in {folder} is damaged ({type(error).__name__}: {error}); {hint}"
        ) from None
    if chunk_index.ntotal != len(chunks) or sentence_index.ntotal != len(sentences):
        raise StoreError(f"index in {folder} is inconsistent; {hint}")
    return Snapshot(
        manifest,
        documents,
        texts,
        chunks,
        chunk_rows[:, 0].astype(np.int64) if len(chunk_rows) else np.zeros(0, np.int64),
        sentences,
        sentence_rows[:, 0].astype(np.int64) if len(sentence_rows) else np.zeros(0, np.int64),
        chunk_index,
        sentence_index,
        bm25,
    )
