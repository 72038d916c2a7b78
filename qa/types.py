"""The typed values that flow through both rivers: documents, chunks, passages and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Section = tuple[int, str, str]
"""A heading inside a document: (offset where its text starts, title, URL anchor)."""


@dataclass(frozen=True)
class Document:
    id: str  # stable id from the source: the path relative to what was indexed, or a page URL
    title: str
    source: str  # what a reader is shown as the origin: a relative path, never a server path
    text: str  # for .txt, the file's decoded text exactly, so offsets point into the file
    url: str | None = None  # where a reader can open it (a wiki page), when known
    revision: str | None = None  # the source's own revision id, when it has one
    groups: tuple[str, ...] = ()  # access groups allowed to read it; empty = everyone
    sections: tuple[Section, ...] = ()  # headings, in text order, for citation anchors


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document's metadata, without its text: what a citation needs."""

    id: str
    title: str
    source: str
    url: str | None
    revision: str | None
    groups: tuple[str, ...]
    sha256: str  # hash of the text the chunks were cut from
    indexed_at: str  # ISO time the document was (re)embedded
    sections: tuple[Section, ...] = ()

    def section_at(self, offset: int) -> Section | None:
        """The section a text offset falls in (the last heading at or before it), or None."""
        found = None
        for section in self.sections:
            if section[0] > offset:
                break
            found = section
        return found

    def url_at(self, offset: int) -> str | None:
        """The page URL, with the anchor of the section at `offset` when there is one."""
        section = self.section_at(offset)
        if self.url and section and section[2]:
            return f"{self.url.split('#')[0]}#{section[2]}"
        return self.url


@dataclass(frozen=True)
class Chunk:
    id: str  # "<doc_id>::<ordinal>": stable across builds, loads and stores
    doc_id: str
    text: str
    start: int  # [start, end) offsets into the document's text
    end: int


Entity = tuple[int, int, str]
"""A typed span found at index time: [start, end) offsets into the document's text, a label."""


@dataclass(frozen=True)
class Sentence:
    id: str  # "<chunk_id>.<ordinal>"
    chunk_id: str
    start: int  # [start, end) offsets into the document's text
    end: int
    entities: tuple[Entity, ...] = ()  # typed spans inside the sentence (names, dates, ...)


def chunk_id(doc_id: str, ordinal: int) -> str:
    return f"{doc_id}::{ordinal}"


def sentence_id(chunk: str, ordinal: int) -> str:
    return f"{chunk}.{ordinal}"


@dataclass(frozen=True)
class Feedback:
    """A reader's verdict on one answer, kept for whoever tunes the knowledge base."""

    question: str
    answer: str
    passage_ids: tuple[str, ...]  # the chunk ids the answer showed, best first
    rating: int  # +1 (helpful) or -1 (not helpful)
    comment: str = ""
    user: str | None = None  # the signed-in reader, when known
    at: str = ""  # ISO time it was given; filled by the store when empty

    def __post_init__(self) -> None:
        if self.rating not in (1, -1):
            raise ValueError(f"rating ({self.rating!r}) must be 1 or -1")


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float  # the fused retrieval score
    title: str
    source: str
    # Answer spans as [start, end) offsets inside chunk.text.
    highlights: tuple[tuple[int, int], ...] = ()
    signals: dict[str, float] = field(default_factory=dict)  # per-signal scores, for eval
    url: str | None = None  # the page (and section anchor) a reader can open
    section: str | None = None  # the title of the section it sits under


@dataclass(frozen=True)
class ShortAnswer:
    """The shortest span of a passage that answers the question (a name, a date, a number...)."""

    text: str
    passage_rank: int  # 1-based rank of the passage it lies in
    start: int  # [start, end) offsets inside that passage's text
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "passage_rank": self.passage_rank,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # the answer, with citation markers like [1]; a plain decline when abstained
    abstained: bool
    passages: tuple[Passage, ...]
    confidence: float  # 0..1, from the abstention model
    timings_ms: dict[str, float]
    notices: tuple[str, ...] = ()  # e.g. "question cut to 2000 characters"
    search_query: str = ""  # the question as retrieval saw it (with follow-up context)
    signals: dict[str, float] = field(default_factory=dict)  # what the confidence was read from
    # None when the question asks for an explanation, or no span of the evidence answers it.
    short_answer: ShortAnswer | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "short_answer": self.short_answer.to_dict() if self.short_answer else None,
            "abstained": self.abstained,
            "confidence": round(self.confidence, 4),
            "passages": [
                {
                    "rank": rank,
                    "doc_id": p.chunk.doc_id,
                    "chunk_id": p.chunk.id,
                    "title": p.title,
                    "source": p.source,
                    "url": p.url,
                    "section": p.section,
                    "start": p.chunk.start,
                    "end": p.chunk.end,
                    "text": p.chunk.text,
                    "score": round(p.score, 4),
                    "highlights": [list(span) for span in p.highlights],
                }
                for rank, p in enumerate(self.passages, start=1)
            ],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "notices": list(self.notices),
            "search_query": self.search_query,
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
        }
