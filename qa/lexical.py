"""Words to terms: the one analyzer BM25 and the answer's overlap scores share."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# bm25s's English stop words, plus the question words that carry no topic.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with what which who whom whose when where why how do does "
    "did has have had been were can could would should may might must shall its it's i you we he "
    "she him her his them our your my me about from than so also any some many much one "
    "name named called kind type".split()
)
_WORD = re.compile(r"\w+(?:[-']\w+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of a text, stop words kept."""
    return [w.lower() for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Stemmed content terms: lower-cased words without stop words."""
    return stems([w for w in words(text) if w not in STOPWORDS and not w.startswith("_")])


def stems(kept: list[str]) -> list[str]:
    """The stems of lower-cased content words (what `terms` makes of them)."""
    return list(_stemmer().stemWords(kept)) if kept else []
