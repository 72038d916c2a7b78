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
    "typed_absent",
    "typed_support",
    "names_missing",
    "negated",
    "undescribed",
    "names_unknown",
    "faint",
)
# Fitted by `bench/calibrate.py --fit` on the shared SQuAD articles, questions written about the
# S-400 article (bench/questions/s400.json) and off-topic questions, each source weighted alike;
# the bias then moved so that 0.5 declines every off-topic question, no S-400 question the
# article answers and at most 3.6% of SQuAD's answerable ones (calibrate's WRONG_DECLINES), and
# as many unanswerable ones as that allows. calibrate prints what each signal weighs.
CONFIDENCE_WEIGHTS = (
    -0.089, -1.011, 1.618, 0.547, 0.689, -0.073, -0.414, 0.238, -2.887, 0.679, -0.112, -2.674,
    -2.972, -2.743, -10.869,
)  # fmt: skip
CONFIDENCE_BIAS = 0.8


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
    typed_absent: float  # 1 when it does and no sentence of the evidence holds one
    typed_support: float  # share of the question's terms in the best sentence holding one
    names_missing: float  # names and numbers of the question the answer lacks (0, 1 or 2)
    negated: float  # 1 when the question says "not", "never"...: SQuAD's unanswerable trick
    undescribed: float  # "Who is the defence minister?": share of that description the answer lacks
    names_unknown: float  # names of the question no document holds at all (0, 1 or 2)
    faint: float  # how far the answer's cosine falls below 0.3: nothing resembles the question

    def features(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in FEATURES)

    def signals(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.features(), strict=True))

    def confidence(self) -> float:
        z = CONFIDENCE_BIAS + sum(
            w * f for w, f in zip(CONFIDENCE_WEIGHTS, self.features(), strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z))
