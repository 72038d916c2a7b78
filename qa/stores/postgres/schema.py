"""The PostgreSQL store's tables, created on first write and checked on every open.

All tables live in one PostgreSQL schema (`?schema=` in the store URL, default "qa"), so one
database can hold several knowledge bases. `qa_meta` holds the store's description
(`StoreInfo`) and the corpus statistics BM25 needs.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from qa.stores.base import StoreError

DEFAULT_SCHEMA = "qa"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# BM25 parameters, the same as bm25s's defaults (its "lucene" method), so that both stores
# give a chunk the same keyword score.
K1, B = 1.5, 0.75
# pgvector's HNSW parameters; the search beam is set on every connection.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 64, 200


def split_url(url: str) -> tuple[str, str, str]:
    """(connection URL for psycopg, schema name, URL safe to print: no password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreError(f"store URL ({redact(url)!r}) must start with postgresql://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"schema ({schema!r}) in the store URL must be a lower-case SQL name "
            "(letters, digits, _; not starting with a digit)"
        )
    conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    return conninfo, schema, redact(url)


def schema_of(url: str) -> str:
    return split_url(url)[1]


def with_schema(url: str, schema: str) -> str:
    """The same database URL naming another schema (another knowledge base)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def ddl(schema: str, dim: int) -> list[str]:
    """Statements that create the store's tables and indexes (idempotent)."""
    return [*tables(schema, dim), *search_indexes(schema).values()]


def tables(schema: str, dim: int) -> list[str]:
    """The tables, their keys and the b-tree indexes writes need (idempotent)."""
    s = schema
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE IF NOT EXISTS {s}.qa_meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {s}.qa_documents (
            id text PRIMARY KEY, title text NOT NULL, source text NOT NULL, url text,
            revision text, groups text[] NOT NULL DEFAULT '{{}}', sha256 text NOT NULL,
            indexed_at timestamptz NOT NULL DEFAULT now(), chars integer NOT NULL,
            sections jsonb NOT NULL DEFAULT '[]')""",
        f"""CREATE TABLE IF NOT EXISTS {s}.qa_chunks (
            id text PRIMARY KEY,
            doc_id text NOT NULL REFERENCES {s}.qa_documents (id) ON DELETE CASCADE,
            ordinal integer NOT NULL, start_at integer NOT NULL, end_at integer NOT NULL,
            text text NOT NULL, groups text[] NOT NULL, embedding vector({dim}) NOT NULL,
            n_terms integer NOT NULL, tf jsonb NOT NULL, tsv tsvector NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS qa_chunks_doc ON {s}.qa_chunks (doc_id)",
        f"""CREATE TABLE IF NOT EXISTS {s}.qa_sentences (
            id text PRIMARY KEY,
            chunk_id text NOT NULL REFERENCES {s}.qa_chunks (id) ON DELETE CASCADE,
            doc_id text NOT NULL, ordinal integer NOT NULL, start_at integer NOT NULL,
            end_at integer NOT NULL, groups text[] NOT NULL, embedding vector({dim}) NOT NULL,
            entities jsonb NOT NULL DEFAULT '[]')""",
        f"CREATE INDEX IF NOT EXISTS qa_sentences_chunk ON {s}.qa_sentences (chunk_id, ordinal)",
        f"CREATE TABLE IF NOT EXISTS {s}.qa_terms (term text PRIMARY KEY, df integer NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {s}.qa_feedback (
            id bigserial PRIMARY KEY, record jsonb NOT NULL)""",
        f"""INSERT INTO {s}.qa_meta (key, value) VALUES ('stats', '{{"chunks": 0, "terms": 0}}')
            ON CONFLICT (key) DO NOTHING""",
    ]


def search_indexes(schema: str) -> dict[str, str]:
    """The indexes searches use (GIN over the lexemes, HNSW over both kinds of vectors), by
    name: costly to keep up row by row, so a large load builds them after its rows."""
    hnsw = (
        f"hnsw (embedding vector_ip_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )
    found = {
        "qa_chunks_tsv": ("qa_chunks", "gin (tsv)"),
        "qa_chunks_hnsw": ("qa_chunks", hnsw),
        "qa_sentences_hnsw": ("qa_sentences", hnsw),
    }
    return {
        name: f"CREATE INDEX IF NOT EXISTS {name} ON {schema}.{table} USING {method}"
        for name, (table, method) in found.items()
    }


def drop(schema: str) -> str:
    return f"DROP SCHEMA IF EXISTS {schema} CASCADE"


def filter_sql(where: Any, table: str = "") -> tuple[str, dict[str, Any]]:
    """The SQL condition of a `Filter` on a table with `groups` and a document id column."""
    prefix = f"{table}." if table else ""
    doc_column = f"{prefix}doc_id" if table != "d" else "d.id"
    clauses = []
    params: dict[str, Any] = {}
    if where.groups is not None:
        clauses.append(f"(cardinality({prefix}groups) = 0 OR {prefix}groups && %(f_groups)s)")
        params["f_groups"] = sorted(where.groups)
    if where.doc_ids is not None:
        clauses.append(f"{doc_column} = ANY(%(f_docs)s)")
        params["f_docs"] = sorted(where.doc_ids)
    return (" AND ".join(clauses) or "TRUE"), params


def tsquery(terms: list[str]) -> str:
    """An OR query of the exact lexemes (our own stemmed terms), quoted for tsquery input."""
    return " | ".join("'" + t.replace("'", "''") + "'" for t in terms)
