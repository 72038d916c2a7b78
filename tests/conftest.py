"""Shared fixtures: the real bundled MiniLM (once per session) and a fast fake embedder."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The web-app servers (api, strict, busy) that several test modules share.
pytest_plugins = ["tests.webapi"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _hypothesis_home() -> None:
    """Hypothesis's caches (example database, collected constants) go to a temporary folder.

    It writes them while test modules are collected, before any fixture runs, so this happens
    when conftest is imported, and the folder is removed when the run ends.
    """
    from hypothesis.configuration import set_hypothesis_home_dir

    home = tempfile.mkdtemp(prefix="qa-hypothesis-")
    set_hypothesis_home_dir(home)
    atexit.register(shutil.rmtree, home, True)


_hypothesis_home()

REPO = Path(__file__).resolve().parent.parent
ARTICLE = REPO / "index" / "docs" / "turkey-s400-article.txt"
SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from qa.embedding import get_embedder

    return get_embedder().load()


@pytest.fixture(scope="session")
def article_kb(tmp_path_factory, real_embedder):
    """A knowledge base of the real S-400 article, built with the real model in a temp folder."""
    from qa.knowledge import KnowledgeBase

    docs = tmp_path_factory.mktemp("docs")
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    return KnowledgeBase.build([docs], tmp_path_factory.mktemp("kb"), embedder=real_embedder)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test: Playwright's sync API cannot run twice at
    once in a process, so modules share this one."""
    from playwright.sync_api import sync_playwright

    from tests.browsing import ARGS, CHROMIUM, require_chromium

    require_chromium()  # fails, never skips: setup.sh --test installs it
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def fake_embedder():
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory):
    """A real PostgreSQL 18 + pgvector server for the session (see tests/pgserver.py)."""
    from tests.pgserver import postgres

    with postgres(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
def pg_schema_url(pg_url):
    """The session server's URL with ``?schema=t_<hex>``: a fresh schema name (not created
    here) for one test; the schema is dropped (CASCADE) afterwards. ``schema`` is not a libpq
    parameter: strip it before connecting."""
    import uuid

    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex}"
    yield f"{pg_url}{'&' if '?' in pg_url else '?'}schema={schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
