"""Question to ranked chunks: dense similarity, BM25 and best-sentence similarity, fused.

Works on any store: each signal nominates candidates through the store's searches, then every
candidate is scored on every signal, so the fused order does not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from qa.stores.base import EVERYTHING, Filter, ScoredChunk, Store

# Fusion weights over (chunk cosine, best-sentence cosine, BM25 / best BM25 among candidates).
# Measured on the shared SQuAD articles (see README, "How retrieval was chosen").
HYBRID_WEIGHTS = (0.3, 1.0, 0.25)

Score = TypeVar("Score", float, np.ndarray)


def fuse(dense: Score, sentence: Score, bm25_norm: Score) -> Score:
    """The hybrid score: the one place the fusion formula lives (floats or whole arrays)."""
    wd, ws, wb = HYBRID_WEIGHTS
    return wd * dense + ws * sentence + wb * bm25_norm


@dataclass(frozen=True)
class Ranked:
    chunk: ScoredChunk
    score: float  # the score of the chosen mode
    dense: float  # cosine of the chunk vector
    sentence: float  # cosine of the chunk's best sentence
    bm25: float  # raw BM25
    bm25_norm: float  # BM25 divided by the best BM25 among candidates

    @property
    def fused(self) -> float:
        """The hybrid score, whatever mode ranked it."""
        return fuse(self.dense, self.sentence, self.bm25_norm)


@dataclass(frozen=True)
class Retrieval:
    ranked: list[Ranked]  # best first


def retrieve(
    store: Store,
    query_vector: np.ndarray,
    query_terms: Sequence[str],
    *,
    mode: str = "hybrid",
    candidates: int = 30,
    where: Filter = EVERYTHING,
) -> Retrieval:
    """Rank chunks for one query. Each signal nominates candidates; all are scored on all."""
    terms = list(dict.fromkeys(query_terms))
    pool: dict[str, None] = {}
    for chunk_id, _ in store.search_chunks(query_vector, candidates, where):
        pool[chunk_id] = None
    for chunk_id, _ in store.search_sentences(query_vector, candidates * 2, where):
        pool[chunk_id] = None
    for chunk_id, _ in store.keyword_search(terms, candidates, where):
        pool[chunk_id] = None
    if not pool:
        return Retrieval([])
    ids = sorted(pool)
    fetched = store.fetch(ids, query_vector)
    ids = [i for i in ids if i in fetched]  # a chunk deleted between the searches and now
    bm25_of = store.bm25_scores(terms, ids)

    dense = np.array([fetched[i].cosine for i in ids], dtype=np.float32)
    best_sentence = np.array(
        [max(fetched[i].sentence_cosines, default=-1.0) for i in ids], dtype=np.float32
    )
    bm25 = np.array([bm25_of.get(i, 0.0) for i in ids], dtype=np.float32)
    top_bm25 = float(bm25.max()) if len(bm25) else 0.0
    bm25_norm = bm25 / top_bm25 if top_bm25 > 0 else np.zeros_like(bm25)

    if mode == "dense":
        score = dense
    elif mode == "sentence":
        score = best_sentence
    elif mode == "bm25":
        score = bm25 + 1e-3 * dense  # dense only breaks ties among equal (often zero) BM25
    else:
        score = fuse(dense, best_sentence, bm25_norm)
    order = np.argsort(-score, kind="stable")
    return Retrieval(
        [
            Ranked(
                chunk=fetched[ids[i]],
                score=float(score[i]),
                dense=float(dense[i]),
                sentence=float(best_sentence[i]),
                bm25=float(bm25[i]),
                bm25_norm=float(bm25_norm[i]),
            )
            for i in order
        ]
    )
