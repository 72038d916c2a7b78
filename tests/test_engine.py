"""Chunk offsets and ids, the model window, FAISS against brute force, save/load, bad questions,
CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.asking.question import QuestionError
from qa.eval.evaluate import load_squad
from qa.indexing.build import chunk_budget, document_hash
from qa.indexing.chunking import chunk_documents
from qa.indexing.documents import load_documents
from qa.knowledge import KnowledgeBase
from qa.settings import Settings, SettingsError
from qa.stores import EVERYTHING, Filter
from qa.stores.embedded import snapshot, vectors
from qa.stores.embedded.vectors import HNSW_EF_SEARCH, build_faiss
from qa.types import Document
from tests.conftest import ARTICLE, REPO
from tests.fakes import FakeEmbedder

SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"


def _documents() -> list[Document]:
    docs = [Document("article", "article", ARTICLE.name, ARTICLE.read_text(encoding="utf-8"))]
    docs += [Document(a.title, a.title, "squad", a.text) for a in load_squad(SQUAD)]
    return docs


def _check_offsets(documents, chunks, sentences, count_tokens, budget):
    texts = {d.id: d.text for d in documents}
    for chunk in chunks:
        assert texts[chunk.doc_id][chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text
    # Ids: "<doc_id>::<ordinal within the document>", "<chunk_id>.<ordinal within the chunk>".
    ordinals: dict[str, int] = {}
    for chunk in chunks:
        n = ordinals.get(chunk.doc_id, 0)
        ordinals[chunk.doc_id] = n + 1
        assert chunk.id == f"{chunk.doc_id}::{n}"
    by_id = {c.id: c for c in chunks}
    assert len(by_id) == len(chunks)
    in_chunk: dict[str, int] = {}
    for sentence in sentences:
        chunk = by_id[sentence.chunk_id]
        assert chunk.start <= sentence.start < sentence.end <= chunk.end
        n = in_chunk.get(chunk.id, 0)
        in_chunk[chunk.id] = n + 1
        assert sentence.id == f"{chunk.id}.{n}"
    assert set(in_chunk) == set(by_id), "a chunk without sentences"
    counts = count_tokens([c.text for c in chunks])
    assert max(counts) <= budget, "a chunk longer than the model window would be truncated"


@pytest.mark.slow
def test_offsets_and_window_on_article_and_squad_with_real_tokenizer(real_embedder):
    documents = _documents()
    budget = chunk_budget(real_embedder, Settings())
    assert budget == real_embedder.max_tokens - 2
    chunks, sentences = chunk_documents(documents, real_embedder.count_tokens, budget)
    _check_offsets(documents, chunks, sentences, real_embedder.count_tokens, budget)
    # Every character of every paragraph is inside some chunk: nothing is dropped.
    article_chunks = [c for c in chunks if c.doc_id == "article"]
    assert len(article_chunks) == 6  # one per paragraph: each fits the window
    # A small budget forces splits inside paragraphs: still exact offsets, still in budget.
    chunks, sentences = chunk_documents(documents, real_embedder.count_tokens, 40)
    _check_offsets(documents, chunks, sentences, real_embedder.count_tokens, 40)


@settings(max_examples=60, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([*"abcde fgh.\n!?,\"'", "word ", "Mr. ", "3.5 ", "\n\n", "é", "—"]),
        max_size=200,
    ).map("".join),
    budget=st.integers(min_value=16, max_value=60),
)
def test_offsets_property_with_generated_text(text, budget):
    embedder = FakeEmbedder()
    documents = [Document("d", "d", "d", text)]
    if not text.strip():
        return
    chunks, sentences = chunk_documents(documents, embedder.count_tokens, budget)
    _check_offsets(documents, chunks, sentences, embedder.count_tokens, budget)


def test_faiss_search_equals_brute_force_numpy():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    index = build_faiss(vectors, approximate_above=10_000)
    scores, ids = index.search(queries, 5)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, expected, 1), 1e-5)


def test_approximate_index_above_threshold_finds_the_vectors_themselves():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_faiss(vectors, approximate_above=1000)
    assert type(index).__name__ == "IndexHNSWFlat"
    _, ids = index.search(vectors[:100], 1)
    assert (ids[:, 0] == np.arange(100)).mean() >= 0.95


def test_a_loaded_approximate_index_searches_with_the_stores_beam(tmp_path):
    approximate = Settings(approximate_above=1)
    KnowledgeBase.build([ARTICLE], tmp_path / "kb", settings=approximate, embedder=FakeEmbedder())
    data = snapshot.load(tmp_path / "kb")
    for index in (data.chunk_index, data.sentence_index):
        assert type(index).__name__ == "IndexHNSWFlat"
        assert index.hnsw.efSearch == HNSW_EF_SEARCH
    # Opened as a knowledge base (with the default threshold), it is the same HNSW index.
    kb = KnowledgeBase.load(tmp_path / "kb", embedder=FakeEmbedder())
    index = kb.store.snapshot.chunk_index
    assert type(index).__name__ == "IndexHNSWFlat" and index.hnsw.efSearch == HNSW_EF_SEARCH
    assert kb.ask("Why did Turkey choose the S-400?").passages


def test_an_approximate_index_filters_and_forgets_removed_documents(tmp_path):
    """HNSW graphs cannot delete: the store rebuilds them from the kept vectors, and filters
    apply inside the HNSW search too."""
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("a.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    docs.joinpath("b.txt").write_text("Zebras graze on the savanna. Lions hunt zebras.")
    approximate = Settings(approximate_above=1)
    embedder = FakeEmbedder()
    kb = KnowledgeBase.build([docs], tmp_path / "kb", settings=approximate, embedder=embedder)
    assert type(kb.store.snapshot.chunk_index).__name__ == "IndexHNSWFlat"
    vector = embedder.encode(["zebras graze savanna lions"])[0]
    assert kb.store.search_chunks(vector, 1, EVERYTHING)[0][0] == "b.txt::0"
    only_a = Filter(doc_ids=frozenset({"a.txt"}))
    for search in (kb.store.search_chunks, kb.store.search_sentences):
        found = search(vector, 5, only_a)
        assert found and all(c.startswith("a.txt::") for c, _ in found)
    assert kb.ask("What do zebras do?", doc_ids=["a.txt"]).passages[0].chunk.doc_id == "a.txt"

    docs.joinpath("b.txt").unlink()
    kb = KnowledgeBase.build([docs], tmp_path / "kb", settings=approximate, embedder=embedder)
    assert kb.last_build is not None and kb.last_build.removed_documents == 1
    data = kb.store.snapshot
    assert type(data.chunk_index).__name__ == "IndexHNSWFlat"
    assert data.chunk_index.ntotal == len(data.chunks)
    assert data.sentence_index.ntotal == len(data.sentences)
    for search in (kb.store.search_chunks, kb.store.search_sentences):
        assert not any(c.startswith("b.txt") for c, _ in search(vector, 50, EVERYTHING))


def test_build_save_load_gives_the_same_answers(tmp_path):
    embedder = FakeEmbedder()
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("a.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    built = KnowledgeBase.build([docs], tmp_path / "kb", embedder=embedder)
    loaded = KnowledgeBase.load(tmp_path / "kb", embedder=embedder)
    for question in ["Why did Turkey choose the S-400?", "Who is Conkar?", "capital of France"]:
        a, b = built.ask(question).to_dict(), loaded.ask(question).to_dict()
        a.pop("timings_ms"), b.pop("timings_ms")
        assert a == b


def test_chunk_vectors_are_the_length_weighted_mean_of_their_sentence_vectors(tmp_path):
    embedder = FakeEmbedder()
    kb = KnowledgeBase.build([ARTICLE], tmp_path / "kb", embedder=embedder)
    data = kb.store.snapshot
    chunk_vectors = vectors.all_vectors(data.chunk_index)
    sentence_vectors = vectors.all_vectors(data.sentence_index)
    text = ARTICLE.read_text(encoding="utf-8")
    assert [d.id for d in kb.documents] == [ARTICLE.name] and data.texts == [text]
    sentence_texts = [text[s.start : s.end] for s in data.sentences]
    np.testing.assert_allclose(sentence_vectors, embedder.encode(sentence_texts), atol=1e-6)
    for c, chunk in enumerate(data.chunks):
        rows = [i for i, s in enumerate(data.sentences) if s.chunk_id == chunk.id]
        assert rows, chunk.id
        mean = sum(len(sentence_texts[i]) * sentence_vectors[i] for i in rows)
        np.testing.assert_allclose(chunk_vectors[c], mean / np.linalg.norm(mean), atol=1e-5)
    # The same through the store's own scoring: a chunk's cosine is with that mean.
    query = embedder.encode(["Why did Turkey choose the S-400?"])[0]
    fetched = kb.store.fetch([c.id for c in data.chunks], query)
    assert fetched.keys() == {c.id for c in data.chunks}
    for c, chunk in enumerate(data.chunks):
        assert fetched[chunk.id].cosine == pytest.approx(float(chunk_vectors[c] @ query), abs=1e-5)


def test_txt_documents_keep_the_file_text_exactly(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    raw = "First line.\r\n\r\nSecond   paragraph\twith tabs.\n"
    docs.joinpath("x.txt").write_bytes(raw.encode())
    loaded, _ = load_documents([docs])
    assert [d.text for d in loaded] == [raw]
    kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=FakeEmbedder())
    # Stored documents carry no text, but their hash is of that exact text, the store keeps
    # it, and every chunk's offsets point into it.
    [info] = kb.documents
    assert info.sha256 == document_hash(loaded[0])
    data = kb.store.snapshot
    assert data.texts == [raw]
    assert data.chunks and all(raw[c.start : c.end] == c.text for c in data.chunks)


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\x00\x01", "\u200b"])
def test_empty_questions_raise_a_clear_error(tmp_path, question):
    docs = tmp_path / "d"
    docs.mkdir()
    docs.joinpath("a.txt").write_text("Turkey bought the S-400.", encoding="utf-8")
    kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=FakeEmbedder())
    with pytest.raises(QuestionError, match="empty"):
        kb.ask(question)


def test_long_questions_are_cut_with_a_notice(tmp_path):
    docs = tmp_path / "d"
    docs.mkdir()
    docs.joinpath("a.txt").write_text("Turkey bought the S-400.", encoding="utf-8")
    kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=FakeEmbedder())
    answer = kb.ask("Why S-400? " * 500)
    assert len(answer.question) <= 2000
    assert any("cut" in n for n in answer.notices)


def test_settings_name_the_bad_key_and_value():
    with pytest.raises(SettingsError, match=r"top_k \(0\)"):
        Settings(top_k=0)
    with pytest.raises(SettingsError, match="QA_TOP_K"):
        Settings.from_env({"QA_TOP_K": "many"})
    with pytest.raises(SettingsError, match="retrieval"):
        Settings(retrieval="magic")


def _qa(*args: str, cwd=None, fake: bool = False) -> subprocess.CompletedProcess[str]:
    """The `qa` command; `fake` runs it with FakeEmbedder (tests/fake_qa.py) for speed."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.fake_qa" if fake else "qa.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.slow
