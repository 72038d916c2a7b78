"""The short answer: the span of an evidence sentence that is what the question asks for.

Spans were typed at index time (entities and noun phrases, `Sentence.entities`); here each span
of the best sentences is scored on arithmetic alone: does its type fit the question, how close
does it sit to the question's terms found in its sentence and on which side, does it merely
repeat the question, how good is its sentence. No model runs.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from qa import lexical
from qa.asking.expect import PERSON_NOUNS, Expected
from qa.asking.span_shape import (
    aligned,
    asks_subject,
    fold,
    labels,
    nested_spans,
    question_context,
    shape,
)
from qa.indexing.tagging import NOUN_PHRASE
from qa.stores.base import ScoredChunk

_TOKEN = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)  # the tokens lexical.terms() reads
_JOINERS = re.compile(r"^\s*(?:of|and)\s+$|^\s*['’]s\s+$", re.IGNORECASE)
_DEFINITION_START = re.compile(r"^\s*(?:,|\(|-|–|—|is|was|are|were)\s*$", re.IGNORECASE)
_CLAUSE = re.compile(r"[,;:()]|\s[-–—]\s")
_WH = frozenset("what which who whom whose when where why how".split())
_CUES = {
    "date": frozenset({"in", "on", "since", "during", "until", "by", "from", "before", "after"}),
    "place": frozenset({"in", "at", "to", "from", "near", "into", "across"}),
    "person": frozenset({"by", "with", "to"}),
    "group": frozenset({"by", "with", "to", "of"}),
    "number": frozenset({"about", "over", "nearly", "approximately", "than", "of", "to"}),
    "thing": frozenset({"called", "named", "known", "as", "termed", "dubbed"}),
}
_COPULA = frozenset({"is", "was", "are", "were", "as", "be", "been", "became", "becomes"})
_LAST_WORD = re.compile(r"(\w+)\W*$")
_NUMERIC = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME", "ORDINAL"})

SPAN_FEATURES = (
    "typed",  # its label is one the question asks for
    "entity",  # a named entity rather than a plain noun phrase
    "numeric",  # a number, amount, date or time
    "near",  # IDF-weighted closeness of the question's terms in its sentence (0..1)
    "left",  # share of the question's terms within three words before it
    "right",  # ... and within three words after it
    "in_question",  # share of its own words that are the question's
    "head_inside",  # it holds the noun the question names ("which airport": "Van Nuys Airport")
    "head_after",  # that noun follows it ("the YPG militia" for "what militia")
    "sentence",  # its sentence's score less the best sentence's
    "first",  # it lies in the best sentence
    "coverage",  # IDF-weighted share of the question's terms in its sentence
    "length",  # log(1 + words)
    "single",  # one word
    "appositive",  # it follows the subject of a definition question ("Conkar, a member ...")
    "proper",  # it starts with a capital inside its sentence
    "gap",  # log(1 + words between it and the nearest question term)
    "window",  # IDF-weighted share of the question's terms within five words of it
    "order",  # share of those terms on the side of it that they sit of the wh-word in the question
    "clause",  # punctuation between it and the nearest question term
    "primary",  # its label is the best fit for the question ("who": a person)
    "between",  # question terms sit on both sides of it, within six words
    "cue",  # the word before it is the cue its kind takes ("in 1850", "by Karp", "called X")
    "after_copula",  # it follows "is"/"was"/"as" (what the question's subject is)
    "joined",  # two phrases joined by "of"/"and"/"'s"
    "wider",  # a noun phrase around a named entity, longer than it ("two soccer teams")
    "broken",  # it runs over a sentence end or a semicolon ("X. Thus")
    "bracketed",  # inside brackets or quotes
    "digit",  # it holds a digit
    "nested",  # another candidate of its sentence lies inside it
    "asked_end",  # its last word is one of the question's ("two ... teams" for "how many teams")
    "opens",  # it starts its sentence (often the subject)
    "place",  # where in its sentence it starts (0: first word, 1: last)
    "subject_before",  # the question asks for a subject and its terms follow the span
    "object_after",  # the question asks for an object (or complement) and its terms precede it
    "left_context",  # the words before the wh-phrase in the question stand just before it
    "right_context",  # the words after the wh-phrase stand just after it
    "label_person",
    "label_org",
    "label_place",
    "label_date",
    "label_number",
    "label_norp",
    "label_np",
)
# The span scorer's weights live beside this module (span_weights.json), written by
# `bench/calibrate.py --spans`: a softmax over each question's candidates, the target their F1
# with the gold answer, fitted on the shared SQuAD articles and the S-400 questions.
WEIGHTS_FILE = Path(__file__).with_name("span_weights.json")


def _load_weights() -> tuple[tuple[float, ...], float]:
    spec = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    if tuple(spec["features"]) != SPAN_FEATURES:
        raise RuntimeError(f"{WEIGHTS_FILE} was fitted on other span features; refit it")
    return tuple(float(w) for w in spec["weights"]), float(spec.get("bias", 0.0))


SPAN_WEIGHTS, SPAN_BIAS = _load_weights()
_WEIGHTS = np.array(SPAN_WEIGHTS)
STAY_MARGIN = 0.25
COVERED = 0.5  # share of the question's terms a sentence must hold to count as answering


@dataclass(frozen=True)
class Short:
    """A short answer: a span of one sentence of one retrieved passage."""

    rank: int  # 0-based rank of the passage
    sentence: int  # the sentence's position among that passage's sentences
    start: int  # [start, end) offsets into the document's text
    end: int
    label: str
    score: float
    near: float  # how much of the question sits beside it in its sentence (0..1)
    typed: bool  # its label is one the question asks for


class Token(NamedTuple):  # a tuple: a sentence makes dozens, and an answer scores four
    start: int  # offsets into the document's text
    end: int
    term: str | None  # the stemmed term, None for a stop word


def tokens(text: str, offset: int) -> list[Token]:
    """Tokens of a sentence with the terms `lexical.terms` gives them, offsets into the document.

    (`lexical.terms` of the kept words, stemmed in one call: _TOKEN is its tokenizer and
    `_stop` its stop rule, so re-reading them joined would find the same words.)"""
    found = [(m.start() + offset, m.end() + offset, m.group()) for m in _TOKEN.finditer(text)]
    lowered = [w.lower() for _, _, w in found]
    keep = [not (w in lexical.STOPWORDS or w.startswith("_")) for w in lowered]
    stems = iter(lexical.stems([w for w, k in zip(lowered, keep, strict=True) if k]))
    return [
        Token(a, b, next(stems) if k else None) for (a, b, _), k in zip(found, keep, strict=True)
    ]


def candidates(hit: ScoredChunk, n: int) -> list[tuple[int, int, str]]:
    """The typed spans of sentence n, plus phrases joined by "of"/"'s"/"and" ("the king of X").

    A noun phrase that holds a named entity takes its label ("the YPG militia": ORG), and so
    does a joined phrase that starts with one, so a typed question can be answered by either.
    """
    own, joined = _spans_and_joins(hit, n)
    return own + joined


def _spans_and_joins(
    hit: ScoredChunk, n: int
) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    s = hit.sentences[n]
    spans = [(a, b, label) for a, b, label in s.entities if s.start <= a < b <= s.end]
    entities = [(a, b, label) for a, b, label in spans if label != NOUN_PHRASE]
    spans = [
        (a, b, _inner_label(a, b, entities) if label == NOUN_PHRASE else label)
        for a, b, label in spans
    ]
    text, base = hit.chunk.text, hit.chunk.start
    by_start: dict[int, list[int]] = {}
    for a, b, _ in spans:
        by_start.setdefault(a, []).append(b)
    joined: list[tuple[int, int, str]] = []
    for a1, b1, label in spans:
        for a2 in range(b1 + 1, b1 + 10):
            if a2 in by_start and _JOINERS.match(text[b1 - base : a2 - base]):
                joined.extend((a1, b2, label) for b2 in by_start[a2])
    return spans, joined


def _inner_label(a: int, b: int, entities: Sequence[tuple[int, int, str]]) -> str:
    """The label of the first named entity inside [a, b), or "NP"."""
    return next((label for x, y, label in entities if a <= x and y <= b), NOUN_PHRASE)


def question_sides(question: str) -> dict[str, float]:
    """Per question term: -1 when it comes before the wh-word, +1 after (0: no wh-word)."""
    words = [m.group() for m in _TOKEN.finditer(question)]
    wh = next((i for i, w in enumerate(words) if w.lower() in _WH), None)
    sides: dict[str, float] = {}
    for i, t in enumerate(tokens(question, 0)):
        if t.term and t.term not in sides:
            sides[t.term] = 0.0 if wh is None else (-1.0 if i < wh else 1.0)
    return sides


def scored_spans(
    ranked: Sequence[ScoredChunk],
    sentences: Sequence[tuple[float, int, int]],
    expected: Expected,
    weights: Mapping[str, float],
    question: str = "",
) -> list[tuple[Short, tuple[float, ...]]]:
    """Every candidate span of `sentences` ((score, rank, position), best first), scored."""
    out: list[tuple[Short, tuple[float, ...]]] = []
    if not sentences:
        return out
    sides = question_sides(question)
    context = question_context(question, expected.head)
    subject_wanted = asks_subject(question, expected.head)
    fronted = bool(question.strip()) and question.strip().split()[0].lower() in _WH
    total = sum(weights.values()) or 1.0
    top_score = sentences[0][0]
    subject = set(lexical.terms(expected.subject))
    head = set(lexical.terms(expected.head))
    asked = {t: w for t, w in weights.items() if t not in head}
    for position, (sentence_score, rank, n) in enumerate(sentences):
        hit = ranked[rank]
        s = hit.sentences[n]
        toks = tokens(hit.sentence_text(n), s.start)
        matched = [(i, asked.get(t.term or "", 0.0)) for i, t in enumerate(toks)]
        matched = [(i, w) for i, w in matched if w > 0]
        present = {toks[i].term for i, _ in matched}
        coverage = sum(w for t, w in asked.items() if t in present) / total
        starts, ends = [t.start for t in toks], [t.end for t in toks]
        words = [
            fold(hit.chunk.text[t.start - hit.chunk.start : t.end - hit.chunk.start]) for t in toks
        ]
        own, joins = _spans_and_joins(hit, n)
        found, plain = own + joins, len(own)
        nested = nested_spans([(a, b) for a, b, _ in found])
        named = {(a, b) for a, b, label in s.entities if label != NOUN_PHRASE}
        features_of: list[tuple[float, ...]] = []
        shorts: list[tuple[int, int, str, float, bool]] = []
        for index, (a, b, label) in enumerate(found):
            first, last = bisect_left(starts, a), bisect_right(ends, b) - 1
            if first > last:
                continue
            inside = range(first, last + 1)
            content = [toks[i].term for i in inside if toks[i].term]
            if not content and label == "NP":
                continue
            in_q = sum(1 for t in content if t in asked) / max(len(content), 1)
            if all(t in weights for t in content) and content:
                continue  # the question's own words are not its answer
            near = left = right = window = order = 0.0
            before = after_side = False
            nearest, nearest_at = 99, first
            for i, w in matched:
                if first <= i <= last:
                    continue
                gap = first - i if i < first else i - last
                near += w / (1.0 + 0.5 * (gap - 1))
                if gap <= 3:
                    left, right = (left + w, right) if i < first else (left, right + w)
                if gap <= 6:
                    before, after_side = (True, after_side) if i < first else (before, True)
                if gap <= 5:
                    window += w
                    side = sides.get(toks[i].term or "", 0.0)
                    order += w if side * (i - first) > 0 else 0.0
                if gap < nearest:
                    nearest, nearest_at = gap, i
            between = (
                (toks[nearest_at].end, toks[first].start)
                if nearest_at < first
                else (toks[last].end, toks[nearest_at].start)
            )
            base = hit.chunk.start
            clause = bool(_CLAUSE.search(hit.chunk.text[between[0] - base : between[1] - base]))
            typed = label in expected.labels if expected.labels else False
            if label == NOUN_PHRASE and expected.kind == "person":
                typed = _last_word(hit, b) in PERSON_NOUNS  # "the president", "the lawmaker"
            after = toks[last + 1].term if last + 1 < len(toks) else None
            cue = _previous_word(hit, a, s.start)
            features = (
                1.0 if typed else 0.0,
                0.0 if label == "NP" else 1.0,
                1.0 if label in _NUMERIC else 0.0,
                near / total,
                left / total,
                right / total,
                in_q,
                1.0 if head and head & set(content) and len(content) > 1 else 0.0,
                1.0 if head and after in head else 0.0,
                sentence_score - top_score,
                1.0 if position == 0 else 0.0,
                coverage,
                math.log1p(len(inside)),
                1.0 if len(inside) == 1 else 0.0,
                _appositive(hit, toks, first, subject) if subject else 0.0,
                1.0 if first > 0 and hit.chunk.text[a - hit.chunk.start].isupper() else 0.0,
                math.log1p(nearest),
                window / total,
                order / window if window else 0.0,
                1.0 if clause else 0.0,
                1.0 if label in expected.primary else 0.0,
                1.0 if before and after_side else 0.0,
                1.0 if cue in _CUES.get(expected.kind, _CUES["thing"]) else 0.0,
                1.0 if cue in _COPULA else 0.0,
                *shape(hit, s, a, b, label, index >= plain, named, nested[index]),
                1.0 if last < len(toks) and toks[last].term in weights else 0.0,
                1.0 if first == 0 else 0.0,
                first / max(len(toks) - 1, 1),
                1.0 if subject_wanted and nearest_at > last else 0.0,
                1.0 if fronted and not subject_wanted and nearest_at < first else 0.0,
                aligned(context[0], words[max(0, first - 4) : first][::-1]),
                aligned(context[1], words[last + 1 : last + 5]),
                *labels(label),
            )
            features_of.append(features)
            shorts.append((a, b, label, near / total, typed))
        if features_of:
            scores = np.asarray(features_of) @ _WEIGHTS + SPAN_BIAS
            out.extend(
                (Short(rank, n, a, b, label, float(score), near, typed), features)
                for (a, b, label, near, typed), score, features in zip(
                    shorts, scores, features_of, strict=True
                )
            )
    return out


def pick(found: Sequence[tuple[Short, tuple[float, ...]]], home: tuple[int, int]) -> Short | None:
    """The best-scoring span; one of the best sentence (`home`) is kept unless one elsewhere
    scores clearly higher (STAY_MARGIN): the best sentence is more often the one that answers."""
    best = max((s for s, _ in found), key=lambda s: s.score, default=None)
    at_home = max(
        (s for s, _ in found if (s.rank, s.sentence) == home), key=lambda s: s.score, default=None
    )
    if best is not None and at_home is not None and best.score - at_home.score < STAY_MARGIN:
        return at_home
    return best


def _last_word(hit: ScoredChunk, end: int) -> str:
    """The last word before document offset `end`, lower case, singular ("ministers": minister)."""
    found = _LAST_WORD.search(
        hit.chunk.text[max(0, end - hit.chunk.start - 30) : end - hit.chunk.start]
    )
    word = found.group(1).lower() if found else ""
    return word[:-1] if word.endswith("s") and word[:-1] in PERSON_NOUNS else word


def _previous_word(hit: ScoredChunk, at: int, sentence_start: int) -> str:
    """The word just before document offset `at` inside its sentence, lower case ("" if none)."""
    base = hit.chunk.start
    found = _LAST_WORD.search(hit.chunk.text[max(sentence_start, at - 20) - base : at - base])
    return found.group(1).lower() if found else ""


def _appositive(hit: ScoredChunk, toks: list[Token], first: int, subject: set[str]) -> float:
    """1 when the span follows the subject of a definition question ("Conkar, a member...")."""
    if first == 0 or toks[first - 1].term not in subject:
        return 0.0
    base = hit.chunk.start
    gap = hit.chunk.text[toks[first - 1].end - base : toks[first].start - base]
    return 1.0 if _DEFINITION_START.match(gap) else 0.0
