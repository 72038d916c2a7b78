"""Writing the PostgreSQL store: one transaction per run, under an advisory lock.

Readers see the knowledge base before the run or after it, never half a document: every change
of a `qa index` or `qa sync` run commits together. Two runs on one store cannot interleave: the
second fails at once (an advisory lock named after the schema).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.stores.base import DocumentUpdate, StoreBusyError, StoreError, StoreInfo
from qa.stores.postgres import schema as sql

if TYPE_CHECKING:
    from qa.stores.postgres.store import PostgresStore


class PostgresWriter:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def delete(self, doc_id: str) -> None:
        """Remove a document with its chunks and sentences, and its terms from the statistics."""
        cur = self.conn.cursor()
        cur.execute(
            "UPDATE qa_terms t SET df = t.df - x.n FROM ("
            "  SELECT k AS term, count(*) AS n FROM qa_chunks c, jsonb_object_keys(c.tf) k"
            "  WHERE c.doc_id = %s GROUP BY k) x WHERE t.term = x.term",
            (doc_id,),
        )
        cur.execute(
            "SELECT count(*), coalesce(sum(n_terms), 0) FROM qa_chunks WHERE doc_id = %s",
            (doc_id,),
        )
        chunks, terms = cur.fetchone()
        if chunks:
            self._stats(-int(chunks), -int(terms))
        cur.execute("DELETE FROM qa_documents WHERE id = %s", (doc_id,))

    def upsert(self, update: DocumentUpdate) -> None:
        from psycopg.types.json import Jsonb

        doc = update.document
        self.delete(doc.id)
        cur = self.conn.cursor()
        groups = list(doc.groups)
        cur.execute(
            "INSERT INTO qa_documents (id, title, source, url, revision, groups, sha256, chars, "
            "sections) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (doc.id, doc.title, doc.source, doc.url, doc.revision, groups, update.sha256,
             len(doc.text), Jsonb([list(s) for s in doc.sections])),
        )  # fmt: skip
        chunk_rows = []
        total_terms = 0
        for n, (chunk, terms) in enumerate(zip(update.chunks, update.terms, strict=True)):
            tf = Counter(terms)
            # bm25s counts a chunk with no terms as one placeholder term: so does this store.
            n_terms = max(len(terms), 1)
            total_terms += n_terms
            chunk_rows.append(
                (chunk.id, doc.id, n, chunk.start, chunk.end, chunk.text, groups,
                 _vec(update.chunk_vectors[n]), n_terms, Jsonb(dict(tf)), sorted(tf))
            )  # fmt: skip
        cur.executemany(
            "INSERT INTO qa_chunks (id, doc_id, ordinal, start_at, end_at, text, groups, "
            "embedding, n_terms, tf, tsv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "array_to_tsvector(%s::text[]))",
            chunk_rows,
        )
        ordinal: Counter[str] = Counter()
        sentence_rows = []
        for n, s in enumerate(update.sentences):
            sentence_rows.append(
                (s.id, s.chunk_id, doc.id, ordinal[s.chunk_id], s.start, s.end, groups,
                 _vec(update.sentence_vectors[n]), Jsonb([list(e) for e in s.entities]))
            )  # fmt: skip
            ordinal[s.chunk_id] += 1
        cur.executemany(
            "INSERT INTO qa_sentences (id, chunk_id, doc_id, ordinal, start_at, end_at, groups, "
            "embedding, entities) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            sentence_rows,
        )
        cur.execute(
            "INSERT INTO qa_terms (term, df) SELECT k, count(*) FROM qa_chunks c, "
            "jsonb_object_keys(c.tf) k WHERE c.doc_id = %s GROUP BY k "
            "ON CONFLICT (term) DO UPDATE SET df = qa_terms.df + EXCLUDED.df",
            (doc.id,),
        )
        self._stats(len(chunk_rows), total_terms)

    def set_state(self, key: str, value: Any) -> None:
        from psycopg.types.json import Jsonb

        self.conn.execute(
            "INSERT INTO qa_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (f"state:{key}", Jsonb(value)),
        )

    def _stats(self, chunks: int, terms: int) -> None:
        self.conn.execute(
            "UPDATE qa_meta SET value = jsonb_build_object("
            "'chunks', (value->>'chunks')::bigint + %s, 'terms', (value->>'terms')::bigint + %s) "
            "WHERE key = 'stats'",
            (chunks, terms),
        )


@contextmanager
def writing(
    store: PostgresStore, info: StoreInfo, *, reset: bool = False
) -> Iterator[PostgresWriter]:
    import psycopg
    from psycopg.types.json import Jsonb

    try:
        conn = psycopg.connect(store.conninfo, autocommit=True)
    except psycopg.OperationalError as error:
        raise StoreError(f"cannot connect to PostgreSQL at {store.location} ({error})") from None
    try:
        _ensure_extension(conn, store.location)
        locked = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))", (f"qa-index:{store.schema}",)
        ).fetchone()
        if not locked or not locked[0]:
            raise StoreBusyError(
                f"another 'qa index' is writing to {store.location} (schema {store.schema}); "
                "wait for it to finish and try again"
            )
        if reset:
            conn.execute(sql.drop(store.schema))
        for statement in sql.ddl(store.schema, info.dim):
            conn.execute(statement)
        conn.execute(f"SET search_path = {store.schema}, public")
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.autocommit = False
        with conn.transaction():
            conn.execute(
                "INSERT INTO qa_meta (key, value) VALUES ('info', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (Jsonb(info.to_dict()),),
            )
            writer = PostgresWriter(conn)
            yield writer
            conn.execute("DELETE FROM qa_terms WHERE df <= 0")
    finally:
        conn.close()  # also releases the advisory lock
        # Pooled connections opened before the vector extension existed cannot send vectors:
        # the next read opens new ones.
        store.close()


def _ensure_extension(conn: Any, location: str) -> None:
    import psycopg

    present = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if present:
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as error:
        raise StoreError(
            f"the pgvector extension is not installed in {location} and this user cannot "
            f"create it ({str(error).strip().splitlines()[0]}); ask an administrator to run "
            "CREATE EXTENSION vector; in that database (pgvector 0.7 or newer)"
        ) from None


def _vec(row: np.ndarray) -> Any:
    from pgvector import Vector

    return Vector(np.asarray(row, dtype=np.float32))
