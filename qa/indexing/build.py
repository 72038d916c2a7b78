"""The indexing river: documents -> chunks (+ sentences) -> vectors -> a store.

`index_documents` makes a store hold exactly the documents it is given: new and changed ones
are embedded, unchanged ones are kept as they are, and the ones no longer given are deleted
(unless `keep_missing`). Documents stream through in batches, so memory does not grow with the
size of the source.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from qa import lexical
from qa.embedding import Embedder, one_thread
from qa.indexing import helper, tagging
from qa.indexing.chunking import Span, chunk_document
from qa.indexing.documents import Skipped
from qa.indexing.sanitize import sanitize
from qa.settings import Settings
from qa.stores.base import DocumentUpdate, Store, StoreError, StoreInfo
from qa.types import Chunk, Document, Sentence, sentence_id

# Changed documents are embedded together, a batch closing at this much text or this many
# documents: enough sentences that the model and the typing run in long, length-sorted passes
# (a 150-page dump built 8% faster in one batch than in batches of 64 pages), few enough that
# a big source (a wiki dump) never holds more than this in memory.
BATCH_CHARACTERS = 250_000
DOCUMENTS_PER_BATCH = 1024
# Below this much text (about 64 sentences) a batch is chunked, embedded and typed here alone:
# handing pieces of it to the helper process costs more than it saves.
SHARE_CHARACTERS = 8_000
# The embedders of this build, by id: the forked helper process finds its copy by that key (one
# registered after the fork is missing there: the helper fails once and the build goes on alone).
_embedders: weakref.WeakValueDictionary[int, Embedder] = weakref.WeakValueDictionary()


@dataclass
class Batch:
    """Changed documents (with their hashes) waiting to be embedded together."""

    documents: list[tuple[Document, str]] = field(default_factory=list)
    characters: int = 0

    def add(self, document: Document, digest: str) -> bool:
        """Add one; whether the batch is now full."""
        self.documents.append((document, digest))
        self.characters += len(document.text)
        full = len(self.documents) >= DOCUMENTS_PER_BATCH
        return full or self.characters >= BATCH_CHARACTERS

    def take(self) -> list[tuple[Document, str]]:
        """The documents, leaving the batch empty."""
        taken, self.documents, self.characters = self.documents, [], 0
        return taken


class NoDocumentsError(ValueError):
    """None of the given paths held a usable document."""


@dataclass
class BuildReport:
    location: str
    documents: int  # documents in the store after the run
    chunks: int
    sentences: int
    embedded_documents: int  # documents whose vectors were computed in this run
    reused_documents: int  # unchanged documents kept as they were
    removed_documents: int  # documents deleted because their source no longer has them
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"indexed {self.documents} document(s) into {self.location}: {self.chunks} chunks, "
            f"{self.sentences} sentences; embedded {self.embedded_documents}, reused "
            f"{self.reused_documents}, removed {self.removed_documents}, skipped "
            f"{len(self.skipped)} file(s) in {self.seconds:.1f}s"
        )


def document_hash(document: Document) -> str:
    """Changes when the text or anything a citation or the access filter shows changes."""
    meta = json.dumps(
        [
            document.title,
            document.source,
            document.url,
            document.revision,
            document.groups,
            document.sections,
        ]
    )
    digest = hashlib.sha256(document.text.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + meta.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def chunk_budget(embedder: Embedder, settings: Settings) -> int:
    """Tokens a chunk may hold: the setting, capped by the model window less [CLS] and [SEP]."""
    return max(16, min(settings.chunk_tokens, embedder.max_tokens - 2))


def store_info(embedder: Embedder, settings: Settings) -> StoreInfo:
    """What a store built now with this model and these settings is described by."""
    return StoreInfo(
        model_id=embedder.model_id,
        fingerprint=embedder.fingerprint(),
        dim=embedder.dim,
        max_tokens=embedder.max_tokens,
        chunking={
            **settings.index_params(),
            "budget_tokens": chunk_budget(embedder, settings),
            "typing": tagging.typing_version(),  # typed spans (short answers) or none
        },
    )


def index_documents(
    store: Store,
    documents: Iterable[Document],
    embedder: Embedder,
    settings: Settings,
    *,
    keep_missing: bool = False,
    rebuild: bool = False,
    sources: Sequence[str] = (),
    skipped: Sequence[Skipped] = (),
    progress: bool = True,
) -> BuildReport:
    """Bring `store` in line with `documents` (see the module docstring)."""
    from tqdm import tqdm

    began = time.perf_counter()
    wanted = store_info(embedder, settings)
    existing = None if rebuild else _existing(store)
    if existing is not None:
        problem = existing.mismatch(wanted)
        if problem:
            raise StoreError(f"{store.location}: {problem}; {store.rebuild_hint()}")
    stored = {d.id: d.sha256 for d in store.documents()} if existing else {}
    # Nothing is opened or written (no folder, no lock, no progress bar) for a source that
    # holds no document at all.
    stream = iter(documents)
    first = next(stream, None)
    if first is None:
        raise NoDocumentsError("no usable document in " + (", ".join(sources) or "(nothing)"))
    documents = itertools.chain([first], stream)
    seen: set[str] = set()
    embedded = reused = removed = 0
    batch = Batch()
    bar = tqdm(desc="embedding", unit="sentence", total=0, disable=not progress)
    with (
        bar,
        store.writer(wanted, sources=sources, progress=progress, reset=rebuild) as writer,
        helper.sharing(),  # exits first: the helper process is gone before the lock is
    ):
        for original in documents:
            document = sanitize(original)
            if document.id in seen:
                raise StoreError(f"two documents have the id {document.id!r}")
            seen.add(document.id)
            digest = document_hash(document)
            if stored.get(document.id) == digest:
                reused += 1
                continue
            if batch.add(document, digest):
                taken = batch.take()
                for update in embed_batch(taken, embedder, settings, bar):
                    writer.upsert(update)
                embedded += len(taken)
        if not seen:
            raise NoDocumentsError("no usable document in " + (", ".join(sources) or "(nothing)"))
        if batch.documents:
            taken = batch.take()
            for update in embed_batch(taken, embedder, settings, bar):
                writer.upsert(update)
            embedded += len(taken)
        if not keep_missing:
            for doc_id in sorted(set(stored) - seen):
                writer.delete(doc_id)
                removed += 1
    counts = store.counts()
    return BuildReport(
        store.location,
        counts["documents"],
        counts["chunks"],
        counts["sentences"],
        embedded,
        reused,
        removed,
        list(skipped),
        time.perf_counter() - began,
    )


def _existing(store: Store) -> StoreInfo | None:
    try:
        return store.info()
    except StoreError as error:
        raise StoreError(f"{error}; or replace it: {store.rebuild_hint()}") from None


def embed_batch(
    batch: Sequence[tuple[Document, str]], embedder: Embedder, settings: Settings, bar: Any
) -> list[DocumentUpdate]:
    """Chunk, split and embed a batch of documents: one model pass over their sentences.

    A chunk's vector is the length-weighted mean of its sentences' vectors (as MiniLM's mean
    pooling weighs every token alike) rather than a second forward pass over the chunk: that
    pass doubled the build's model time and bought 0.005 hit@1 on the SQuAD articles.
    """
    parts = []
    texts: list[str] = []
    chunked = chunk_all([document for document, _ in batch], embedder, settings)
    for (document, digest), (chunks, spans) in zip(batch, chunked, strict=True):
        sentences = [
            Sentence(sentence_id(chunk.id, n), chunk.id, a, b)
            for chunk, chunk_spans in zip(chunks, spans, strict=True)
            for n, (a, b) in enumerate(chunk_spans)
        ]
        parts.append((document, digest, chunks, sentences))
        texts.extend(document.text[s.start : s.end] for s in sentences)
    # Overlapping chunks repeat a sentence, and documents repeat boilerplate: embed once.
    unique = list(dict.fromkeys(texts))
    if bar is not None:
        bar.total += len(unique)
        bar.refresh()
    vectors, typed = embed_and_type(embedder, unique, settings.batch_size, bar)
    row = {text: i for i, text in enumerate(unique)}
    updates = []
    for document, digest, chunks, sentences in parts:
        sentence_texts = [document.text[s.start : s.end] for s in sentences]
        sentences = [
            replace(s, entities=tuple((s.start + a, s.start + b, k) for a, b, k in typed[row[t]]))
            for s, t in zip(sentences, sentence_texts, strict=True)
        ]
        sentence_vectors = vectors[[row[t] for t in sentence_texts]].reshape(-1, embedder.dim)
        chunk_vectors = mean_vectors(
            sentence_vectors,
            np.array([len(t) for t in sentence_texts], dtype=np.float32),
            [s.chunk_id for s in sentences],
            [c.id for c in chunks],
        )
        updates.append(
            DocumentUpdate(
                document=document,
                sha256=digest,
                chunks=chunks,
                sentences=sentences,
                chunk_vectors=chunk_vectors,
                sentence_vectors=sentence_vectors,
                terms=[lexical.terms(c.text) for c in chunks],
            )
        )
    return updates


def mean_vectors(
    vectors: np.ndarray, weights: np.ndarray, groups: Sequence[str], keys: Sequence[str]
) -> np.ndarray:
    """Per key, the unit-length weighted mean of the vectors whose group is that key."""
    position = {key: i for i, key in enumerate(keys)}
    sums = np.zeros((len(keys), vectors.shape[1]), dtype=np.float32)
    rows = np.fromiter((position[g] for g in groups), dtype=np.int64, count=len(groups))
    np.add.at(sums, rows, vectors * weights[:, None])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.where(norms > 0, norms, 1.0)


def chunk_all(
    documents: list[Document], embedder: Embedder, settings: Settings
) -> list[tuple[list[Chunk], list[list[Span]]]]:
    """`chunk_document` of each document; inside `helper.sharing()`, with SHARE_CHARACTERS of
    text or more, the helper process chunks some of them at the same time."""
    budget, overlap = chunk_budget(embedder, settings), settings.chunk_overlap_sentences
    work = partial(_chunk_here, _shareable(embedder), budget, overlap)
    if sum(len(d.text) for d in documents) >= SHARE_CHARACTERS:
        shared = helper.share(work, documents, size=lambda d: len(d.text))
        if shared is not None:
            return shared
    return work(documents)


def _shareable(embedder: Embedder) -> int:
    """Ready what the helper process must share before it is forked (the model and the spaCy
    pipeline, loaded once, in this process); the key it finds the embedder by."""
    embedder.max_tokens  # noqa: B018 - loads a lazily loaded model
    tagging.load()
    _embedders[id(embedder)] = embedder
    return id(embedder)


def _chunk_here(
    key: int, budget: int, overlap: int, documents: Sequence[Document]
) -> list[tuple[list[Chunk], list[list[Span]]]]:
    embedder = _embedders[key]
    return [chunk_document(d, embedder.count_tokens, budget, overlap) for d in documents]


def embed_and_type(
    embedder: Embedder, texts: list[str], batch_size: int, bar: Any = None
) -> tuple[np.ndarray, list[list[tagging.Span]]]:
    """The vectors of distinct texts, and their typed spans (entities and noun phrases, offsets
    inside each text).

    Inside `helper.sharing()` (a build), a batch of SHARE_CHARACTERS or more is shared out in
    pieces (`helper.share`): the helper process embeds and types some while this one does the
    others, each with one torch thread. Two one-thread model passes side by side outrun one pass
    on two threads (751 sentences: 3.1-3.5 s against 3.9-4.2 s, the same vectors to the last
    bit), and spaCy, which runs on one core, is shared with them.
    """
    if sum(map(len, texts)) >= SHARE_CHARACTERS:
        work = partial(_embed_and_type_here, _shareable(embedder), batch_size)
        ours = 0

        def here(part: Sequence[str]) -> list[tuple[np.ndarray, list[tagging.Span]]]:
            nonlocal ours
            ours += len(part)
            return work(part, bar=bar)

        shared = helper.share(work, texts, here, size=len)
        if shared is not None:
            if bar is not None:
                bar.update(len(texts) - ours)  # the helper's pieces
            vectors = np.stack([vector for vector, _ in shared]).astype(np.float32, copy=False)
            return vectors, [spans for _, spans in shared]
    return encode(embedder, texts, batch_size, bar), tagging.tag(texts)


def _embed_and_type_here(
    key: int, batch_size: int, texts: Sequence[str], bar: Any = None
) -> list[tuple[np.ndarray, list[tagging.Span]]]:
    """A piece of `embed_and_type`'s work, in either process."""
    with one_thread():
        vectors = encode(_embedders[key], list(texts), batch_size, bar)
    return list(zip(vectors, tagging.tag(texts), strict=True))


def encode(embedder: Embedder, texts: list[str], batch_size: int, bar: Any = None) -> np.ndarray:
    """Embed texts longest first, so each batch holds texts of like length and pads little."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    step = max(batch_size * 8, 256)
    for i in range(0, len(order), step):
        rows = order[i : i + step]
        vectors[rows] = embedder.encode([texts[r] for r in rows], batch_size=batch_size)
        if bar is not None:
            bar.update(len(rows))
    return vectors
