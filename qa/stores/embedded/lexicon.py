"""BM25 over chunk terms, kept as raw term counts so that a commit can add and drop chunks.

bm25s bakes the corpus's IDF and average length into the scores it saves, so one changed
page would change every saved score and force a rewrite of the whole index. This store keeps
each segment's term counts instead (a sparse chunks x terms matrix, scipy's CSR layout) and
computes BM25 at question time, over the chunks that are alive, with the formula of bm25s's
default ("lucene") that the PostgreSQL store computes in SQL too:

    idf = ln(1 + (N - df + 0.5) / (df + 0.5))
    tf part = tf / (tf + k1 * (1 - b + b * length / average length))

A chunk with no terms counts as one placeholder term, as bm25s and the PostgreSQL store do.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import bm25_idf

K1 = 1.5
B = 0.75
PARTS = ("vocab.json", "indptr.npy", "terms.npy", "counts.npy")


@dataclass
class TermCounts:
    """A segment's term counts as they are written: one chunk at a time."""

    vocab: dict[str, int] = field(default_factory=dict)
    indptr: array = field(default_factory=lambda: array("q", [0]))
    terms: array = field(default_factory=lambda: array("i"))
    counts: array = field(default_factory=lambda: array("f"))

    def add(self, counted: Iterable[tuple[str, int]]) -> None:
        for term, n in counted:
            self.terms.append(self.vocab.setdefault(term, len(self.vocab)))
            self.counts.append(n)
        self.indptr.append(len(self.terms))

    def save(self, folder: Path) -> None:
        (folder / "vocab.json").write_text(json.dumps(list(self.vocab), ensure_ascii=False))
        for name, values, dtype in (
            ("indptr.npy", self.indptr, np.int64),
            ("terms.npy", self.terms, np.int32),
            ("counts.npy", self.counts, np.float32),
        ):
            np.save(folder / name, np.frombuffer(values, dtype=dtype), allow_pickle=False)


def count(terms: Sequence[str]) -> list[tuple[str, int]]:
    return sorted(Counter(terms).items())


@dataclass
class Segment:
    vocab: dict[str, int]
    names: list[str]
    rows: Any  # scipy CSR, chunks x terms (a chunk's terms)
    columns: Any  # scipy CSC of the same (a term's chunks)
    offset: int  # global row of the segment's first chunk

    @classmethod
    def load(cls, folder: Path, offset: int) -> Segment:
        from scipy.sparse import csr_matrix

        names = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        indptr = np.load(folder / "indptr.npy", allow_pickle=False)
        terms = np.load(folder / "terms.npy", allow_pickle=False)
        counts = np.load(folder / "counts.npy", allow_pickle=False)
        rows = csr_matrix((counts, terms, indptr), shape=(len(indptr) - 1, len(names)))
        return cls({t: n for n, t in enumerate(names)}, names, rows, rows.tocsc(), offset)


class Lexicon:
    """BM25 over the chunks of every segment; dead chunks count for nothing."""

    def __init__(self, segments: list[Segment], alive: np.ndarray) -> None:
        self.segments = segments
        self.alive = alive
        total = sum(s.rows.shape[0] for s in segments)
        lengths = np.zeros(total, dtype=np.float64)
        for s in segments:
            n = np.asarray(s.rows.sum(axis=1)).reshape(-1)
            lengths[s.offset : s.offset + len(n)] = np.maximum(n, 1.0)
        self.lengths = lengths
        self.n = int(alive.sum())
        self.avgdl = float(lengths[alive].sum() / self.n) if self.n else 1.0
        self.vocab: set[str] = set().union(*(s.vocab for s in segments)) if segments else set()

    def _postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(global chunk rows, counts) of the alive chunks holding `term`."""
        rows, counts = [], []
        for s in self.segments:
            t = s.vocab.get(term)
            if t is None:
                continue
            a, b = s.columns.indptr[t], s.columns.indptr[t + 1]
            rows.append(s.columns.indices[a:b].astype(np.int64) + s.offset)
            counts.append(s.columns.data[a:b])
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        r, c = np.concatenate(rows), np.concatenate(counts)
        keep = self.alive[r]
        return r[keep], c[keep]

    def df(self, term: str) -> int:
        return len(self._postings(term)[0])

    def idf(self, term: str) -> float:
        return bm25_idf(self.n, self.df(term))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 of every chunk row for these terms (a term given twice counts twice)."""
        scores = np.zeros(len(self.lengths), dtype=np.float64)
        for term in terms:
            rows, counts = self._postings(term)
            if not len(rows):
                continue
            tf = counts.astype(np.float64)
            norm = K1 * (1.0 - B + B * self.lengths[rows] / self.avgdl)
            np.add.at(scores, rows, bm25_idf(self.n, len(rows)) * tf / (tf + norm))
        return scores.astype(np.float32)

    def chunk_terms(self, row: int) -> list[tuple[str, int]]:
        """The (term, count) pairs of one chunk row, to copy it into a new segment."""
        for s in self.segments:
            local = row - s.offset
            if 0 <= local < s.rows.shape[0]:
                a, b = s.rows.indptr[local], s.rows.indptr[local + 1]
                found = zip(s.rows.indices[a:b].tolist(), s.rows.data[a:b].tolist(), strict=True)
                return [(s.names[t], int(n)) for t, n in found]
        raise IndexError(row)
