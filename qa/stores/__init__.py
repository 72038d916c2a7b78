"""Where a knowledge base is kept: the store protocol and the two engines behind it.

`open_store("kb-folder")` gives the embedded store (FAISS + BM25 files, no server);
`open_store("postgresql://...")` gives the PostgreSQL + pgvector store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.stores.base import (
    EVERYTHING,
    DocumentUpdate,
    Filter,
    ScoredChunk,
    Store,
    StoreBusyError,
    StoreError,
    StoreInfo,
)

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "EVERYTHING",
    "DocumentUpdate",
    "Filter",
    "ScoredChunk",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreInfo",
    "is_url",
    "open_store",
]


def is_url(spec: str | PathLike[str]) -> bool:
    return str(spec).startswith(("postgresql://", "postgres://"))


def open_store(spec: str | PathLike[str], *, approximate_above: int = 100_000) -> Store:
    """The store a folder or a postgresql:// URL names (nothing is read or connected yet)."""
    if is_url(spec):
        from qa.stores.postgres import PostgresStore

        return PostgresStore(str(spec))
    from qa.stores.embedded import EmbeddedStore

    return EmbeddedStore(spec, approximate_above=approximate_above)
