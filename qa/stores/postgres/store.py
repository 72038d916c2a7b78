"""The PostgreSQL store's reads: every search is one SQL statement with its filter inside.

Works against a primary or a streaming read replica alike: reads never write, and every
question reads the database's committed state, so a document indexed on the primary is
answerable through any process as soon as it reaches the replica.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from qa.stores.base import (
    Filter,
    ScoredChunk,
    StoreError,
    StoreInfo,
    Writer,
    bm25_idf,
    feedback_from,
    feedback_record,
)
from qa.stores.postgres import schema as sql
from qa.types import Chunk, DocumentInfo, Feedback, Sentence

# Connections kept per process: one question uses one at a time.
POOL_SIZE = 8
# Chunks keyword_search scores with BM25 at most (scoring reads each one's term counts).
KEYWORD_CANDIDATES = 500


class PostgresStore:
    """A knowledge base in PostgreSQL with pgvector. Connects on first use."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.conninfo, self.schema, self._printable = sql.split_url(url)
        self.pool_size = pool_size
        self._pool: Any = None

    @property
    def location(self) -> str:
        return self._printable

    def rebuild_hint(self) -> str:
        return f"rebuild it with: qa index PATH... --store {self._printable} --rebuild"

    # ----- connections -----------------------------------------------------------------------
    @property
    def pool(self) -> Any:
        if self._pool is None:
            from psycopg_pool import ConnectionPool

            pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True},
                configure=self._configure,
                open=False,
                name=f"qa-{self.schema}",
            )
            try:
                pool.open(wait=True, timeout=10)
            except Exception as error:
                pool.close()
                raise StoreError(
                    f"cannot connect to PostgreSQL at {self._printable} ({_reason(error)})"
                ) from None
            self._pool = pool
        return self._pool

    def _configure(self, conn: Any) -> None:
        conn.execute(
            f"SET search_path = {self.schema}, public; "
            f"SET hnsw.ef_search = {sql.HNSW_EF_SEARCH}; "
            "SET hnsw.iterative_scan = relaxed_order"
        )
        self._register(conn)

    @staticmethod
    def _register(conn: Any) -> None:
        from pgvector.psycopg import register_vector

        # No vector extension yet: the first `qa index` creates it.
        with contextlib.suppress(Exception):
            register_vector(conn)

    def _query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self.pool.connection() as conn:
                return list(conn.execute(query, params, binary=True).fetchall())
        except psycopg.errors.UndefinedTable:
            raise StoreError(
                f"no knowledge base in {self._printable} (schema {self.schema}); build one "
                f"with: qa index PATH... --store {self._printable}"
            ) from None
        except psycopg.Error as error:  # unreachable, read-only replica, ...
            raise StoreError(f"PostgreSQL at {self._printable} failed ({_reason(error)})") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ----- description ---------------------------------------------------------------------
    def info(self) -> StoreInfo | None:
        exists = self._query("SELECT to_regclass(%s) IS NOT NULL", (f"{self.schema}.qa_meta",))
        if not exists[0][0]:
            return None
        rows = self._query("SELECT value FROM qa_meta WHERE key = 'info'")
        return StoreInfo.from_dict(rows[0][0]) if rows else None

    def documents(self) -> list[DocumentInfo]:
        rows = self._query(f"SELECT {_DOCUMENT_COLUMNS} FROM qa_documents ORDER BY id")
        return [_document(row) for row in rows]

    def document_info(self, doc_ids: Iterable[str]) -> dict[str, DocumentInfo]:
        rows = self._query(
            f"SELECT {_DOCUMENT_COLUMNS} FROM qa_documents WHERE id = ANY(%s)",
            (list(doc_ids),),
        )
        return {row[0]: _document(row) for row in rows}

    def counts(self) -> dict[str, int]:
        row = self._query(
            "SELECT (SELECT count(*) FROM qa_documents), (SELECT count(*) FROM qa_chunks), "
            "(SELECT count(*) FROM qa_sentences)"
        )[0]
        return {"documents": int(row[0]), "chunks": int(row[1]), "sentences": int(row[2])}

    def state(self, key: str) -> Any:
        rows = self._query("SELECT value FROM qa_meta WHERE key = %s", (f"state:{key}",))
        return rows[0][0] if rows else None

    # ----- searching -----------------------------------------------------------------------
    def search_chunks(self, vector: np.ndarray, k: int, where: Filter) -> list[tuple[str, float]]:
        condition, params = sql.filter_sql(where)
        rows = self._query(
            f"SELECT id, -(embedding <#> %(q)s) AS score FROM qa_chunks WHERE {condition} "
            "ORDER BY embedding <#> %(q)s LIMIT %(k)s",
            {**params, "q": _vector(vector), "k": k},
        )
        return sorted(((r[0], float(r[1])) for r in rows), key=lambda r: -r[1])

    def search_sentences(
        self, vector: np.ndarray, k: int, where: Filter
    ) -> list[tuple[str, float]]:
        condition, params = sql.filter_sql(where)
        rows = self._query(
            f"SELECT chunk_id, -(embedding <#> %(q)s) AS score FROM qa_sentences "
            f"WHERE {condition} ORDER BY embedding <#> %(q)s LIMIT %(k)s",
            {**params, "q": _vector(vector), "k": k},
        )
        best: dict[str, float] = {}
        for chunk, score in sorted(rows, key=lambda r: -float(r[1])):
            best.setdefault(chunk, float(score))
        return list(best.items())

    def keyword_search(
        self, terms: Sequence[str], k: int, where: Filter
    ) -> list[tuple[str, float]]:
        """The k best chunks by BM25 among at most `KEYWORD_CANDIDATES` that hold a query term,
        taken rarest term first (through the GIN index): exact whenever the query's terms
        occur in that many chunks or fewer all told, else chunks that hold only the common
        terms may be left out."""
        if not terms or k <= 0:
            return []
        condition, params = sql.filter_sql(where, "c")
        rows = self._query(
            _BM25.format(match=f"c.id = ANY(ARRAY({_CANDIDATES.format(where=condition)}))")
            + " ORDER BY score DESC, c.id LIMIT %(k)s",
            {**params, **self._bm25_params(terms), "k": k, "cap": max(KEYWORD_CANDIDATES, k)},
        )
        return [(r[0], float(r[1])) for r in rows if float(r[1]) > 0]

    def bm25_scores(self, terms: Sequence[str], chunk_ids: Sequence[str]) -> dict[str, float]:
        scores = dict.fromkeys(chunk_ids, 0.0)
        if not terms or not chunk_ids:
            return scores
        rows = self._query(
            _BM25.format(match="c.id = ANY(%(ids)s)"),
            {**self._bm25_params(terms), "ids": list(chunk_ids)},
        )
        scores.update((r[0], float(r[1])) for r in rows)
        return scores

    @staticmethod
    def _bm25_params(terms: Sequence[str]) -> dict[str, Any]:
        return {"terms": list(terms), "k1": sql.K1, "b": sql.B}

    def idf(self, terms: Iterable[str]) -> dict[str, float]:
        wanted = list(dict.fromkeys(terms))
        rows = self._query(
            "SELECT (SELECT (value->>'chunks')::int FROM qa_meta WHERE key = 'stats'), "
            "ARRAY(SELECT term FROM qa_terms WHERE term = ANY(%(t)s) ORDER BY term), "
            "ARRAY(SELECT df FROM qa_terms WHERE term = ANY(%(t)s) ORDER BY term)",
            {"t": wanted},
        )
        n, found_terms, found_df = rows[0]
        df = dict(zip(found_terms or [], found_df or [], strict=True))
        return {t: bm25_idf(int(n or 0), int(df.get(t, 0))) for t in wanted}

    def fetch(self, chunk_ids: Sequence[str], vector: np.ndarray) -> dict[str, ScoredChunk]:
        if not chunk_ids:
            return {}
        rows = self._query(
            "SELECT c.id, c.doc_id, c.text, c.start_at, c.end_at, -(c.embedding <#> %(q)s), "
            "s.id, s.start_at, s.end_at, -(s.embedding <#> %(q)s), s.entities "
            "FROM qa_chunks c LEFT JOIN qa_sentences s ON s.chunk_id = c.id "
            "WHERE c.id = ANY(%(ids)s) ORDER BY c.id, s.ordinal",
            {"q": _vector(vector), "ids": list(chunk_ids)},
        )
        chunks: dict[str, Chunk] = {}
        cosines: dict[str, float] = {}
        sentences: dict[str, list[tuple[Sentence, float]]] = {}
        for cid, doc, text, start, end, cos, sid, s_start, s_end, s_cos, found in rows:
            if cid not in chunks:
                chunks[cid] = Chunk(cid, doc, text, start, end)
                cosines[cid] = float(cos)
                sentences[cid] = []
            if sid is not None:
                spans = tuple((int(a), int(b), str(label)) for a, b, label in found or ())
                sentences[cid].append((Sentence(sid, cid, s_start, s_end, spans), float(s_cos)))
        return {
            cid: ScoredChunk(
                chunk=chunk,
                cosine=cosines[cid],
                sentences=tuple(s for s, _ in sentences[cid]),
                sentence_cosines=tuple(c for _, c in sentences[cid]),
            )
            for cid, chunk in chunks.items()
        }

    # ----- feedback ------------------------------------------------------------------------
    def add_feedback(self, feedback: Feedback) -> None:
        from psycopg.types.json import Jsonb

        self._query(
            "INSERT INTO qa_feedback (record) VALUES (%s) RETURNING id",
            (Jsonb(feedback_record(feedback)),),
        )

    def feedback(self) -> list[Feedback]:
        rows = self._query("SELECT record FROM qa_feedback ORDER BY id")
        return [feedback_from(row[0]) for row in rows]

    # ----- writing -------------------------------------------------------------------------
    def writer(
        self,
        info: StoreInfo,
        *,
        sources: Sequence[str] = (),
        progress: bool = False,
        reset: bool = False,
    ) -> AbstractContextManager[Writer]:
        from qa.stores.postgres.writer import writing

        return writing(self, info, reset=reset)

    def drop(self) -> None:
        """Remove this knowledge base's schema and everything in it."""
        with self.pool.connection() as conn:
            conn.execute(sql.drop(self.schema))


