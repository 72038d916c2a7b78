"""Fit the answer step's two models on more than one kind of text, and print what they do.

  --spans  the short-answer span scorer (qa/asking/span_weights.json): a softmax over every
           candidate span of a question, its target each span's F1 with the gold answer; fitted
           on the shared SQuAD articles and the S-400 questions that name a short answer, and
           scored in-sample and leave-one-article-out (each SQuAD article by weights fitted on
           the other two and the S-400 questions). Writes the JSON file.
  --fit    the decline model (qa/asking/decline.py CONFIDENCE_WEIGHTS): logistic regression on
           three sources weighted equally, so SQuAD's 950 questions do not drown the rest:
             - the shared SQuAD v2 articles (answerable vs unanswerable, written to look
               answerable);
             - questions written about the S-400 article (bench/questions/s400.json): answerable
               ones (many paraphrased) and on-topic ones the article does not answer;
             - off-topic questions asked of the S-400 article.
           The bias is then moved to the operating point `operating_point` names.

Usage: python bench/calibrate.py [--spans] [--fit]   (without flags: the current models' table)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qa import knowledge  # noqa: E402
from qa.asking import answer, decline, spans  # noqa: E402
from qa.eval import evaluate  # noqa: E402
from qa.knowledge import KnowledgeBase  # noqa: E402
from qa.settings import Settings  # noqa: E402

SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"
QUESTIONS = REPO / "bench" / "questions" / "s400.json"
ARTICLE_DOCS = REPO / "index" / "docs"
# SQuAD's answerable questions the decline model may refuse: 3.6% (the issue allows 5%), the most
# that keeps the answer hit of the sentence answers (0.805 with no declines at all, since the
# span ranker of span_weights.json) at 0.78, where it was before.
WRONG_DECLINES = 0.036


class Row:
    """One question: its group, whether it is answerable, its decline signals, its spans."""

    def __init__(
        self, group: str, label: int, signals: dict[str, float], gold: list[str], article: int
    ):
        self.group, self.label, self.gold, self.article = group, label, gold, article
        self.features = np.array([signals.get(f, 0.0) for f in decline.FEATURES])
        self.spans: list[tuple[str, tuple[float, ...]]] = []


def collect() -> list[Row]:
    """Ask every calibration question through `KnowledgeBase.ask`, keeping the engine's spans."""
    rows: list[Row] = []
    captured: list[answer.Choice] = []
    real_choose = answer.choose

    def spy(*args: Any, **kwargs: Any) -> answer.Choice:
        choice = real_choose(*args, **kwargs)
        captured.append(choice)
        return choice

    knowledge.answer.choose = spy  # type: ignore[attr-defined]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings()
            for n, article in enumerate(evaluate.load_squad(SQUAD)):
                kb = evaluate.build_article(article, Path(tmp) / str(n), None, settings)
                for q in article.questions:
                    captured.clear()
                    reply = kb.ask(q.text)
                    group = "squad-ans" if q.answerable else "squad-unans"
                    rows.append(_row(group, reply.signals, list(q.answers), captured, n))
                kb.close()
            spec = json.loads(QUESTIONS.read_text())
            kb = KnowledgeBase.build([ARTICLE_DOCS], Path(tmp) / "s400")
            groups = [
                ("s400-ans", [(q, [s] if s else []) for q, _, s in spec["answerable"]]),
                ("s400-unans", [(q, []) for q in spec["unanswerable_on_topic"]]),
                ("off-topic", [(q, []) for q in spec["off_topic"]]),
            ]
            for group, questions in groups:
                for q, gold in questions:
                    captured.clear()
                    reply = kb.ask(q)
                    rows.append(_row(group, reply.signals, gold, captured, -1))
    finally:
        knowledge.answer.choose = real_choose  # type: ignore[attr-defined]
    return rows


def _row(
    group: str, signals: dict[str, float], gold: list[str], captured: list, article: int
) -> Row:
    row = Row(group, int(group in ("squad-ans", "s400-ans")), signals, gold, article)
    if captured and captured[-1].candidates:
        row.spans = [(text, features) for text, features in captured[-1].candidates]
    return row


# ----- the span scorer ------------------------------------------------------------------------
def fit_spans(rows: list[Row], l2: float = 0.01, steps: int = 800) -> np.ndarray:
    """Softmax over each question's candidates, target proportional to each candidate's F1."""
    xs, targets = [], []
    for row in rows:
        if not row.gold or not row.spans:
            continue
        f1 = np.array([max(evaluate.f1_score(t, g) for g in row.gold) for t, _ in row.spans])
        if f1.max() <= 0:
            continue
        weight = 5.0 if row.group.startswith("s400") else 1.0  # 45 questions against 473
        xs.append(np.array([f for _, f in row.spans]))
        targets.append(weight * f1 / f1.sum())
    w = np.zeros(len(spans.SPAN_FEATURES))
    total = sum(t.sum() for t in targets)
    for _ in range(steps):
        grad = -l2 * w * total
        for x, t in zip(xs, targets, strict=True):
            z = x @ w
            p = np.exp(z - z.max())
            grad += x.T @ (t - t.sum() * p / p.sum())
        w += grad / total
    return w


def cross_validated(rows: list[Row]) -> float:
    """Span F1 of SQuAD's answerable questions, each article scored by weights fitted without it."""
    total, count = 0.0, 0
    for article in sorted({r.article for r in rows if r.article >= 0}):
        w = fit_spans([r for r in rows if r.article != article])
        held = [r for r in rows if r.article == article]
        n = sum(1 for r in held if r.group == "squad-ans" and r.gold)
        total += span_f1(held, w, "squad-ans") * n
        count += n
    return total / max(count, 1)


