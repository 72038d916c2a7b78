"""The real PostgreSQL harness (tests/pgserver.py): pgvector, HNSW, a streaming replica."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from tests.pgserver import free_port, postgres, replica

pytestmark = pytest.mark.slow


def test_vector_column_round_trips_through_an_hnsw_index(pg_url, pg_schema_url):
    (schema,) = parse_qs(urlsplit(pg_schema_url).query)["schema"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # In `public`, not in the test's schema: dropping that schema must not drop the type.
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
        register_vector(conn)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE chunk (id int PRIMARY KEY, embedding vector(3))")
        rows = [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [0.6, 0.8, 0.0])]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO chunk VALUES (%s, %s)", [(i, np.array(v)) for i, v in rows]
            )
        conn.execute("CREATE INDEX chunk_hnsw ON chunk USING hnsw (embedding vector_cosine_ops)")
        conn.execute("SET enable_seqscan = off")
        query = "SELECT id, embedding FROM chunk ORDER BY embedding <=> %s LIMIT 2"
        probe = np.array([0.1, 1.0, 0.0])
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {query}", (probe,)).fetchall())
        assert "chunk_hnsw" in plan
        found = conn.execute(query, (probe,)).fetchall()
    assert [i for i, _ in found] == [2, 3]
    np.testing.assert_allclose(found[0][1].to_numpy(), [0.0, 1.0, 0.0])  # a pgvector Vector
    with psycopg.connect(pg_url) as conn:  # the schema is the test's alone
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone() == (1,)


def test_replica_sees_a_committed_row_and_refuses_writes(pg_url, tmp_path):
    table = f"replicated_{time.monotonic_ns()}"
    with replica(pg_url, tmp_path) as replica_url:
        assert urlsplit(replica_url).port != urlsplit(pg_url).port
        with psycopg.connect(pg_url, autocommit=True) as primary:
            primary.execute(sql.SQL("CREATE TABLE {} (note text)").format(sql.Identifier(table)))
            primary.execute(
                sql.SQL("INSERT INTO {} VALUES ('hello')").format(sql.Identifier(table))
            )
        seen = None
        deadline = time.monotonic() + 10
        with psycopg.connect(replica_url, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            while seen is None and time.monotonic() < deadline:
                exists = standby.execute("SELECT to_regclass(%s)", (table,)).fetchone()
                if exists and exists[0]:
                    seen = standby.execute(
                        sql.SQL("SELECT note FROM {}").format(sql.Identifier(table))
                    ).fetchall()
                else:
                    time.sleep(0.05)
            assert seen == [("hello",)]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                standby.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    assert list(tmp_path.glob("qa-replica-*.log")), "the replica's log is kept in workdir"
    with psycopg.connect(pg_url, autocommit=True) as primary:
        primary.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def test_each_server_is_its_own_and_is_gone_after_the_block(pg_url, tmp_path):
    with postgres(tmp_path) as url:
        assert urlsplit(url).port != urlsplit(pg_url).port
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE only_here (id int)")
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()
    with psycopg.connect(pg_url) as conn:  # the session's server was not touched
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_replica_of_nothing_fails_loudly(pg_url, tmp_path):
    nowhere = f"postgresql://postgres:postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(RuntimeError, match="pg_basebackup"), replica(nowhere, tmp_path):
        pass
