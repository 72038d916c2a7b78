"""Question to ranked chunks: dense similarity, BM25 and best-sentence similarity, fused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qa.store import IndexData

# Fusion weights over (chunk cosine, best-sentence cosine, BM25 / best BM25 among candidates).
# Measured on the shared SQuAD articles (see README, "How retrieval was chosen").
HYBRID_WEIGHTS = (0.3, 1.0, 0.25)


@dataclass(frozen=True)
class Ranked:
    chunk: int  # position in IndexData.chunks
    score: float  # the score of the chosen mode
    dense: float  # cosine of the chunk vector
    sentence: float  # cosine of the chunk's best sentence
    bm25: float  # raw BM25
    bm25_norm: float  # BM25 divided by the best BM25 among candidates


@dataclass(frozen=True)
class Retrieval:
    ranked: list[Ranked]  # best first
    sentence_scores: dict[int, float]  # cosine of every sentence of every candidate chunk


def retrieve(
    data: IndexData,
    query_vector: np.ndarray,
    query_terms: Sequence[str],
    *,
    mode: str = "hybrid",
    candidates: int = 30,
) -> Retrieval:
    """Rank chunks for one query. Each signal nominates candidates; all are scored on all."""
    n_chunks = len(data.chunks)
    if n_chunks == 0:
        return Retrieval([], {})
    q = np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32)
    k = min(candidates, n_chunks)
    pool: set[int] = set()

    _, chunk_ids = data.chunk_index.search(q, k)
    pool.update(int(i) for i in chunk_ids[0] if i >= 0)
    n_sent = min(candidates * 2, len(data.sentences))
    if n_sent:
        _, sent_ids = data.sentence_index.search(q, n_sent)
        pool.update(int(data.sentence_chunks[i]) for i in sent_ids[0] if i >= 0)
    bm25_all = _bm25_scores(data, query_terms)
    if bm25_all is not None:
        top = np.argpartition(-bm25_all, k - 1)[:k] if k < n_chunks else np.arange(n_chunks)
        pool.update(int(i) for i in top if bm25_all[i] > 0)

    ids = np.array(sorted(pool), dtype=np.int64)
    dense = data.chunk_index.reconstruct_batch(ids) @ q[0]
    sentence_scores: dict[int, float] = {}
    best_sentence = np.full(len(ids), -1.0, dtype=np.float32)
    first = data.first_sentence
    spans = [(int(first[c]), int(first[c + 1])) for c in ids]
    sent_rows = np.concatenate([np.arange(a, b) for a, b in spans]) if spans else np.array([])
    if len(sent_rows):
        sims = data.sentence_index.reconstruct_batch(sent_rows.astype(np.int64)) @ q[0]
        sentence_scores = dict(zip(sent_rows.tolist(), sims.tolist(), strict=True))
        offset = 0
        for n, (a, b) in enumerate(spans):
            if b > a:
                best_sentence[n] = sims[offset : offset + b - a].max()
            offset += b - a
    bm25 = bm25_all[ids] if bm25_all is not None else np.zeros(len(ids), dtype=np.float32)
    top_bm25 = float(bm25.max()) if len(bm25) else 0.0
    bm25_norm = bm25 / top_bm25 if top_bm25 > 0 else np.zeros_like(bm25)

    if mode == "dense":
        score = dense
    elif mode == "sentence":
        score = best_sentence
    elif mode == "bm25":
        score = bm25 + 1e-3 * dense  # dense only breaks ties among equal (often zero) BM25
    else:
        wd, ws, wb = HYBRID_WEIGHTS  # the same formula as fused(), on whole arrays
        score = wd * dense + ws * best_sentence + wb * bm25_norm
    order = np.argsort(-score, kind="stable")
    ranked = [
        Ranked(
            chunk=int(ids[i]),
            score=float(score[i]),
            dense=float(dense[i]),
            sentence=float(best_sentence[i]),
            bm25=float(bm25[i]),
            bm25_norm=float(bm25_norm[i]),
        )
        for i in order
    ]
    return Retrieval(ranked, sentence_scores)


def fused(hit: Ranked) -> float:
    """The hybrid score of a ranked chunk, whatever mode ranked it."""
    wd, ws, wb = HYBRID_WEIGHTS
    return wd * hit.dense + ws * hit.sentence + wb * hit.bm25_norm


def _bm25_scores(data: IndexData, query_terms: Sequence[str]) -> np.ndarray | None:
    vocab = data.bm25.vocab_dict
    known = [t for t in query_terms if t in vocab]
    if not known:
        return None
    return np.asarray(data.bm25.get_scores(known), dtype=np.float32)


def idf(data: IndexData, term: str) -> float:
    """Inverse document frequency of a term over chunks; unseen terms get the highest."""
    n = len(data.chunks)
    term_id = data.bm25.vocab_dict.get(term)
    indptr = data.bm25.scores["indptr"]
    df = 0
    if term_id is not None and term_id + 1 < len(indptr):
        df = int(indptr[term_id + 1] - indptr[term_id])
    return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
