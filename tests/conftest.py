"""Shared fixtures: the real bundled MiniLM (once per session) and a fast fake embedder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ARTICLE = REPO / "index" / "docs" / "turkey-s400-article.txt"
SQUAD = SHARED / "data" / "squad2-dev-3-articles.json"


@pytest.fixture(scope="session", autouse=True)
def hypothesis_home(tmp_path_factory):
    """Hypothesis's own caches (its example database, collected constants, Unicode tables)
    go to a temporary folder, not to .hypothesis/ in the repository."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from qa.embedding import get_embedder

    return get_embedder().load()


@pytest.fixture(scope="session")
def article_kb(tmp_path_factory, real_embedder):
    """A knowledge base of the real S-400 article, built with the real model in a temp folder."""
    from qa.kb import KnowledgeBase

    docs = tmp_path_factory.mktemp("docs")
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    return KnowledgeBase.build([docs], tmp_path_factory.mktemp("kb"), embedder=real_embedder)


@pytest.fixture
def fake_embedder():
    from tests.fakes import FakeEmbedder

    return FakeEmbedder()
