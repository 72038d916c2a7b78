"""Writing the PostgreSQL store: one transaction per run, under an advisory lock.

Readers see the knowledge base before the run or after it, never half a document: every change
of a `qa index` or `qa sync` run commits together. Two runs on one store cannot interleave: the
second fails at once (an advisory lock named after the schema).

Rows go in with binary COPY, a few thousand at a time. Keeping the search indexes (two HNSW
graphs, one GIN) up to date row by row costs far more than the rows themselves, so a large load
builds them once, after its rows, inside the same transaction:

- into an empty store (a first build, `--rebuild`) the indexes are only created at the end.
  Readers are never blocked: they see the empty store until the commit;
- into a store that holds rows, a run that has written more than `BULK_MIN_CHUNKS` chunks and
  `BULK_SHARE` of the chunks already stored drops the indexes at that point and recreates them
  at the end. Dropping an index locks its table, so from then until the commit readers wait
  (instead of reading the old state); the drop waits at most `LOCK_WAIT` for running
  searches, else the run keeps the indexes and goes on row by row;
- smaller runs write with the indexes in place, which keeps readers reading throughout.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from qa.stores.base import DocumentUpdate, StoreBusyError, StoreError, StoreInfo
from qa.stores.postgres import schema as sql

if TYPE_CHECKING:
    from qa.stores.postgres.store import PostgresStore

FLUSH_ROWS = 4000  # chunk and sentence rows buffered before one COPY
BULK_MIN_CHUNKS = 5000  # a run into a non-empty store builds its indexes after its rows past
BULK_SHARE = 0.5  # this many chunks and this share of the chunks stored before it
LOCK_WAIT = "2s"  # how long dropping the indexes may wait for running searches
BUILD_MEMORY = "1GB"  # maintenance_work_mem for the index builds, unless the server's is larger

# The columns each COPY fills, with their types (binary COPY sends each in its type's format),
# in the order of the buffers.
_COPIED = {
    "qa_documents": "id text, title text, source text, url text, revision text, groups text[], "
    "sha256 text, chars int4, sections jsonb",
    "qa_chunks": "id text, doc_id text, ordinal int4, start_at int4, end_at int4, text text, "
    "groups text[], embedding vector, n_terms int4, tf jsonb, tsv tsvector",
    "qa_sentences": "id text, chunk_id text, doc_id text, ordinal int4, start_at int4, "
    "end_at int4, groups text[], embedding vector, entities jsonb",
}


class PostgresWriter:
    def __init__(self, conn: Any, schema: str, stored_chunks: int, empty: bool) -> None:
        self.conn = conn
        self.schema = schema
        self.stored_chunks = stored_chunks  # when the run began
        self.empty = empty  # no document stored when the run began
        self.deferred = empty  # the search indexes are built at the end
        self.tried_deferring = self.deferred
        self.written: set[str] = set()  # documents written in this run
        self.pending: set[str] = set()  # ... and still in the buffers
        self.rows: dict[str, list[tuple[Any, ...]]] = {"docs": [], "chunks": [], "sentences": []}
        self.df: Counter[str] = Counter()
        self.chunks = self.terms = self.inserted = 0

    def delete(self, doc_id: str) -> None:
        """Remove a document with its chunks and sentences, and its terms from the statistics."""
        if doc_id in self.pending:
            self.flush()
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
        doc = update.document
        # A store empty when the run began holds only what this run wrote.
        if not self.empty or doc.id in self.written:
            self.delete(doc.id)
        groups = list(doc.groups)
        self.rows["docs"].append(
            (doc.id, doc.title, doc.source, doc.url, doc.revision, groups, update.sha256,
             len(doc.text), [list(s) for s in doc.sections])
        )  # fmt: skip
        for n, (chunk, terms) in enumerate(zip(update.chunks, update.terms, strict=True)):
            tf = Counter(terms)
            # bm25s counts a chunk with no terms as one placeholder term: so does this store.
            n_terms = max(len(terms), 1)
            self.terms += n_terms
            self.df.update(tf.keys())
            self.rows["chunks"].append(
                (chunk.id, doc.id, n, chunk.start, chunk.end, chunk.text, groups,
                 update.chunk_vectors[n], n_terms, dict(tf), tf.keys())
            )  # fmt: skip
        self.chunks += len(update.chunks)
        ordinal: Counter[str] = Counter()
        for n, s in enumerate(update.sentences):
            self.rows["sentences"].append(
                (s.id, s.chunk_id, doc.id, ordinal[s.chunk_id], s.start, s.end, groups,
                 update.sentence_vectors[n], [list(e) for e in s.entities])
            )  # fmt: skip
            ordinal[s.chunk_id] += 1
        self.written.add(doc.id)
        self.pending.add(doc.id)
        if len(self.rows["chunks"]) + len(self.rows["sentences"]) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """COPY the buffered rows in; add their terms and sizes to the statistics."""
        if not self.rows["docs"]:
            return
        self.inserted += self.chunks
        if not self.tried_deferring and self.inserted >= max(
            BULK_MIN_CHUNKS, BULK_SHARE * self.stored_chunks
        ):
            self.defer_indexes()
        cur = self.conn.cursor()
        for (table, spec), rows in zip(_COPIED.items(), self.rows.values(), strict=True):
            columns, types = zip(*(c.split() for c in spec.split(", ")), strict=True)
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(list(types))
                for row in rows:
                    cp.write_row(row)
            rows.clear()
        cur.execute(
            "INSERT INTO qa_terms (term, df) SELECT * FROM unnest(%s::text[], %s::int[]) "
            "ON CONFLICT (term) DO UPDATE SET df = qa_terms.df + EXCLUDED.df",
            (list(self.df), list(self.df.values())),
        )
        self._stats(self.chunks, self.terms)
        self.df.clear()
        self.pending.clear()
        self.chunks = self.terms = 0

    def defer_indexes(self) -> None:
        """Drop the search indexes until the end of the run, if running searches let us."""
        import psycopg

        self.tried_deferring = True
        try:
            with self.conn.transaction():  # a savepoint: a lock timeout undoes only this
                self.conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                names = _qualified(self.schema, sql.search_indexes(self.schema))
                self.conn.execute(f"DROP INDEX IF EXISTS {', '.join(names)}")
                self.conn.execute("RESET lock_timeout")
        except psycopg.errors.LockNotAvailable:
            return
        self.deferred = True

    def finish(self) -> None:
        """Write what is buffered; build the indexes the run deferred."""
        self.flush()
        if self.deferred:
            self.conn.execute(
                "SELECT set_config('maintenance_work_mem', greatest(pg_size_bytes(%s), "
                "pg_size_bytes(current_setting('maintenance_work_mem'))) / 1024 || 'kB', true)",
                (BUILD_MEMORY,),
            )
            for statement in sql.search_indexes(self.schema).values():
                self.conn.execute(statement)
        self.conn.execute("DELETE FROM qa_terms WHERE df <= 0")

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
        for statement in sql.tables(store.schema, info.dim):
            conn.execute(statement)
        conn.execute(f"SET search_path = {store.schema}, public")
        indexes = sql.search_indexes(store.schema)
        found = conn.execute("SELECT EXISTS (SELECT FROM qa_documents)").fetchone()
        empty = not (found and found[0])
        if not empty:
            for statement in indexes.values():  # a store from before they existed
                conn.execute(statement)
        else:  # nothing to search yet: the indexes come with the first rows
            conn.execute(f"DROP INDEX IF EXISTS {', '.join(_qualified(store.schema, indexes))}")
        row = conn.execute("SELECT (value->>'chunks')::bigint FROM qa_meta WHERE key = 'stats'")
        stored_chunks = int((row.fetchone() or (0,))[0] or 0)
        _register(conn)
        conn.autocommit = False
        with conn.transaction():
            conn.execute(
                "INSERT INTO qa_meta (key, value) VALUES ('info', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (Jsonb(info.to_dict()),),
            )
            writer = PostgresWriter(conn, store.schema, stored_chunks, empty)
            yield writer
            writer.finish()
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


def _qualified(schema: str, names: Any) -> list[str]:
    return [f"{schema}.{name}" for name in names]


class _LexemesDumper(Dumper):
    """A tsvector in PostgreSQL's binary format from an iterable of lexemes, as
    `array_to_tsvector` makes it: distinct, sorted, no positions."""

    format = Format.BINARY
    oid = postgres.types["tsvector"].oid

    def dump(self, obj: Any) -> bytes:
        lexemes = sorted({str(t).encode() for t in obj})
        # Each lexeme: its bytes, a NUL, then a 16-bit count of positions (0).
        return struct.pack(">i", len(lexemes)) + b"".join(t + b"\0\0\0" for t in lexemes)


def _register(conn: Any) -> None:
    """Binary dumpers for COPY: pgvector's for vectors, ours for tsvectors."""
    from pgvector.psycopg import register_vector

    register_vector(conn)
    conn.adapters.register_dumper(None, _LexemesDumper)
