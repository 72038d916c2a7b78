"""Ranked chunks to an answer: the short answer, the sentences that hold it, or a decline.

No model runs here: sentence vectors and typed spans were computed at index time, so choosing
is arithmetic over them and the question's words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from qa import lexical
from qa.asking import decline
from qa.asking.decline import CONFIDENCE_BIAS, CONFIDENCE_WEIGHTS, FEATURES, Evidence
from qa.asking.expect import Expected, expect
from qa.asking.question import names
from qa.asking.retrieval import Retrieval
from qa.asking.spans import COVERED, SPAN_FEATURES, Short, pick, scored_spans
from qa.stores.base import ScoredChunk, Store

DECLINE = "The documents do not say."

# Weights of the sentence score: cosine, IDF-weighted term overlap, passage score, type match.
SENTENCE_WEIGHTS = (1.0, 0.35, 0.3, 0.08)
SPAN_SENTENCES = 4  # the best sentences whose spans compete for the short answer
EXPLAIN_MAX = 3  # sentences an explanation may join
EXPLAIN_MARGIN = 0.12  # how far below the best sentence a joined one may score
REPEAT = 0.6  # term overlap (Jaccard) above which a sentence repeats one already chosen
FAINT = 0.3  # an answer cosine below this resembles nothing of the question (off-topic: < 0.15)
_NEVER_SEEN = "never seen"  # no document term has a space: its IDF is that of an unseen term
_NEGATION = re.compile(r"\b(not|never|no|none|neither|nor|without)\b|n't\b", re.IGNORECASE)

# Without index-time types (the entity model missing), the old surface rules stand in.
_FALLBACK = {
    "number": re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|"
                         r"thousand|million|billion|dozen|several|half)\b", re.IGNORECASE),
    "date": re.compile(r"\b(1\d{3}|20\d{2}|January|February|March|April|May|June|July|August|"
                       r"September|October|November|December|century|decade|years?)\b"),
    "person": re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+"),
}  # fmt: skip
_FALLBACK.update(
    money=_FALLBACK["number"], percent=_FALLBACK["number"], duration=_FALLBACK["date"],
    place=_FALLBACK["person"], group=_FALLBACK["person"],
)  # fmt: skip


@dataclass(frozen=True)
class Choice:
    evidence: Evidence | None
    sentences: list[tuple[int, int]]  # (passage rank, sentence position) of the answer, in order
    confidence: float
    short: Short | None = None  # the short answer, when a span answers the question
    expected: Expected | None = None
    # Every span that competed, with its features: what `bench/calibrate.py --spans` fits on.
    candidates: list[tuple[str, tuple[float, ...]]] = field(default_factory=list)


def choose(
    store: Store,
    retrieval: Retrieval,
    question: str,
    query_terms: Sequence[str],
    top_k: int,
) -> Choice:
    """Score every sentence of the top passages, find the short answer, read the evidence."""
    top = retrieval.ranked[:top_k]
    expected = expect(question)
    if not top:
        return Choice(None, [], 0.0, expected=expected)
    weights = store.idf(set(query_terms) | {_NEVER_SEEN})
    unseen = weights.pop(_NEVER_SEEN)  # the IDF of a term no document holds
    total = sum(weights.values()) or 1.0
    best_passage = top[0].fused or 1.0
    wc, wl, wp, wk = SENTENCE_WEIGHTS
    scored: list[tuple[float, int, int]] = []
    terms_of: dict[tuple[int, int], set[str]] = {}
    for rank, hit in enumerate(top):
        passage = wp * max(hit.fused, 0.0) / max(best_passage, 1e-6)
        for n, cosine in enumerate(hit.chunk.sentence_cosines):
            sentence_terms = set(lexical.terms(hit.chunk.sentence_text(n)))
            terms_of[(rank, n)] = sentence_terms
            overlap = sum(w for t, w in weights.items() if t in sentence_terms) / total
            kind = wk * _holds_type(top[rank].chunk, n, expected)
            scored.append((wc * cosine + wl * overlap + passage + kind, rank, n))
    if not scored:
        return Choice(None, [], 0.0, expected=expected)
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    chunks = [hit.chunk for hit in top]
    found = (
        scored_spans(chunks, scored[:SPAN_SENTENCES], expected, weights, question)
        if expected.short
        else []
    )
    # A typed question is answered by a span of its type or not at all ("When...?": a date).
    usable = [(s, f) for s, f in found if f[_TYPED]] if expected.typed else found
    short = pick(usable, (scored[0][1], scored[0][2]))
    if expected.kind == "definition":  # "Who is Conkar?": all that stands beside the name
        beside = [s for s, f in found if f[_APPOSITIVE]]
        short = max(beside, key=lambda s: (s.end - s.start, s.score), default=None)
    if short is not None:
        chosen = [(short.rank, short.sentence)]
    elif expected.kind == "statement":  # "What did Kaidanow say?": her statement goes on
        rank, n = scored[0][1], scored[0][2]
        chosen = [(rank, m) for m in range(n, min(n + EXPLAIN_MAX, len(chunks[rank].sentences)))]
    elif expected.kind == "explanation":
        chosen = _explanation(scored, terms_of, weights)
    else:
        chosen = [(scored[0][1], scored[0][2])]
    rank, n = chosen[0]
    passage_terms = set(lexical.terms(top[0].chunk.chunk.text))
    answer_terms = set().union(*(terms_of[c] for c in chosen))
    cosine = max(chunks[r].sentence_cosines[s] for r, s in chosen)
    # Type signals only where the index holds types: an untyped store (no entity model at
    # build) must not read as "no span of the asked type anywhere".
    typed = expected.typed and any(s.entities for hit in chunks for s in hit.sentences)
    evidence = Evidence(
        cosine=cosine,
        faint=max(0.0, FAINT - cosine),
        passage_score=top[0].fused,  # the fused score whatever mode ranked it
        coverage=sum(w for t, w in weights.items() if t in passage_terms) / total,
        sentence_coverage=sum(w for t, w in weights.items() if t in answer_terms) / total,
        rarest_missing=max((w for t, w in weights.items() if t not in passage_terms), default=0.0),
        kind_match=_kind_match(chunks, scored[:SPAN_SENTENCES], expected, found),
        span_near=short.near if short else 0.0,
        typed=1.0 if expected.typed else 0.0,
        typed_absent=1.0 if typed and not any(f[_TYPED] for _, f in found) else 0.0,
        typed_support=max((f[_COVERAGE] for _, f in found if f[_TYPED]), default=0.0)
        if typed
        else sum(w for t, w in weights.items() if t in answer_terms) / total,
        names_missing=min(2.0, sum(1.0 for name in names(question) if _lacks(name, answer_terms))),
        negated=1.0 if _NEGATION.search(question) else 0.0,
        undescribed=_share_missing(expected.describes, answer_terms, weights),
        names_unknown=min(
            2.0, sum(1.0 for name in names(question) if _unknown(name, weights, unseen))
        ),
    )
    candidates = [(_text(chunks[s.rank], s), f) for s, f in found]
    return Choice(evidence, chosen, evidence.confidence(), short, expected, candidates)


def _holds_type(hit: ScoredChunk, n: int, expected: Expected) -> float:
    """1 when sentence n holds a span of the type the question asks for."""
    if not expected.typed:
        return 0.0
    sentence = hit.sentences[n]
    if sentence.entities:
        return 1.0 if any(label in expected.labels for *_, label in sentence.entities) else 0.0
    rule = _FALLBACK.get(expected.kind)
    return 1.0 if rule and rule.search(hit.sentence_text(n)) else 0.0


def _kind_match(
    chunks: Sequence[ScoredChunk],
    sentences: Sequence[tuple[float, int, int]],
    expected: Expected,
    found: Sequence[tuple[Short, tuple[float, ...]]],
) -> float:
    """1 when a sentence of the evidence both covers the question's terms and holds a span of
    the type asked for (always, when the question asks for no type)."""
    if not expected.typed:
        return 1.0
    if any(s.entities for _, r, n in sentences for s in (chunks[r].sentences[n],)):
        return float(any(f[_TYPED] and f[_COVERAGE] >= COVERED for _, f in found))
    return max(_holds_type(chunks[r], n, expected) for _, r, n in sentences)  # untyped store


def _share_missing(text: str, terms: set[str], weights: dict[str, float]) -> float:
    """IDF-weighted share of `text`'s terms missing from `terms` (0 for no text)."""
    own = {t: weights.get(t, 0.0) for t in lexical.terms(text)}
    total = sum(own.values())
    return sum(w for t, w in own.items() if t not in terms) / total if total else 0.0


