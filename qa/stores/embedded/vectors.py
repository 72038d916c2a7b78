"""FAISS indexes for the embedded store: exact up to a size, HNSW beyond, searched with filters."""

from __future__ import annotations

from typing import Any

import numpy as np

# HNSW graph degree, build beam and search beam. bench/RESULTS.md measured the search beam: at
# 100k MiniLM-like vectors, efSearch 512 kept the exact first hit 95-100% of the time where 128
# lost up to 27%, for 1.7 ms a search instead of 0.5 (at 1M, 6 ms instead of 1.7).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 512


def build_faiss(
    vectors: np.ndarray, approximate_above: int, *, progress: bool = False, name: str = "vectors"
) -> Any:
    """Exact inner-product search up to `approximate_above` vectors, HNSW beyond.

    Building the HNSW graph is the slow part of a big build (1M vectors took over 9 minutes on
    2 cores), so it goes in slices under a progress bar; a flat index is a copy.
    """
    import faiss

    dim = vectors.shape[1]
    index: Any
    if len(vectors) <= approximate_above:
        index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index
    index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    from tqdm import tqdm

    step = 20_000
    with tqdm(
        total=len(vectors), desc=f"HNSW graph ({name})", unit="vec", disable=not progress
    ) as bar:
        for start in range(0, len(vectors), step):
            index.add(np.ascontiguousarray(vectors[start : start + step], dtype=np.float32))
            bar.update(min(step, len(vectors) - start))
    return index


def read_faiss(path: str) -> Any:
    import faiss

    index = faiss.read_index(path)
    if hasattr(index, "hnsw"):  # the search beam is this code's choice, not the file's
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def serialize(index: Any) -> bytes:
    import faiss

    return bytes(faiss.serialize_index(index).tobytes())


def kind(index: Any) -> str:
    return type(index).__name__


def all_vectors(index: Any) -> np.ndarray:
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


def rows(index: Any, ids: np.ndarray) -> np.ndarray:
    if len(ids) == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(index.reconstruct_batch(ids.astype(np.int64)), dtype=np.float32)


def search(
    index: Any, vector: np.ndarray, k: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the k nearest vectors, only among `allowed` rows when given."""
    import faiss

    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    q = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
    if allowed is None:
        scores, found = index.search(q, k)
    else:
        selector = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
        if hasattr(index, "hnsw"):
            params: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = HNSW_EF_SEARCH
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        scores, found = index.search(q, k, params=params)
    keep = found[0] >= 0
    return scores[0][keep], found[0][keep].astype(np.int64)
