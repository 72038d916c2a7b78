"""A deterministic FakeEmbedder that implements the real Embedder protocol, for fast tests;
SQuAD paragraphs as a document text, and the fake model in place of the real one for `qa`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np


class FakeEmbedder:
    """Hashes words into a fixed-size bag-of-words vector: same text, same vector, no model.

    Texts that share words get similar vectors, so retrieval still behaves sensibly.
    """

    def __init__(
        self, dim: int = 64, max_tokens: int = 64, model_id: str = "fake-embedder"
    ) -> None:
        self.model_id = model_id
        self._dim = dim
        self._max_tokens = max_tokens
        self.encoded: list[
            str
        ] = []  # every text ever encoded, to assert what was (not) re-embedded

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.model_id}:{self._dim}".encode()).hexdigest()[:16]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                out[row, h % self._dim] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out

    def encode_question(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def squad_paragraphs(n: int, article: int = 0) -> str:
    from tests.conftest import SQUAD

    data = json.loads(SQUAD.read_text())["data"][article]
    return "\n\n".join(p["context"] for p in data["paragraphs"][:n])


def fake_embedder_everywhere(monkeypatch: Any, embedder: Any) -> None:
    """What tests/fake_qa.py does, in this process: `qa` commands run through qa_main get
    `embedder` (whichever module they ask for it)."""
    import qa.embedding
    import qa.knowledge

    monkeypatch.setattr(qa.embedding, "get_embedder", lambda model="": embedder)
    monkeypatch.setattr(qa.knowledge, "get_embedder", lambda model="": embedder)


def qa_env(**extra: str) -> dict[str, str]:
    """The environment for a `qa` subprocess: offline, this checkout first, no crash hook."""
    import os

    from qa.stores.embedded.files import CRASH_ENV
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env