def _unknown(name: str, weights: dict[str, float], unseen: float) -> bool:
    """Whether no document holds any term of a name of the question ("Jupiter", "UGSS")."""
    own = lexical.terms(name)
    return bool(own) and all(weights.get(t, unseen) >= unseen - 1e-9 for t in own)


def _lacks(name: str, terms: set[str]) -> bool:
    """Whether a name of the question ("Fethullah Gulen", "1191") is missing from `terms`."""
    own = lexical.terms(name)
    return bool(own) and not set(own) <= terms


def _text(hit: ScoredChunk, short: Short) -> str:
    return hit.chunk.text[short.start - hit.chunk.start : short.end - hit.chunk.start]


_TYPED = SPAN_FEATURES.index("typed")
_COVERAGE = SPAN_FEATURES.index("coverage")
_APPOSITIVE = SPAN_FEATURES.index("appositive")


def _explanation(
    scored: list[tuple[float, int, int]],
    terms_of: dict[tuple[int, int], set[str]],
    weights: dict[str, float],
) -> list[tuple[int, int]]:
    """Up to three sentences that each add support: close to the best, sharing question terms
    or going on from a sentence already taken (the rest of a statement: "Buying Patriots, she
    said, ..."), and not repeating one. In passage order, then text order."""
    best = scored[0][0]
    chosen = [(scored[0][1], scored[0][2])]
    for score, rank, n in scored[1:]:
        if len(chosen) >= EXPLAIN_MAX or score < best - 2 * EXPLAIN_MARGIN:
            break
        terms = terms_of[(rank, n)]
        follows = (rank, n - 1) in chosen
        if not follows and (score < best - EXPLAIN_MARGIN or not terms & weights.keys()):
            continue
        if any(_jaccard(terms, terms_of[c]) > REPEAT for c in chosen):
            continue
        chosen.append((rank, n))
    return sorted(chosen)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(len(a | b), 1)


