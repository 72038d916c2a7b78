"""The traced model (qa/traced.py): the real MiniLM's vectors, unchanged, from a TorchScript
graph that many threads can run at once."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa import traced as traced_module
from qa.embedding import SentenceTransformerEmbedder
from qa.serve.batching import BatchingEmbedder

TEXTS = [
    "Why did Turkey choose the S-400?",
    "",
    "   padded with spaces   ",
    "Ünïcödé, emoji 🚀 and ‘quotes’ — the tokenizer's odd corners",
    "S-400 " * 400,  # far past the 256-token window: cut as the eager model cuts it
    *[f"Question {n}: what did the ministry say about delivery number {n}?" for n in range(40)],
]


@pytest.fixture(scope="module")
def eager(real_embedder):
    return real_embedder.model.encode(
        TEXTS, batch_size=8, normalize_embeddings=True, convert_to_numpy=True
    )


@pytest.fixture(scope="module")
def graph(real_embedder):
    encoder = traced_module.trace(real_embedder.model)
    assert encoder is not None
    return encoder


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_traced_vectors_are_the_eager_models(graph, eager, batch_size):
    vectors = graph.encode(TEXTS, batch_size=batch_size, progress=False)
    assert vectors.dtype == np.float32 and vectors.shape == eager.shape
    np.testing.assert_allclose(vectors, eager, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert graph.encode([], batch_size=batch_size, progress=False).shape == (0, eager.shape[1])


def test_threads_share_the_graph_and_each_gets_its_own_vectors(graph, eager):
    with ThreadPoolExecutor(4) as pool:
        vectors = list(pool.map(lambda t: graph.encode([t], batch_size=1, progress=False), TEXTS))
    np.testing.assert_allclose(np.vstack(vectors), eager, atol=1e-6)


def test_a_traced_embedder_answers_as_before_through_the_batching_server(real_embedder, eager):
    embedder = SentenceTransformerEmbedder(real_embedder.model_id)
    embedder._model = real_embedder.model  # the loaded weights, a second embedder around them
    assert embedder.trace() and embedder.trace()  # twice: traced once, kept
    np.testing.assert_allclose(embedder.encode(TEXTS), eager, atol=1e-6)
    batching = BatchingEmbedder(embedder, max_batch=8)
    with ThreadPoolExecutor(16) as pool:
        vectors = list(pool.map(lambda t: batching.encode([t]), TEXTS))
    np.testing.assert_allclose(np.vstack(vectors), eager, atol=1e-6)
    assert embedder.encode([]).shape == (0, eager.shape[1])


def test_a_graph_that_disagrees_is_refused_and_the_embedder_stays_eager(
    real_embedder, eager, monkeypatch, caplog
):
    monkeypatch.setattr(traced_module, "AGREEMENT", -1.0)  # no difference is small enough
    assert traced_module.trace(real_embedder.model) is None
    embedder = SentenceTransformerEmbedder(real_embedder.model_id)
    embedder._model = real_embedder.model
    with caplog.at_level(logging.WARNING, logger="qa.embedding"):
        assert not embedder.trace()
    assert "did not trace" in caplog.text
    np.testing.assert_allclose(embedder.encode(TEXTS), eager, atol=1e-6)


def test_a_model_that_cannot_be_traced_is_refused():
    assert traced_module.trace(object()) is None
    assert traced_module.trace([]) is None
