"""Measure answers on SQuAD v2.0-format data: evidence hit@k, MRR, answer hit, abstention, latency.

Each article is its own corpus: its paragraphs joined with a blank line, indexed, then every
question asked through `KnowledgeBase.ask`, exactly as a user would.
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.embedding import Embedder
from qa.knowledge import KnowledgeBase
from qa.settings import Settings
from qa.stores.postgres.schema import schema_of, with_schema

MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    spans: tuple[tuple[int, int], ...]  # gold answer spans in the article's joined text
    answers: tuple[str, ...]  # gold answer texts; empty when unanswerable

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    questions: tuple[Question, ...]


@dataclass
class Outcome:
    """One question's result, a line of the --out JSONL file."""

    article: str
    id: str
    question: str
    answerable: bool
    gold: list[str]
    answer: str
    abstained: bool
    confidence: float
    rank: int | None  # 1-based rank of the first passage covering a gold span, None if none
    answer_hit: bool
    answer_words: int
    short_answer: str | None  # the short answer given (None: declined, or none found)
    em: float  # exact match of the short answer with a gold answer (SQuAD normalisation)
    f1: float  # best token F1 of the short answer with a gold answer
    latency_ms: float
    scores: list[float] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)


def load_squad(path: str | Path) -> list[Article]:
    """Articles of a SQuAD v2.0 JSON file, paragraphs joined with a blank line."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError(f"{path} is not SQuAD-format JSON (no 'data' list)")
    articles = []
    for entry in raw["data"]:
        parts: list[str] = []
        questions: list[Question] = []
        offset = 0
        for paragraph in entry["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                spans = tuple(
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
                    for a in answers
                )
                questions.append(
                    Question(qa["id"], qa["question"], spans, tuple(a["text"] for a in answers))
                )
            parts.append(context)
            offset += len(context) + 2
        articles.append(Article(entry["title"], "\n\n".join(parts), tuple(questions)))
    return articles


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    """SQuAD's token F1 between two answers, after `normalize`."""
    pred, truth = normalize(prediction).split(), normalize(gold).split()
    common = Counter(pred) & Counter(truth)
    same = sum(common.values())
    if not pred or not truth:
        return float(pred == truth)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def short_scores(short: str | None, gold: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of a short answer against gold answers; no answer scores 0."""
    if short is None or not gold:
        return 0.0, 0.0
    em = max(float(normalize(short) == normalize(g)) for g in gold)
    return em, max(f1_score(short, g) for g in gold)


def build_article(
    article: Article,
    folder: Path,
    embedder: Embedder | None,
    settings: Settings,
    store: str | None = None,
) -> KnowledgeBase:
    """Index one article as its own corpus: in `folder`, or in the database `store` names."""
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", article.title) or "article"
    (docs / f"{safe}.txt").write_text(article.text, encoding="utf-8")
    return KnowledgeBase.build(
        [docs], store or folder / "index", settings=settings, embedder=embedder, rebuild=True
    )


def evaluate_article(kb: KnowledgeBase, article: Article) -> list[Outcome]:
    outcomes = []
    for q in article.questions:
        answer = kb.ask(q.text)
        rank = None
        for n, p in enumerate(answer.passages, start=1):
            if any(p.chunk.start <= a and b <= p.chunk.end for a, b in q.spans):
                rank = n
                break
        reply = MARKER.sub("", answer.text)
        hit = not answer.abstained and any(
            normalize(g) and normalize(g) in normalize(reply) for g in q.answers
        )
        short = answer.short_answer.text if answer.short_answer else None
        em, f1 = short_scores(short, q.answers)
        outcomes.append(
            Outcome(
                article=article.title,
                id=q.id,
                question=q.text,
                answerable=q.answerable,
                gold=list(q.answers),
                answer=reply,
                abstained=answer.abstained,
                confidence=answer.confidence,
                rank=rank,
                answer_hit=hit,
                answer_words=len(reply.split()),
                short_answer=short,
                em=em,
                f1=f1,
                latency_ms=answer.timings_ms["total"],
                scores=[round(p.score, 4) for p in answer.passages],
                signals=answer.signals,
            )
        )
    return outcomes


def summarize(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """The figures for one group of questions."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]

    def share(items: Iterable[bool], n: int) -> float:
        return round(sum(items) / n, 4) if n else float("nan")

    n = len(answerable)
    latencies = np.array([o.latency_ms for o in outcomes]) if outcomes else np.zeros(1)
    answered = [o for o in answerable if not o.abstained]
    return {
        "questions": len(outcomes),
        "answerable": n,
        "unanswerable": len(unanswerable),
        "hit@1": share((o.rank == 1 for o in answerable), n),
        "hit@3": share((o.rank is not None and o.rank <= 3 for o in answerable), n),
        "hit@5": share((o.rank is not None and o.rank <= 5 for o in answerable), n),
        "mrr@10": round(sum(1 / o.rank for o in answerable if o.rank) / n, 4) if n else 0.0,
        "answer_hit": share((o.answer_hit for o in answerable), n),
        "short_em": round(sum(o.em for o in answerable) / n, 4) if n else 0.0,
        "short_f1": round(sum(o.f1 for o in answerable) / n, 4) if n else 0.0,
        "short_given": share((o.short_answer is not None for o in answerable), n),
        "answer_words": round(float(np.mean([o.answer_words for o in answered])), 1)
        if answered
        else 0.0,
        "declined_unanswerable": share((o.abstained for o in unanswerable), len(unanswerable)),
        "declined_answerable": share((o.abstained for o in answerable), n),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
    }


def run(
    path: str | Path,
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    modes: Sequence[str] = ("hybrid",),
    workdir: Path | None = None,
    progress: bool = False,
    store: str | None = None,
) -> dict[str, tuple[dict[str, dict[str, float]], list[Outcome]]]:
    """Evaluate every article of a SQuAD file under each retrieval mode.

    Returns, per mode, the per-article and overall figures and every question's outcome.
    Each article is indexed once and asked under every mode.
    """
    from tqdm import tqdm

    # Ten passages, so that hit@5 and MRR@10 can be measured; the answer still comes from the
    # first `answer_from` passages, as in normal use.
    settings = settings.with_overrides(top_k=max(settings.top_k, 10))
    articles = load_squad(path)
    results: dict[str, tuple[dict[str, dict[str, float]], list[Outcome]]] = {
        mode: ({}, []) for mode in modes
    }
    total = sum(len(a.questions) for a in articles) * len(modes)
    with (
        tempfile.TemporaryDirectory(prefix="qa-eval-", dir=workdir) as tmp,
        tqdm(total=total, desc="asking", unit="q", disable=not progress) as bar,
    ):
        for n, article in enumerate(articles):
            url = with_schema(store, f"{schema_of(store)}_eval_{n}") if store else None
            kb = build_article(article, Path(tmp) / str(n), embedder, settings, url)
            embedder = kb.embedder
            base = kb.settings
            for mode in modes:
                kb.settings = base.with_overrides(retrieval=mode)
                kb.warm_up()
                article_outcomes = evaluate_article(kb, article)
                report, outcomes = results[mode]
                report[article.title] = summarize(article_outcomes)
                outcomes.extend(article_outcomes)
                bar.update(len(article.questions))
            if url:  # each article's corpus lives in a schema of its own, dropped after
                drop = getattr(kb.store, "drop", None)
                if drop is not None:
                    drop()
            kb.close()
    for report, outcomes in results.values():
        report["overall"] = summarize(outcomes)
    return results


def hit_at_k(outcomes: Sequence[Outcome], ks: Iterable[int]) -> list[float]:
    """Share of answerable questions whose evidence is within the first k passages."""
    ranks = [o.rank for o in outcomes if o.answerable]
    return [sum(1 for r in ranks if r is not None and r <= k) / max(len(ranks), 1) for k in ks]


COLUMNS = (
    ("hit@1", "hit@1"), ("hit@3", "hit@3"), ("hit@5", "hit@5"), ("mrr@10", "MRR@10"),
    ("answer_hit", "answer hit"), ("answer_words", "words"),
    ("short_em", "short EM"), ("short_f1", "short F1"),
    ("declined_unanswerable", "declined unans."), ("declined_answerable", "declined ans."),
    ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
)  # fmt: skip


def table(report: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the report, one row per article and one overall."""
    head = "| corpus | questions | " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 2)
    rows = [head, rule]
    for name, figures in report.items():
        cells = [f"{figures[key]:g}" for key, _ in COLUMNS]
        rows.append(f"| {name} | {figures['questions']:g} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_outcomes(outcomes: Sequence[Outcome], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as handle:
        for o in outcomes:
            handle.write(json.dumps(asdict(o), ensure_ascii=False) + "\n")


def check_floors(report: dict[str, dict[str, float]], floors: dict[str, Any]) -> list[str]:
    """Figures of the overall report below their floor ("declined_answerable" is a ceiling)."""
    failures = []
    overall = report["overall"]
    for key, bound in floors.get("min", {}).items():
        if overall[key] < bound:
            failures.append(f"{key} {overall[key]} is below its floor {bound}")
    for key, bound in floors.get("max", {}).items():
        if overall[key] > bound:
            failures.append(f"{key} {overall[key]} is above its ceiling {bound}")
    return failures