def answer_text(retrieval: Retrieval, choice: Choice) -> str:
    """The chosen sentences, each followed by the marker of the passage it came from."""
    return " ".join(
        f"{retrieval.ranked[rank].chunk.sentence_text(n)} [{rank + 1}]"
        for rank, n in choice.sentences
    )


def short_answer(retrieval: Retrieval, choice: Choice) -> tuple[str, int, int, int] | None:
    """(text, passage rank 1-based, start, end) of the short answer, offsets in the passage."""
    s = choice.short
    if s is None:
        return None
    chunk = retrieval.ranked[s.rank].chunk.chunk
    start, end = s.start - chunk.start, s.end - chunk.start
    return chunk.text[start:end], s.rank + 1, start, end


def highlights(retrieval: Retrieval, passage: int, choice: Choice) -> tuple[tuple[int, int], ...]:
    """Spans of the answer sentences inside a passage's text (an overlapping chunk shares them)."""
    c = retrieval.ranked[passage].chunk.chunk
    spans = []
    for rank, n in choice.sentences:
        sentence = retrieval.ranked[rank].chunk.sentences[n]
        owner = retrieval.ranked[rank].chunk.chunk
        if owner.doc_id == c.doc_id and c.start <= sentence.start and sentence.end <= c.end:
            spans.append((sentence.start - c.start, sentence.end - c.start))
    return tuple(sorted(set(spans)))


__all__ = [
    "CONFIDENCE_BIAS",
    "CONFIDENCE_WEIGHTS",
    "DECLINE",
    "FEATURES",
    "Choice",
    "answer_text",
    "choose",
    "decline",
    "highlights",
    "short_answer",
]
