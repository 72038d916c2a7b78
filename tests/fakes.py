"""A deterministic FakeEmbedder that implements the real Embedder protocol, for fast tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

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
