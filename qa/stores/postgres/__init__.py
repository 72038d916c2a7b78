"""The PostgreSQL store: pgvector HNSW for vectors, full-text search rescored with BM25."""

from qa.stores.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
