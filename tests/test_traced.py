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
from qa.serve.live import LiveKnowledgeBase

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


def traced_embedder(real_embedder) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(real_embedder.model_id)
    embedder._model = real_embedder.model  # the loaded weights, a second embedder around them
    assert embedder.trace() and embedder.trace()  # twice: traced once, kept
    return embedder


def test_a_traced_embedder_answers_as_before_through_the_batching_server(
    real_embedder, eager, monkeypatch
):
    monkeypatch.setattr(traced_module, "QUICK_GAIN", float("inf"))  # the exact graph only
    embedder = traced_embedder(real_embedder)
    assert embedder._traced is not None and embedder._traced.quick is None
    assert embedder.question_path == "float32 graph" and real_embedder.question_path == "eager"
    np.testing.assert_allclose(embedder.encode(TEXTS), eager, atol=1e-6)
    batching = BatchingEmbedder(embedder, max_batch=8)
    with ThreadPoolExecutor(16) as pool:
        vectors = list(pool.map(batching.encode_question, TEXTS))
    np.testing.assert_allclose(np.vstack(vectors), eager, atol=1e-6)
    assert batching.batches < len(TEXTS)  # questions shared model calls
    assert embedder.encode([]).shape == (0, eager.shape[1])


def test_the_quick_graph_embeds_questions_closely_and_never_a_build(
    real_embedder, eager, monkeypatch
):
    monkeypatch.setattr(traced_module, "QUICK_GAIN", 0.0)  # kept however fast this machine is
    embedder = traced_embedder(real_embedder)
    assert embedder._traced is not None and embedder._traced.quick is not None
    batching = BatchingEmbedder(embedder, max_batch=8)
    with ThreadPoolExecutor(16) as pool:
        questions = np.vstack(list(pool.map(batching.encode_question, TEXTS)))
    np.testing.assert_allclose(questions, eager, atol=traced_module.QUICK_AGREEMENT)
    assert float(np.einsum("ij,ij->i", questions, eager).min()) > 0.9998
    assert not np.array_equal(questions, eager)  # bfloat16 indeed
    np.testing.assert_allclose(embedder.encode(TEXTS), eager, atol=1e-6)  # documents: exact
    np.testing.assert_allclose(batching.encode(TEXTS[:1]), eager[:1], atol=1e-6)


def test_quick_question_vectors_rank_the_articles_passages_as_the_exact_ones(
    real_embedder, article_kb, monkeypatch
):
    from bench.load_driver import CONVERSATIONS
    from qa.knowledge import KnowledgeBase

    monkeypatch.setattr(traced_module, "QUICK_GAIN", 0.0)
    served = BatchingEmbedder(traced_embedder(real_embedder))
    quick = KnowledgeBase(article_kb.store, served, article_kb.settings)
    assert LiveKnowledgeBase.of(quick).status()["questions"] == "bfloat16 graph"  # /healthz
    questions = [q for conversation in CONVERSATIONS for q in conversation]
    for question in questions:
        exact, fast = (kb.ask(question).to_dict() for kb in (article_kb, quick))
        assert [p["chunk_id"] for p in fast["passages"]] == [
            p["chunk_id"] for p in exact["passages"]
        ], question
        assert (fast["answer"], fast["abstained"]) == (exact["answer"], exact["abstained"])
        assert abs(fast["confidence"] - exact["confidence"]) < 0.01


def test_a_quick_graph_that_disagrees_or_does_not_pay_is_not_kept(
    real_embedder, eager, monkeypatch, caplog
):
    monkeypatch.setattr(traced_module, "QUICK_AGREEMENT", -1.0)
    monkeypatch.setattr(traced_module, "QUICK_GAIN", 0.0)
    with caplog.at_level(logging.INFO, logger="qa.traced"):
        assert traced_embedder(real_embedder)._traced.quick is None  # type: ignore[union-attr]
    assert "bfloat16 graph differs" in caplog.text
    caplog.clear()
    monkeypatch.setattr(traced_module, "QUICK_AGREEMENT", 5e-3)
    monkeypatch.setattr(traced_module, "QUICK_GAIN", 1e9)
    with caplog.at_level(logging.INFO, logger="qa.traced"):
        embedder = traced_embedder(real_embedder)
    assert "x the exact graph's speed" in caplog.text  # timed, and too slow for 1e9
    assert embedder._traced is not None and embedder._traced.quick is None
    np.testing.assert_allclose(embedder.encode_question(TEXTS[0]), eager[0], atol=1e-6)


def test_quick_batches_are_padded_to_few_shapes():
    import torch

    ids = torch.arange(1, 5 * 21 + 1).reshape(5, 21)
    mask = torch.ones((5, 21), dtype=torch.long)
    padded_ids, padded_mask = traced_module._bucketed([ids, mask])
    assert padded_ids.shape == padded_mask.shape == (8, 24)  # rows: 1, 2, 4, 4k; tokens: 8k
    assert torch.equal(padded_ids[:5, :21], ids) and not padded_mask[:5, 21:].any()
    assert padded_mask[5:].sum() == 3  # filler rows: one token each
    assert traced_module._bucketed([ids[:1, :16]])[0].shape == (1, 16)
    assert traced_module._bucketed([ids[:3, :3]])[0].shape == (4, 8)
    assert traced_module._bucketed([torch.ones((13, 9))])[0].shape == (16, 16)


def test_quick_vectors_do_not_depend_on_their_batch(real_embedder, monkeypatch):
    monkeypatch.setattr(traced_module, "QUICK_GAIN", 0.0)
    graph = traced_embedder(real_embedder)._traced
    assert graph is not None
    one_by_one = [graph.encode([t], batch_size=1, progress=False, questions=True) for t in TEXTS]
    together = graph.encode(TEXTS, batch_size=13, progress=False, questions=True)
    np.testing.assert_allclose(together, np.vstack(one_by_one), atol=traced_module.QUICK_AGREEMENT)


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