# BM25 of chunks that match `{match}`, from the term statistics kept in the database; the same
# formula as bm25s's default ("lucene"): idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
# tf part = tf / (tf + k1 * (1 - b + b * length / average length)).
_BM25 = """
SELECT c.id, sum(
    ln(1 + (st.n - t.df + 0.5) / (t.df + 0.5))
    * (c.tf ->> t.term)::float8
    / ((c.tf ->> t.term)::float8
       + %(k1)s * (1 - %(b)s + %(b)s * c.n_terms / greatest(st.avgdl, 1e-9)))
) AS score
FROM qa_chunks c
CROSS JOIN (
    SELECT (value->>'chunks')::float8 AS n,
           (value->>'terms')::float8 / greatest((value->>'chunks')::float8, 1) AS avgdl
    FROM qa_meta WHERE key = 'stats'
) st
JOIN qa_terms t ON t.term = ANY(%(terms)s) AND c.tf ? t.term
WHERE {match}
GROUP BY c.id"""


# Up to %(cap)s ids of chunks that hold a query term, those of the rarest term first: each
# term's chunks come from the GIN index, and the scan stops once it has enough. A lexeme is
# quoted for tsquery input as `schema.tsquery` quotes it.
_CANDIDATES = """
SELECT x.id FROM (
    SELECT term FROM qa_terms WHERE term = ANY(%(terms)s) AND df > 0 ORDER BY df, term
) t
CROSS JOIN LATERAL (
    SELECT c.id FROM qa_chunks c
    WHERE c.tsv @@ ('''' || replace(t.term, '''', '''''') || '''')::tsquery AND {where}
    LIMIT %(cap)s
) x
LIMIT %(cap)s"""


def _vector(vector: np.ndarray) -> Any:
    from pgvector import Vector

    return Vector(np.asarray(vector, dtype=np.float32).reshape(-1))


_DOCUMENT_COLUMNS = "id, title, source, url, revision, groups, sha256, indexed_at, sections"


def _document(row: tuple[Any, ...]) -> DocumentInfo:
    doc_id, title, source, url, revision, groups, sha256, indexed_at, sections = row
    return DocumentInfo(
        id=doc_id,
        title=title,
        source=source,
        url=url,
        revision=revision,
        groups=tuple(groups or ()),
        sha256=sha256,
        indexed_at=indexed_at.isoformat(timespec="seconds") if indexed_at else "",
        sections=tuple((int(a), str(t), str(h)) for a, t, h in sections or ()),
    )


def _reason(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
