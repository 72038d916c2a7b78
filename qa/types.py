"""The typed values that flow through both rivers: documents, chunks, passages and answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    id: str  # stable id: the path relative to the folder it was found under
    title: str
    source: str  # the file it came from
    text: str  # for .txt, the file's decoded text exactly, so offsets point into the file


@dataclass(frozen=True)
class Sentence:
    chunk: int  # index of the chunk it belongs to
    start: int  # [start, end) offsets into the document's text
    end: int


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    text: str
    start: int  # [start, end) offsets into the document's text
    end: int


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float  # the fused retrieval score
    title: str
    source: str
    # Answer spans as [start, end) offsets inside chunk.text.
    highlights: tuple[tuple[int, int], ...] = ()
    signals: dict[str, float] = field(default_factory=dict)  # per-signal scores, for eval


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "confidence": round(self.confidence, 4),
            "passages": [
                {
                    "rank": rank,
                    "doc_id": p.chunk.doc_id,
                    "title": p.title,
                    "source": p.source,
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
