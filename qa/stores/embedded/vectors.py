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
    """Exact inner-product search up to `approximate_above` vectors, HNSW beyond."""
    filler = Filler(len(vectors), vectors.shape[1], approximate_above, progress, name)
    filler.add(vectors)
    return filler.close()


class Filler:
    """An index of `total` vectors, filled piece by piece: exact up to `approximate_above`
    vectors, HNSW beyond. Building the HNSW graph is the slow part of a big build (1M vectors
    took over 9 minutes on 2 cores), so it is fed in slices under a progress bar; a flat index
    takes each piece as it comes."""

    STEP = 20_000

    def __init__(
        self, total: int, dim: int, approximate_above: int, progress: bool, name: str
    ) -> None:
        import faiss
        from tqdm import tqdm

        self.index: Any
        self.pending: list[np.ndarray] = []
        self.waiting = 0
        if total <= approximate_above:
            self.index = faiss.IndexFlatIP(dim)
            self.step = 1
            self.bar = None
            return
        self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        self.index.hnsw.efSearch = HNSW_EF_SEARCH
        self.step = self.STEP
        self.bar = tqdm(total=total, desc=f"HNSW graph ({name})", unit="vec", disable=not progress)

    def add(self, vectors: np.ndarray) -> None:
        if not len(vectors):
            return
        self.pending.append(np.ascontiguousarray(vectors, dtype=np.float32))
        self.waiting += len(vectors)
        if self.waiting >= self.step:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.index.add(np.concatenate(self.pending))
            if self.bar is not None:
                self.bar.update(self.waiting)
        self.pending, self.waiting = [], 0

    def close(self) -> Any:
        self._flush()
        if self.bar is not None:
            self.bar.close()
        return self.index


def write_faiss(index: Any, path: str) -> None:
    import faiss

    faiss.write_index(index, path)


def read_faiss(path: str) -> Any:
    import faiss

    index = faiss.read_index(path)
    if hasattr(index, "hnsw"):  # the search beam is this code's choice, not the file's
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


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


class Stack:
    """A base index (exact or HNSW) and the vectors of later commits, as one row space.

    Rows below `base.ntotal` are the base's; the rest are in `extra`, an exact index (added
    to a flat base directly, so `extra` is only there beside an HNSW graph, which a commit
    leaves untouched rather than rebuild for a few new vectors).
    """

    def __init__(self, base: Any, parts: list[Any]) -> None:
        import faiss

        self.base = base
        self.extra: Any = None
        for part in parts:
            if not part.ntotal:
                continue
            if not hasattr(base, "hnsw"):
                base.add(all_vectors(part))
                continue
            if self.extra is None:
                self.extra = faiss.IndexFlatIP(base.d)
            self.extra.add(all_vectors(part))

    @property
    def ntotal(self) -> int:
        return int(self.base.ntotal + (self.extra.ntotal if self.extra is not None else 0))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        split = self.base.ntotal
        if self.extra is None or not len(ids) or int(ids.max()) < split:
            return rows(self.base, ids)
        out = np.zeros((len(ids), self.base.d), dtype=np.float32)
        low = ids < split
        out[low] = rows(self.base, ids[low])
        out[~low] = rows(self.extra, ids[~low] - split)
        return out

    def search(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        split = self.base.ntotal
        scores, found = search(self.base, vector, k, None if allowed is None else allowed[:split])
        if self.extra is None:
            return scores, found
        more, more_found = search(
            self.extra, vector, k, None if allowed is None else allowed[split:]
        )
        scores = np.concatenate([scores, more])
        found = np.concatenate([found, more_found + split])
        best = np.argsort(-scores, kind="stable")[:k]
        return scores[best], found[best]
