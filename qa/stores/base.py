"""The store seam: what the asking river reads and the indexing river writes, whatever the engine.

The asking river sees chunk ids, passages and scores from this protocol, never a FAISS index,
a bm25s object or a SQL cursor. Every search takes a `Filter`, applied inside the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from qa.types import Chunk, Document, DocumentInfo, Feedback, Sentence

# The layout both stores write; a store with another version is refused with a rebuild hint.
# 3: stable chunk and sentence ids, document metadata (url, revision, groups), deletes.
FORMAT_VERSION = 3


class StoreError(RuntimeError):
    """A store cannot be opened or written; the message says what and how to fix it."""


class StoreBusyError(StoreError):
    """Another process is writing the same store."""


@dataclass(frozen=True)
class Filter:
    """Which documents a search may return. None means no restriction on that field."""

    groups: frozenset[str] | None = None  # the reader's groups: documents open to all, or shared
    doc_ids: frozenset[str] | None = None  # only these documents

    def allows(self, doc_groups: Iterable[str], doc_id: str) -> bool:
        if self.doc_ids is not None and doc_id not in self.doc_ids:
            return False
        if self.groups is None:
            return True
        doc_groups = tuple(doc_groups)
        return not doc_groups or bool(self.groups.intersection(doc_groups))

    @property
    def unrestricted(self) -> bool:
        return self.groups is None and self.doc_ids is None


EVERYTHING = Filter()


@dataclass(frozen=True)
class StoreInfo:
    """What a store was built with; a store is only usable with the same model and chunking."""

    model_id: str
    fingerprint: str  # hash of the model's weights
    dim: int
    max_tokens: int
    chunking: dict[str, int] = field(default_factory=dict)  # chunk_tokens, overlap, budget
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> StoreInfo:
        try:
            return cls(
                model_id=str(raw["model_id"]),
                fingerprint=str(raw["fingerprint"]),
                dim=int(raw["dim"]),
                max_tokens=int(raw["max_tokens"]),
                chunking={str(k): int(v) for k, v in dict(raw["chunking"]).items()},
                format_version=int(raw["format_version"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise StoreError(f"the store's description is damaged ({error!r})") from None

    def mismatch(self, wanted: StoreInfo, *, check_chunking: bool = True) -> str | None:
        """What makes a store built with `self` unusable for `wanted`, or None.

        The one compatibility rule of both stores; the caller adds where and how to rebuild.
        """
        if self.format_version != wanted.format_version:
            return (
                f"it has format version {self.format_version}, this qa reads version "
                f"{wanted.format_version}"
            )
        if self.model_id != wanted.model_id:
            return (
                f"it was built with model {self.model_id!r}, but the configured model is "
                f"{wanted.model_id!r}"
            )
        if self.fingerprint != wanted.fingerprint:
            return (
                f"it was built with other weights of model {wanted.model_id!r} (fingerprint "
                f"{self.fingerprint} vs {wanted.fingerprint})"
            )
        differ = [
            f"{k} {self.chunking.get(k)} vs {v}"
            for k, v in wanted.chunking.items()
            if self.chunking.get(k) != v
        ]
        if differ and check_chunking:
            return f"it was built with other chunking ({', '.join(differ)})"
        return None


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk with its sentences and their cosines with one query: what ranking and answers use.

    The engine computes the cosines where the vectors live (FAISS in memory, pgvector in SQL),
    so no vector crosses the seam at question time.
    """

    chunk: Chunk
    cosine: float  # of the chunk's vector with the query
    sentences: tuple[Sentence, ...]  # in text order
    sentence_cosines: tuple[float, ...]

    def sentence_text(self, n: int) -> str:
        s = self.sentences[n]
        return self.chunk.text[s.start - self.chunk.start : s.end - self.chunk.start]


@dataclass(frozen=True)
class DocumentUpdate:
    """One document as the indexing river hands it to a writer: everything the store keeps."""

    document: Document
    sha256: str
    chunks: Sequence[Chunk]
    sentences: Sequence[Sentence]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    terms: Sequence[Sequence[str]]  # the lexical terms of each chunk, for keyword search


