"""Questions that arrive together are embedded together: one model call for many readers.

On 2 cores MiniLM embeds 149 short questions a second one at a time but 658 a second in
batches of 16 (ENVIRONMENT.md), so a server under load answers several times more questions
when concurrent questions share a forward pass. A lone reader never waits for a window: an
idle worker takes the first question at once; questions that arrive while the model is busy
form the next batch. A question that finds the model idle is embedded in its own thread: no
hand-over to the worker and back, which costs a loaded machine a scheduler slice each way.
`calls` model calls may run at once (a server runs one per core): the traced model releases
the GIL (qa/traced.py), so on 2 cores two batches embed side by side while the answer step
waits for neither; 50 REST readers got 137-173 answers/s with two, 104-116 with one. Only the
`calls` worker threads run those: every thread that runs the model grows its own malloc arena,
and letting any request thread run the second call grew a server 3x more under load.
Only questions (`encode_question`) are batched, and may take the traced model's bfloat16
graph; a build's texts (`encode`, a reload that rebuilds the index) go straight through, exact.

A batch runs on one torch thread. A server with a batch to embed is a busy server: its other
threads are retrieving and answering, and intra-op threads spin-waiting for a core collapse.
Measured on a busy 2-core machine (bench/RESULTS.md, load test): batches of 16 embedded 85-94
questions/s on one thread and 7-10/s on two (one at a time: 24/s on one thread, 3/s on two).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qa.embedding import Embedder


@dataclass
class _Pending:
    text: str
    done: threading.Event = field(default_factory=threading.Event)
    vector: np.ndarray | None = None
    error: BaseException | None = None


class BatchingEmbedder:
    """Wraps an embedder: `encode_question` calls from many threads share model calls.

    `window_ms` is how long a batch that is not full waits for company once the model is
    already busy (0: never wait); `max_batch` caps one model call.
    """

    def __init__(
        self, inner: Embedder, *, max_batch: int = 16, window_ms: float = 0.0, calls: int = 1
    ) -> None:
        if max_batch < 1 or window_ms < 0 or calls < 1:
            raise ValueError(
                f"max_batch ({max_batch}) >= 1, window_ms ({window_ms}) >= 0, calls ({calls}) >= 1"
            )
        self.calls = calls
        self.inner = inner
        self.model_id = inner.model_id
        self.max_batch = max_batch
        self.window = window_ms / 1000
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._running = 0  # model calls running (the workers' and lone callers')
        self.batches = 0  # model calls made, for the bench
        self.questions = 0

    # The Embedder protocol, passed through.
    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    @property
    def question_path(self) -> str | None:
        return getattr(self.inner, "question_path", None)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """A build's texts (a reload that rebuilds the index), straight to the model."""
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)

    def encode_question(self, text: str) -> np.ndarray:
        with self._ready:
            alone = not self._running and not self._queue
            if alone:  # an idle model: embed in this thread, no hand-over to a worker
                self._running += 1
            else:
                pending = _Pending(text)
                self._queue.append(pending)
                self._workers = [w for w in self._workers if w.is_alive()]
                while len(self._workers) < self.calls:
                    worker = threading.Thread(target=self._run, name="qa-embed", daemon=True)
                    worker.start()
                    self._workers.append(worker)
                self._ready.notify_all()
        if alone:
            try:
                return self.inner.encode_question(text)
            finally:
                with self._ready:
                    self._running -= 1
                    self.batches += 1
                    self.questions += 1
                    self._ready.notify_all()  # what queued meanwhile is the worker's next batch
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.vector is not None
        return pending.vector

    def _run(self) -> None:
        loaded = False  # the model was in use just now: a batch may wait for company
        while True:
            with self._ready:
                while not self._queue or self._running >= self.calls:
                    loaded = loaded or self._running > 0
                    if not self._queue:
                        loaded = False
                    self._ready.wait()
                if loaded and self.window and len(self._queue) < self.max_batch:
                    deadline = time.monotonic() + self.window
                    while len(self._queue) < self.max_batch:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._ready.wait(left)
                    if not self._queue or self._running >= self.calls:
                        continue  # while this worker waited, others took the queue or the model
                batch = [
                    self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))
                ]
                self._running += 1
            try:
                vectors = self._encode([p.text for p in batch])
                for p, v in zip(batch, vectors, strict=True):
                    p.vector = v
            except BaseException as error:  # every waiter hears of it, none hangs
                for p in batch:
                    p.error = error
            with self._ready:
                self._running -= 1
                self.batches += 1
                self.questions += len(batch)
                loaded = True
                self._ready.notify_all()
            for p in batch:
                p.done.set()

    def _encode(self, texts: list[str]) -> np.ndarray:
        """The batch of questions on one torch thread (the embedder's own choice is every
        core for 8 texts or more), else the inner embedder's encode."""
        from qa.embedding import SentenceTransformerEmbedder

        if isinstance(self.inner, SentenceTransformerEmbedder):
            return self.inner.encode(texts, batch_size=len(texts), threads=1, questions=True)
        return self.inner.encode(texts, batch_size=len(texts))
