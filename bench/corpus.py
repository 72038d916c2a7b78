"""Synthetic corpora for the scale runs: MiniLM-shaped vectors and `DocumentUpdate`s built from
them, so a store of a million chunks is written through the same `store.writer(info)` a real
build uses, without a million model calls.

Vectors are drawn from a Gaussian fitted to real MiniLM vectors (same mean and covariance) and
normalised: unlike isotropic random vectors, they have MiniLM's anisotropy and low effective
dimension, which decide how well a graph index finds the exact nearest neighbour. Chunk texts
are the SQuAD paragraphs, repeated, so BM25 and the keyword index see real text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import DIM, squad_paragraphs

BLOCK = 1000  # chunks per synthetic document (the writer's unit of work)


def minilm_sample(embedder: Any, settings: Any, out: Path) -> Path:
    """Real MiniLM vectors of the SQuAD paragraphs and their sentences, saved for the fit."""
    import re

    import numpy as np

    from qa.indexing.build import encode

    paragraphs = squad_paragraphs()
    sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s) > 20]
    texts = list(dict.fromkeys(paragraphs + sentences))
    np.save(out, encode(embedder, texts, settings.batch_size))
    return out


class Shape:
    """A Gaussian fitted to real vectors; draws unit vectors like them, block by block."""

    def __init__(self, real: Any) -> None:
        import numpy as np

        self.mean = real.mean(axis=0).astype(np.float32)
        values, axes = np.linalg.eigh(np.cov(real.T))
        self.scale = (np.sqrt(np.clip(values, 0, None))[:, None] * axes.T).astype(np.float32)

    def draw(self, seed: int, n: int) -> Any:
        """n unit vectors; the same seed gives the same vectors in every process."""
        import numpy as np

        rng = np.random.default_rng(seed)
        x = self.mean + rng.standard_normal((n, len(self.mean)), dtype=np.float32) @ self.scale
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def unit_rows(rng: Any, n: int, dim: int = DIM) -> Any:
    import numpy as np

    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def perturbed(rng: Any, vectors: Any, cosine: float) -> Any:
    """Unit queries whose cosine with the given stored vectors is about `cosine`."""
    import numpy as np

    q = cosine * vectors + np.sqrt(1 - cosine**2) * unit_rows(rng, len(vectors), vectors.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


class Corpus:
    """Synthetic documents of BLOCK chunks each; chunk g is SQuAD paragraph g mod 126, with one
    sentence spanning it whose vector is the chunk's (so both vector indexes hold n vectors)."""

    def __init__(self, shape: Shape, seed: int = 7) -> None:
        from qa import lexical

        self.shape = shape
        self.seed = seed
        paragraphs = squad_paragraphs()
        self.paragraphs = paragraphs  # chunk texts: shared objects, not a copy per chunk
        self.text = "\n\n".join(paragraphs)  # every document's text: one shared string
        self.spans = []
        offset = 0
        for p in paragraphs:
            self.spans.append((offset, offset + len(p)))
            offset += len(p) + 2
        self.terms = [lexical.terms(p) for p in paragraphs]

    def vectors(self, block: int, n: int = BLOCK) -> Any:
        return self.shape.draw(self.seed * 1_000_003 + block, n)

    def chunk_id(self, g: int) -> str:
        return f"s{g // BLOCK:05d}::{g % BLOCK}"

    def updates(self, start: int, stop: int, kept: list[Any] | None = None) -> Iterator[Any]:
        """DocumentUpdates for chunks [start, stop) (start a multiple of BLOCK); their vectors
        are appended to `kept` when given, for the exact search."""
        from qa.stores import DocumentUpdate
        from qa.types import Chunk, Document, Sentence

        for first in range(start, stop, BLOCK):
            block = first // BLOCK
            n = min(BLOCK, stop - first)
            doc_id = f"s{block:05d}"
            vectors = self.vectors(block, n)
            if kept is not None:
                kept.append(vectors)
            chunks, sentences, terms = [], [], []
            for i in range(n):
                p = (first + i) % len(self.spans)
                a, b = self.spans[p]
                cid = self.chunk_id(first + i)
                text = self.paragraphs[p]
                chunks.append(Chunk(id=cid, doc_id=doc_id, text=text, start=a, end=b))
                sentences.append(Sentence(id=f"{cid}.0", chunk_id=cid, start=a, end=b))
                terms.append(self.terms[p])
            document = Document(id=doc_id, title=doc_id, source=doc_id, text=self.text)
            yield DocumentUpdate(
                document=document,
                sha256=f"synthetic-{self.seed}-{block}-{n}",
                chunks=chunks,
                sentences=sentences,
                chunk_vectors=vectors,
                sentence_vectors=vectors,
                terms=terms,
            )


def exact_top(stored: Any, queries: Any, k: int = 1, step: int = 200_000) -> Any:
    """Row numbers of the k exact nearest stored vectors of each query (numpy brute force)."""
    import numpy as np

    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for a in range(0, len(stored), step):
        scores = queries @ stored[a : a + step].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        best_rows = np.concatenate([best_rows, top + a], axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(best_rows, order, 1)
