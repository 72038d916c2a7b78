"""Whether to answer at all: a logistic model over what the evidence says about the question.

Its weights are fitted by `bench/calibrate.py --fit` on three kinds of text at once; see
CONFIDENCE_WEIGHTS. The confidence is that model's probability that the answer is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FEATURES = (
    "cosine",
    "coverage",
    "passage_score",
    "kind_match",
    "sentence_coverage",
    "rarest_missing",
    "span_near",
    "typed",
)
# Fitted by `bench/calibrate.py --fit` on the shared SQuAD articles, questions written about the
# S-400 article (bench/questions/s400.json) and off-topic questions, each source weighted alike.
CONFIDENCE_WEIGHTS = (-2.353, -0.175, 5.045, 1.677, 0.845, -0.131, 0.0, 0.0)
CONFIDENCE_BIAS = -3.967


@dataclass(frozen=True)
class Evidence:
    """The signals the decline model reads, from the answer and the first passage."""

    cosine: float  # the answer sentence's cosine with the question
    passage_score: float  # the fused (hybrid) score of the first passage
    coverage: float  # IDF-weighted share of question terms found in the first passage
    kind_match: float  # 1 when the answer holds a span of the type asked for (or none is asked)
    sentence_coverage: float  # IDF-weighted share of question terms found in the answer
    rarest_missing: float  # IDF of the rarest question term absent from the first passage
    span_near: float  # share of the question's terms right beside the short answer (0: none)
    typed: float  # 1 when the question asks for a typed span (a person, a date, a number...)

    def features(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in FEATURES)

    def signals(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.features(), strict=True))

    def confidence(self) -> float:
        z = CONFIDENCE_BIAS + sum(
            w * f for w, f in zip(CONFIDENCE_WEIGHTS, self.features(), strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z))