def test_cli_index_and_ask_json(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("article.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    docs.joinpath("empty.txt").write_text("", encoding="utf-8")
    built = _qa("index", str(docs), "--out", str(tmp_path / "kb"), "--quiet")
    assert built.returncode == 0, built.stderr
    assert "skipped" in built.stderr and "empty.txt" in built.stderr
    assert "indexed 1 document" in built.stdout
    asked = _qa(
        "ask", "--index", str(tmp_path / "kb"), "--json", "Why did Turkey choose the S-400?"
    )
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert "turned away" in data["answer"] and not data["abstained"]
    # A passage names its source relative to what was indexed, never the server's path.
    for passage in data["passages"]:
        assert (passage["doc_id"], passage["source"], passage["url"]) == (
            "article.txt",
            "article.txt",
            None,
        )
        assert passage["chunk_id"].startswith("article.txt::")
    again = _qa("index", str(docs), "--out", str(tmp_path / "kb"), "--quiet")
    assert "embedded 0, reused 1, removed 0" in again.stdout


@pytest.mark.slow
def test_cli_errors_exit_2_with_one_line(tmp_path):
    empty = _qa("ask", "--index", str(tmp_path), "   ")
    assert empty.returncode == 2
    assert empty.stderr.startswith("qa: error:") and "Traceback" not in empty.stderr
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "blob.bin").write_bytes(b"\x00\x01")
    built = _qa("index", str(nothing), "--out", str(tmp_path / "kb"))
    assert built.returncode == 2
    assert "no usable document" in built.stderr and "Traceback" not in built.stderr


def test_cli_index_refuses_other_chunking_unless_rebuild(tmp_path):
    """Intended change: `qa index` onto a store built with other chunking (or another model or
    format) refuses, saying how to rebuild, instead of silently replacing it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("a.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    out = str(tmp_path / "kb")
    built = _qa("index", str(docs), "--out", out, "--quiet", fake=True)
    assert built.returncode == 0, built.stderr
    refused = _qa("index", str(docs), "--out", out, "--chunk-tokens", "40", "--quiet", fake=True)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qa: error: "), refused.stderr
    assert "chunking" in lines[0] and lines[0].endswith(f"--out {out} --rebuild")
    rebuilt = _qa(
        "index", str(docs), "--out", out, "--chunk-tokens", "40", "--rebuild", "--quiet", fake=True
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "embedded 1, reused 0" in rebuilt.stdout
    kb = KnowledgeBase.load(out, settings=Settings(chunk_tokens=40), embedder=FakeEmbedder())
    info = kb.store.info()
    assert info is not None and info.chunking["chunk_tokens"] == 40
