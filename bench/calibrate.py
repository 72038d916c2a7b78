"""Fit the abstention model on more than one kind of text and print what each threshold declines.

Three sources, weighted equally so SQuAD's 950 questions do not drown the rest:
  - the shared SQuAD v2 articles (answerable vs unanswerable, written to look answerable);
  - questions written about the S-400 article (bench/questions/s400.json): answerable ones
    (many paraphrased) and on-topic ones the article does not answer;
  - off-topic questions asked of the S-400 article.

Usage: python bench/calibrate.py [--fit]   (--fit prints new weights for qa/answer.py)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa import answer, evaluate  # noqa: E402
from qa.kb import KnowledgeBase  # noqa: E402
from qa.settings import Settings  # noqa: E402

SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"
QUESTIONS = REPO / "bench" / "questions" / "s400.json"
ARTICLE_DOCS = REPO / "index" / "docs"


def collect() -> list[tuple[str, int, np.ndarray]]:
    """(group, label, features) for every calibration question."""
    rows: list[tuple[str, int, np.ndarray]] = []
    results = evaluate.run(SQUAD, Settings())
    for o in results["hybrid"][1]:
        feats = np.array([o.signals[f] for f in answer.FEATURES])
        rows.append(("squad-ans" if o.answerable else "squad-unans", int(o.answerable), feats))
    spec = json.loads(QUESTIONS.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase.build([ARTICLE_DOCS], tmp)
        groups = [
            ("s400-ans", 1, [q for q, _ in spec["answerable"]]),
            ("s400-unans", 0, spec["unanswerable_on_topic"]),
            ("off-topic", 0, spec["off_topic"]),
        ]
        for group, label, questions in groups:
            for q in questions:
                signals = kb.ask(q).signals
                rows.append((group, label, np.array([signals[f] for f in answer.FEATURES])))
    return rows


def confidence(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights + bias)))


def fit(rows: list[tuple[str, int, np.ndarray]]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.stack([r[2] for r in rows])
    y = np.array([r[1] for r in rows])
    groups = [r[0] for r in rows]
    # Each source counts as much as the others, whatever its size.
    source = [
        "squad" if g.startswith("squad") else "s400" if g.startswith("s400") else g for g in groups
    ]
    sizes = {s: source.count(s) for s in set(source)}
    weight = np.array([1.0 / sizes[s] for s in source])
    model = LogisticRegression(C=10.0, max_iter=1000)
    model.fit(x, y, sample_weight=weight / weight.mean())
    return model.coef_[0], float(model.intercept_[0])


def report(rows: list[tuple[str, int, np.ndarray]], weights: np.ndarray, bias: float) -> None:
    x = np.stack([r[2] for r in rows])
    conf = confidence(x, weights, bias)
    groups = sorted({r[0] for r in rows})
    print("share declined at each threshold")
    print("threshold | " + " | ".join(groups))
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        cells = []
        for g in groups:
            mask = np.array([r[0] == g for r in rows])
            cells.append(f"{(conf[mask] < t).mean():.3f}")
        print(f"{t:.1f} | " + " | ".join(cells))
    from sklearn.metrics import roc_auc_score

    squad = np.array([r[0].startswith("squad") for r in rows])
    labels = np.array([r[1] for r in rows])
    auc = roc_auc_score(labels[squad], conf[squad])
    print(f"AUC on SQuAD answerable vs unanswerable: {auc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true", help="fit new weights and report them")
    args = parser.parse_args()
    rows = collect()
    current = np.array(answer.CONFIDENCE_WEIGHTS), answer.CONFIDENCE_BIAS
    print(f"current weights {current[0].tolist()} bias {current[1]}")
    report(rows, *current)
    if args.fit:
        weights, bias = fit(rows)
        print(f"\nfitted weights {np.round(weights, 3).tolist()} bias {bias:.3f}")
        print(f"features: {answer.FEATURES}")
        report(rows, weights, bias)


if __name__ == "__main__":
    main()
