"""The embedded store: one folder with FAISS vectors, a BM25 index and a manifest; no server."""

from qa.stores.embedded.store import EmbeddedStore

__all__ = ["EmbeddedStore"]
