"""The embedded store's reads: searches over an in-memory snapshot of its folder.

A store opens the folder's committed state once (`refresh()` reads a newer one); writers build
a new state beside it and commit it with one rename, so readers never see half a document.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import (
    Filter,
    ScoredChunk,
    StoreError,
    StoreInfo,
    Writer,
    bm25_idf,
    feedback_from,
    feedback_record,
)
from qa.stores.embedded import commit
from qa.stores.embedded.manifest import read_manifest, rebuild_hint
from qa.stores.embedded.snapshot import Snapshot, load
from qa.types import DocumentInfo, Feedback

FEEDBACK = "feedback.jsonl"  # readers' verdicts; kept across rebuilds (not a data file)

# Filters whose allowed-row masks are kept (readers usually fall in a few groups).
MASK_CACHE = 64


class EmbeddedStore:
    """A knowledge base folder. Cheap to construct: nothing is read until first use."""

    def __init__(self, folder: str | os.PathLike[str], *, approximate_above: int = 100_000) -> None:
        self.folder = Path(folder)
        self.approximate_above = approximate_above
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._masks: OrderedDict[Filter, np.ndarray] = OrderedDict()
        self._bm25_cache: tuple[tuple[str, ...], np.ndarray] | None = None

    @property
    def location(self) -> str:
        return str(self.folder)

    def rebuild_hint(self) -> str:
        sources: tuple[str, ...] = ()
        if self._snapshot is not None:
            sources = self._snapshot.manifest.sources
        else:
            with contextlib.suppress(StoreError):
                sources = read_manifest(self.folder).sources
        return rebuild_hint(self.folder, sources)

    def info(self) -> StoreInfo | None:
        if self._snapshot is not None:
            return self._snapshot.manifest.info
        if not (self.folder / "manifest.json").exists():
            return None
        return read_manifest(self.folder).info

    def open(self) -> EmbeddedStore:
        """Read and verify the committed state (StoreError if there is none or it is damaged)."""
        self.refresh()
        return self

    def verify(self) -> None:
        """Check every data file against the manifest's hashes, without loading the indexes."""
        from qa.stores.embedded import files

        manifest = read_manifest(self.folder)
        for segment in manifest.segments:
            for entry in segment.values():
                files.verify(self.folder, entry, rebuild_hint(self.folder, manifest.sources))

    def refresh(self) -> None:
        snapshot = load(self.folder)
        with self._lock:
            self._snapshot = snapshot
            self._masks.clear()
            self._bm25_cache = None

    @property
    def snapshot(self) -> Snapshot:
        """The committed state, whole (read now if only its catalog was)."""
        snapshot = self._snapshot
        if snapshot is None or not snapshot.complete:
            self.refresh()
            snapshot = self._snapshot
            assert snapshot is not None
        return snapshot

    @property
    def catalog(self) -> Snapshot:
        """The committed state's documents and row tables, at least (see Snapshot.complete):
        listing documents, as a sync does first, reads no vectors and no BM25."""
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = load(self.folder, full=False)
            with self._lock:
                self._snapshot = self._snapshot or snapshot
        return snapshot

    def close(self) -> None:
        self._snapshot = None

    # ----- reading -------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        return sorted(self.catalog.alive_documents(), key=lambda d: d.id)

    def document_info(self, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]:
        snap = self.catalog
        return {d: snap.documents[snap.doc_row[d]] for d in doc_ids if d in snap.doc_row}

    def counts(self) -> dict[str, int]:
        snap = self.snapshot
        return {
            "documents": len(snap.doc_row),
            "chunks": len(snap.chunk_row),
            "sentences": int(snap.alive_chunk[snap.sentence_chunk].sum()),
        }

    def state(self, key: str) -> Any:
        return self.catalog.manifest.state.get(key)

    def search_chunks(self, vector: np.ndarray, k: int, where: Filter) -> list[tuple[str, float]]:
        snap = self.snapshot
        scores, rows = snap.chunk_vectors.search(vector, k, self._allowed(snap, where))
        return [(snap.chunks[r].id, float(s)) for r, s in zip(rows, scores, strict=True)]

    def search_sentences(
        self, vector: np.ndarray, k: int, where: Filter
    ) -> list[tuple[str, float]]:
        snap = self.snapshot
        allowed = self._allowed(snap, where)
        sentence_allowed = allowed[snap.sentence_chunk] if allowed is not None else None
        scores, rows = snap.sentence_vectors.search(vector, k, sentence_allowed)
        best: dict[str, float] = {}
        for r, s in zip(rows.tolist(), scores.tolist(), strict=True):
            best.setdefault(snap.chunks[int(snap.sentence_chunk[r])].id, float(s))
        return list(best.items())

    def keyword_search(
        self, terms: Sequence[str], k: int, where: Filter
    ) -> list[tuple[str, float]]:
        snap = self.snapshot
        scores = self._bm25_all(snap, terms)
        if scores is None or k <= 0:
            return []
        allowed = self._allowed(snap, where)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(snap.chunks[i].id, float(scores[i])) for i in top.tolist() if scores[i] > 0]

    def bm25_scores(self, terms: Sequence[str], chunk_ids: Sequence[str]) -> dict[str, float]:
        snap = self.snapshot
        scores = self._bm25_all(snap, terms)
        if scores is None:
            return dict.fromkeys(chunk_ids, 0.0)
        return {c: float(scores[snap.chunk_row[c]]) for c in chunk_ids if c in snap.chunk_row}

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        lexicon = self.snapshot.lexicon
        return {term: bm25_idf(lexicon.n, lexicon.df(term)) for term in terms}

    def fetch(self, chunk_ids: Sequence[str], vector: np.ndarray) -> dict[str, ScoredChunk]:
        snap = self.snapshot
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        rows = np.array([snap.chunk_row[c] for c in chunk_ids if c in snap.chunk_row], np.int64)
        dense = snap.chunk_vectors.rows(rows) @ q
        spans = [(int(snap.first_sentence[r]), int(snap.first_sentence[r + 1])) for r in rows]
        sentence_rows = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else rows
        sims = (snap.sentence_vectors.rows(sentence_rows.astype(np.int64)) @ q).tolist()
        result = {}
        offset = 0
        for n, r in enumerate(rows.tolist()):
            a, b = spans[n]
            result[snap.chunks[r].id] = ScoredChunk(
                chunk=snap.chunks[r],
                cosine=float(dense[n]),
                sentences=tuple(snap.sentences[a:b]),
                sentence_cosines=tuple(sims[offset : offset + b - a]),
            )
            offset += b - a
        return result

    # ----- feedback ------------------------------------------------------------------------
    def add_feedback(self, feedback: Feedback) -> None:
        """Appended as one JSON line under a file lock: many serving processes may share it."""
        import fcntl
        import json

        line = json.dumps(feedback_record(feedback), ensure_ascii=False) + "\n"
        try:
            with (self.folder / FEEDBACK).open("a", encoding="utf-8") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.write(line)
        except OSError as error:
            raise StoreError(
                f"cannot keep feedback in {self.folder} ({error.strerror or error})"
            ) from None

    def feedback(self) -> list[Feedback]:
        import json

        path = self.folder / FEEDBACK
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(feedback_from(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
        return records

    # ----- writing -------------------------------------------------------------------------
    def writer(
        self,
        info: StoreInfo,
        *,
        sources: Sequence[str] = (),
        progress: bool = False,
        reset: bool = False,
    ) -> AbstractContextManager[Writer]:
        return self._writing(info, sources, progress, reset)

    @contextmanager
    def _writing(
        self, info: StoreInfo, sources: Sequence[str], progress: bool, reset: bool
    ) -> Iterator[Writer]:
        def base_of() -> Snapshot | None:
            """The committed state, read under the write lock (the one already open if it is
            still the committed one: a sync has just read its document list)."""
            if reset or not (self.folder / "manifest.json").exists():
                return None
            try:
                current = self._snapshot
                if current is None or read_manifest(self.folder) != current.manifest:
                    current = load(self.folder, full=False)
            except StoreError:
                return None  # a damaged or older folder is replaced whole (the caller checked)
            return current if current.manifest.info == info else None

        try:
            with commit.writing(
                self.folder, base_of, info, tuple(sources), self.approximate_above, progress
            ) as writer:
                yield writer
        finally:
            self._snapshot = None  # the next read opens what was committed

    # ----- internals -----------------------------------------------------------------------
    def _allowed(self, snap: Snapshot, where: Filter) -> np.ndarray | None:
        """Which chunk rows a filter lets through, or None when it lets everything through."""
        if where.unrestricted:
            return snap.alive_chunk if snap.any_dead else None
        with self._lock:
            mask = self._masks.get(where)
            if mask is not None:
                self._masks.move_to_end(where)
                return mask
        doc_ok = np.array(
            [where.allows(d.groups, d.id) for d in snap.documents] or [False], dtype=bool
        )
        if len(snap.documents):
            doc_ok &= snap.alive_doc
        mask = doc_ok[snap.chunk_doc] if len(snap.chunk_doc) else np.zeros(0, dtype=bool)
        with self._lock:
            self._masks[where] = mask
            while len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

    def _bm25_all(self, snap: Snapshot, terms: Sequence[str]) -> np.ndarray | None:
        """BM25 of every chunk for these terms (kept for the next call with the same terms)."""
        known = tuple(t for t in terms if t in snap.lexicon.vocab)
        if not known or not snap.chunk_row:
            return None
        cached = self._bm25_cache
        if cached is not None and cached[0] == known:
            return cached[1]
        scores = snap.lexicon.scores(known)
        self._bm25_cache = (known, scores)
        return scores
