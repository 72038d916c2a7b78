"""What a candidate span and the question look like around it: the words beside the question's
wh-phrase, what stands beside the span, the span's own shape and label. Plain string work, for
the span features of `spans.py`."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache

from qa.indexing.tagging import NOUN_PHRASE
from qa.stores.base import ScoredChunk
from qa.types import Sentence

_TOKEN = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)
_WH = frozenset("what which who whom whose when where why how".split())
_BROKEN = re.compile(r"[.;!?]\s")
_DIGIT = re.compile(r"\d")
_AUXILIARY = frozenset("is are was were do does did has have had can could will would".split())


def asks_subject(question: str, head: str) -> bool:
    """Whether the wh-phrase opens the question and a verb follows it ("What field analyzes
    ...?"): the answer is then the subject, before the words the question repeats."""
    words = [fold(m.group()) for m in _TOKEN.finditer(question)]
    if not words or words[0] not in _WH:
        return False
    end = 1
    if head:
        folded = fold(head)
        end = next((i + 1 for i in range(1, min(5, len(words))) if words[i] == folded), end)
    return end < len(words) and words[end] not in _AUXILIARY


def question_context(question: str, head: str) -> tuple[list[str], list[str]]:
    """The words just before the wh-phrase (nearest first) and just after it, folded: what
    stands beside the answer when the question is turned into a statement."""
    words = [fold(m.group()) for m in _TOKEN.finditer(question)]
    wh = next((i for i, w in enumerate(words) if w in _WH), None)
    if wh is None:
        return [], []
    end = wh + 1
    if head:
        folded = fold(head)
        end = next(
            (i + 1 for i in range(wh + 1, min(wh + 5, len(words))) if words[i] == folded), end
        )
    after = words[end : end + 4]
    if after and after[0] in _AUXILIARY:
        after = after[1:]
    return words[max(0, wh - 4) : wh][::-1], after


def fold(word: str) -> str:
    low = word.lower()
    return low[:-1] if len(low) > 3 and low.endswith("s") and not low.endswith("ss") else low


def aligned(asked: Sequence[str], beside: Sequence[str]) -> float:
    """Share of the question's context words found, each within one place of where it stood."""
    if not asked:
        return 0.0
    hits = sum(1 for i, w in enumerate(asked) if w in beside[max(0, i - 1) : i + 2])
    return hits / len(asked)


_LABEL_GROUPS = (
    frozenset({"PERSON"}),
    frozenset({"ORG"}),
    frozenset({"GPE", "LOC", "FAC"}),
    frozenset({"DATE", "TIME"}),
    frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "ORDINAL"}),
    frozenset({"NORP"}),
    frozenset({NOUN_PHRASE}),
)


@lru_cache(maxsize=64)
def labels(label: str) -> tuple[float, ...]:
    return tuple(1.0 if label in group else 0.0 for group in _LABEL_GROUPS)


def shape(
    hit: ScoredChunk,
    sentence: Sentence,
    a: int,
    b: int,
    label: str,
    joined: bool,
    entities: set[tuple[int, int]],
    nested: bool,
) -> tuple[float, ...]:
    """joined, wider, broken, bracketed, digit, nested: what the span's text looks like.
    `entities`: the [start, end) of the sentence's named entities; `nested`: another candidate
    lies inside this one."""
    base = hit.chunk.start
    text = hit.chunk.text[a - base : b - base]
    before = hit.chunk.text[max(sentence.start, a - 1) - base : a - base]
    return (
        1.0 if joined else 0.0,
        1.0 if label != NOUN_PHRASE and not joined and (a, b) not in entities else 0.0,
        1.0 if _BROKEN.search(text) else 0.0,
        1.0 if before in ("(", '"', "“", "'") else 0.0,
        1.0 if _DIGIT.search(text) else 0.0,
        1.0 if nested else 0.0,
    )


def nested_spans(bounds: Sequence[tuple[int, int]]) -> list[bool]:
    """For each [start, end), whether another of `bounds` lies inside it."""
    order = sorted(set(bounds))
    starts = [x for x, _ in order]
    out = []
    for a, b in bounds:
        lo, hi = bisect_left(starts, a), bisect_left(starts, b)
        out.append(any(y <= b and (x, y) != (a, b) for x, y in order[lo:hi]))
    return out
