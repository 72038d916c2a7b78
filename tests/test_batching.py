"""BatchingEmbedder: concurrent questions share model calls; each gets its own vector."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.serve.batching import BatchingEmbedder
from tests.fakes import FakeEmbedder


class SlowFake(FakeEmbedder):
    """A fake whose every model call takes a while, as a real forward pass does."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def encode(self, texts, *, batch_size=32, progress=False):
        self.calls.append(len(texts))
        time.sleep(0.02)
        return super().encode(texts)


def test_concurrent_questions_share_model_calls_and_get_their_own_vectors():
    inner = SlowFake()
    batching = BatchingEmbedder(inner, max_batch=8)
    questions = [f"question number {n} about lighthouses" for n in range(64)]
    with ThreadPoolExecutor(32) as pool:
        vectors = list(pool.map(lambda q: batching.encode_question(q), questions))
    expected = FakeEmbedder().encode(questions)
    np.testing.assert_allclose(np.vstack(vectors), expected, rtol=1e-6)
    assert sum(inner.calls) == 64 and max(inner.calls) <= 8
    assert len(inner.calls) < 32, inner.calls  # batched, not one call per question


def test_a_lone_question_goes_at_once_even_with_a_window():
    inner = SlowFake()
    batching = BatchingEmbedder(inner, max_batch=16, window_ms=500)
    began = time.perf_counter()
    batching.encode_question("alone")
    assert time.perf_counter() - began < 0.4  # no 500 ms window for an idle server
    assert inner.calls == [1]


def test_a_builds_texts_bypass_the_queue_and_errors_reach_every_waiter():
    inner = SlowFake()
    batching = BatchingEmbedder(inner)
    assert batching.encode(["a", "b", "c"]).shape == (3, inner.dim)
    assert batching.encode(["a build's last batch of one"]).shape == (1, inner.dim)
    assert inner.calls == [3, 1] and batching.batches == 0  # exact vectors, never batched

    class Broken(FakeEmbedder):
        def encode(self, texts, *, batch_size=32, progress=False):
            time.sleep(0.01)
            raise RuntimeError("model died")

    broken = BatchingEmbedder(Broken())
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            broken.encode_question("q")
        except RuntimeError as error:
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(errors) == 10


def test_settings_are_checked():
    for bad in ({"max_batch": 0}, {"window_ms": -1}, {"calls": 0}):
        with pytest.raises(ValueError):
            BatchingEmbedder(FakeEmbedder(), **bad)


@pytest.mark.parametrize(("max_batch", "window_ms"), [(4, 0), (64, 5)])
def test_two_model_calls_run_side_by_side_never_three(max_batch, window_ms):
    """With a window, a worker waits for company while the other may take the queue: it must
    then neither make a third call nor an empty one."""
    running, most = 0, 0
    lock = threading.Lock()
    both = threading.Event()  # the first call waits for a second one: no timing luck needed

    class Counting(SlowFake):
        def encode(self, texts, *, batch_size=32, progress=False):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
                if running == 2:
                    both.set()
            try:
                both.wait(timeout=10)
                return super().encode(texts)  # sleeps 20 ms: others arrive meanwhile
            finally:
                with lock:
                    running -= 1

    inner = Counting()
    batching = BatchingEmbedder(inner, max_batch=max_batch, window_ms=window_ms, calls=2)
    questions = [f"question {n}" for n in range(80)]
    with ThreadPoolExecutor(40) as pool:
        vectors = list(pool.map(lambda q: batching.encode_question(q), questions))
    assert both.is_set() and most == 2, most
    assert 0 not in inner.calls  # no empty model call
    assert sum(inner.calls) == 80 and max(inner.calls) <= max_batch
    np.testing.assert_allclose(np.vstack(vectors), FakeEmbedder().encode(questions), rtol=1e-6)


def test_a_real_batch_runs_on_one_thread_and_gives_the_models_own_vectors(real_embedder):
    import torch

    batching = BatchingEmbedder(real_embedder)
    texts = [f"Who proposed the S-400 deal, question {n}?" for n in range(16)]
    together = batching._encode(texts)
    assert torch.get_num_threads() == 1
    np.testing.assert_allclose(together, real_embedder.encode(texts), atol=1e-5)
    assert together.dtype == np.float32 and together.flags["C_CONTIGUOUS"]


def test_an_idle_model_embeds_in_the_callers_thread_and_later_arrivals_batch_after_it():
    threads: list[str] = []

    class Recording(SlowFake):
        def encode(self, texts, *, batch_size=32, progress=False):
            threads.append(threading.current_thread().name)
            time.sleep(0.1 if len(self.calls) == 0 else 0)
            return super().encode(texts)

    inner = Recording()
    batching = BatchingEmbedder(inner, max_batch=16)
    first = threading.Thread(target=batching.encode_question, args=("first",), name="reader-1")
    first.start()
    time.sleep(0.03)  # the first question is being embedded; these arrive meanwhile
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(lambda n: batching.encode_question(f"q{n}"), range(8)))
    first.join()
    assert threads[0] == "reader-1"  # no hand-over to the worker for a lone question
    assert inner.calls[0] == 1 and sum(inner.calls) == 9
    assert max(inner.calls[1:]) > 1  # those that waited shared a call
    np.testing.assert_allclose(
        np.vstack(vectors), FakeEmbedder().encode([f"q{n}" for n in range(8)])
    )


def test_the_servers_batch_settings_refuse_nonsense_from_the_environment():
    from qa.serve.webconfig import WebSettings
    from qa.settings import SettingsError

    assert WebSettings.from_env({"QA_BATCH_CALLS": "2"}).batch_calls == 2
    assert WebSettings().batch_calls == 0  # one model call per core
    bad = [("QA_BATCH_CALLS", "-1"), ("QA_BATCH_CALLS", "two"), ("QA_BATCH_CALLS", "100000")]
    for name, value in [*bad, ("QA_BATCH_MAX", "0")]:
        with pytest.raises(SettingsError, match=f"(?i){name.removeprefix('QA_')}"):
            WebSettings.from_env({name: value})


def test_the_chats_gradio_queue_is_set_for_many_readers():
    """Gradio's queue polls every 1 ms when empty; ours every 10 ms (an idle server: 6.6% ->
    3.2% of a core). If a Gradio upgrade renames the attribute, this fails, not the server."""
    import gradio as gr

    from qa.serve.gradio_setup import QUEUE_POLL_S, queue_for_many_readers

    with gr.Blocks() as blocks:
        gr.Markdown("a page")
    queue_for_many_readers(blocks, concurrency=4, size=32)
    assert blocks._queue.sleep_when_free == QUEUE_POLL_S == 0.01
    assert blocks.state_session_capacity == 1000
    assert blocks._queue.max_size == 32 and blocks._queue.update_intervals == 2.0