class Writer(Protocol):
    """Changes that become visible together when the `with` block ends without an error."""

    def upsert(self, update: DocumentUpdate) -> None: ...

    def delete(self, doc_id: str) -> None: ...

    def set_state(self, key: str, value: Any) -> None:
        """Keep a JSON value with this commit (e.g. where a wiki sync stopped)."""
        ...


class Store(Protocol):
    """A knowledge base's storage engine: the embedded folder or PostgreSQL."""

    @property
    def location(self) -> str:
        """Where it lives, for messages (a folder, or a URL without its password)."""
        ...

    def info(self) -> StoreInfo | None:
        """What it was built with; None when nothing was ever written."""
        ...

    def rebuild_hint(self) -> str:
        """The command that rebuilds this store, for error messages."""
        ...

    # ----- reading -------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]: ...

    def counts(self) -> dict[str, int]:
        """documents, chunks and sentences stored."""
        ...

    def state(self, key: str) -> Any:
        """A value a writer kept with `set_state`, as of the last commit; None if never set."""
        ...

    def search_chunks(self, vector: np.ndarray, k: int, where: Filter) -> list[tuple[str, float]]:
        """(chunk id, cosine) of the k chunks nearest the query vector, best first."""
        ...

    def search_sentences(
        self, vector: np.ndarray, k: int, where: Filter
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine) of the chunks of the k sentences nearest the query vector."""
        ...

    def keyword_search(
        self, terms: Sequence[str], k: int, where: Filter
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25) of the k best chunks for these terms (those with a score > 0)."""
        ...

    def bm25_scores(self, terms: Sequence[str], chunk_ids: Sequence[str]) -> dict[str, float]:
        """BM25 of the given chunks for these terms (0 for a chunk with none of them)."""
        ...

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        """Inverse document frequency of each term over chunks; unseen terms get the highest."""
        ...

    def fetch(self, chunk_ids: Sequence[str], vector: np.ndarray) -> dict[str, ScoredChunk]:
        """The given chunks (those that exist), scored against the query vector."""
        ...

    def document_info(self, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]: ...

    # ----- feedback ------------------------------------------------------------------------
    def add_feedback(self, feedback: Feedback) -> None:
        """Keep one reader's verdict (serving processes call this; no write lock needed)."""
        ...

    def feedback(self) -> list[Feedback]:
        """Every verdict kept, oldest first."""
        ...

    # ----- writing -------------------------------------------------------------------------
    def writer(
        self,
        info: StoreInfo,
        *,
        sources: Sequence[str] = (),
        progress: bool = False,
        reset: bool = False,
    ) -> AbstractContextManager[Writer]:
        """Exclusive write access; a second writer fails at once with StoreBusyError.

        `reset` starts from an empty store (a rebuild with another model or chunking).
        """
        ...

    def close(self) -> None: ...


MAX_FEEDBACK_CHARS = 4000  # a comment, question or answer kept with feedback is cut to this


def feedback_record(feedback: Feedback) -> dict[str, Any]:
    """A verdict as bounded JSON, the same in both stores."""
    from datetime import UTC, datetime

    return {
        "at": feedback.at or datetime.now(UTC).isoformat(timespec="seconds"),
        "user": (feedback.user or None) and feedback.user[:200],
        "rating": feedback.rating,
        "question": feedback.question[:MAX_FEEDBACK_CHARS],
        "answer": feedback.answer[:MAX_FEEDBACK_CHARS],
        "passage_ids": [str(p)[:500] for p in feedback.passage_ids[:50]],
        "comment": feedback.comment[:MAX_FEEDBACK_CHARS],
    }


def feedback_from(record: dict[str, Any]) -> Feedback:
    return Feedback(
        question=str(record.get("question", "")),
        answer=str(record.get("answer", "")),
        passage_ids=tuple(str(p) for p in record.get("passage_ids", ())),
        rating=int(record["rating"]),
        comment=str(record.get("comment", "")),
        user=record.get("user"),
        at=str(record.get("at", "")),
    )


def bm25_idf(n_chunks: int, df: int) -> float:
    """BM25's (Lucene's) inverse document frequency, as bm25s computes it."""
    return float(np.log(1.0 + (n_chunks - df + 0.5) / (df + 0.5)))