def save_spans(w: np.ndarray, in_sample: float, cv: float) -> None:
    spans.WEIGHTS_FILE.write_text(
        json.dumps(
            {
                "fitted_by": "bench/calibrate.py --spans",
                "span_f1_in_sample": round(in_sample, 4),
                "span_f1_leave_one_article_out": round(cv, 4),
                "features": list(spans.SPAN_FEATURES),
                "weights": [round(float(x), 4) for x in w],
                "bias": 0.0,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )


def span_f1(rows: list[Row], w: np.ndarray, group: str) -> float:
    """Mean short-answer F1 of a group's answerable questions (declines not counted here)."""
    scores = []
    for row in rows:
        if row.group != group or not row.gold:
            continue
        if not row.spans:
            scores.append(0.0)
            continue
        best = max(row.spans, key=lambda s: float(np.dot(w, s[1])))[0]
        scores.append(max(evaluate.f1_score(best, g) for g in row.gold))
    return float(np.mean(scores)) if scores else float("nan")


# ----- the decline model ----------------------------------------------------------------------
def confidence(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ weights + bias)))


def fit(rows: list[Row]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.stack([r.features for r in rows])
    y = np.array([r.label for r in rows])
    # Each source counts as much as the others, whatever its size.
    source = [r.group.split("-")[0] for r in rows]
    sizes = {s: source.count(s) for s in set(source)}
    weight = np.array([1.0 / sizes[s] for s in source])
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(x, y, sample_weight=weight / weight.mean())
    weights, bias = model.coef_[0], float(model.intercept_[0])
    return weights, bias + operating_point(rows, x @ weights + bias)


def operating_point(rows: list[Row], z: np.ndarray) -> float:
    """The shift of the bias that puts the 0.5 threshold where the issue wants it: no S-400
    question the article answers declined and every off-topic one declined; then as many
    unanswerable questions declined as keeps SQuAD's answerable ones declined at most
    WRONG_DECLINES (or, when nothing does, as few of those as possible)."""
    group = np.array([r.group for r in rows])
    best, best_key = 0.0, (-1.0, -1.0)
    for shift in np.linspace(-4.0, 4.0, 321):
        declined = z + shift < 0
        if declined[group == "s400-ans"].any() or not declined[group == "off-topic"].all():
            continue
        wrong = declined[group == "squad-ans"].mean()
        unans = declined[group == "squad-unans"].mean() + declined[group == "s400-unans"].mean()
        key = (1.0, unans) if wrong <= WRONG_DECLINES else (0.0, -wrong)
        if key > best_key:
            best, best_key = float(shift), key
    return best


def report(rows: list[Row], weights: np.ndarray, bias: float) -> None:
    x = np.stack([r.features for r in rows])
    conf = confidence(x, weights, bias)
    groups = sorted({r.group for r in rows})
    print("share declined at each threshold")
    print("threshold | " + " | ".join(groups))
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        cells = []
        for g in groups:
            mask = np.array([r.group == g for r in rows])
            cells.append(f"{(conf[mask] < t).mean():.3f}")
        print(f"{t:.1f} | " + " | ".join(cells))
    from sklearn.metrics import roc_auc_score

    squad = np.array([r.group.startswith("squad") for r in rows])
    labels = np.array([r.label for r in rows])
    print(
        f"AUC on SQuAD answerable vs unanswerable: {roc_auc_score(labels[squad], conf[squad]):.3f}"
    )
    scale = x.std(axis=0)
    print("signal | weight | weight x spread (what it moves the log-odds by)")
    for name, w, s in zip(decline.FEATURES, weights, scale, strict=True):
        print(f"{name} | {w:+.3f} | {w * s:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", action="store_true", help="fit the short-answer span scorer")
    parser.add_argument("--fit", action="store_true", help="fit the decline model")
    parser.add_argument("--save", help="also write the collected rows here (a pickle)")
    args = parser.parse_args()
    rows = collect()
    if args.save:
        import pickle

        Path(args.save).write_bytes(pickle.dumps(rows))
    current = np.array(spans.SPAN_WEIGHTS)
    for group in ("squad-ans", "s400-ans"):
        print(f"span F1 ({group}, current weights): {span_f1(rows, current, group):.3f}")
    if args.spans:
        w = fit_spans(rows)
        print(f"\nfitted span weights {np.round(w, 2).tolist()}")
        print(f"features: {spans.SPAN_FEATURES}")
        for group in ("squad-ans", "s400-ans"):
            print(f"span F1 ({group}, fitted): {span_f1(rows, w, group):.3f}")
        cv = cross_validated(rows)
        print(f"span F1 (squad-ans, leave one article out): {cv:.3f}")
        save_spans(w, span_f1(rows, w, "squad-ans"), cv)
        print(f"wrote {spans.WEIGHTS_FILE}")
    weights, bias = np.array(decline.CONFIDENCE_WEIGHTS), decline.CONFIDENCE_BIAS
    print(f"\ncurrent decline weights {weights.tolist()} bias {bias}")
    report(rows, weights, bias)
    if args.fit:
        weights, bias = fit(rows)
        print(f"\nfitted CONFIDENCE_WEIGHTS {np.round(weights, 3).tolist()} bias {bias:.3f}")
        print(f"features: {decline.FEATURES}")
        report(rows, weights, bias)


if __name__ == "__main__":
    main()
