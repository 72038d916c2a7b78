"""Example questions that fit the knowledge base being served.

Configured ones (QA_EXAMPLES) come first; the default S-400 knowledge base has its own; any
other gets questions about the titles and section headings of its documents open to everyone,
kept only when the knowledge base really answers them (for a reader with no groups), so an
example never names a restricted document nor leads to "The documents do not say."
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from qa.knowledge import KnowledgeBase
from qa.serve.webconfig import DEFAULT_EXAMPLES
from qa.settings import DEFAULT_INDEX_DIR

MAX_EXAMPLES = 4
MAX_TRIES = 24  # questions tried at most (about 10 ms each)


def candidates(titles: Sequence[str]) -> list[str]:
    """Plain questions about each title, most natural first."""
    out: list[str] = []
    for title in titles:
        words = title.split()
        if not 0 < len(words) <= 8 or len(title) > 80:
            continue
        out.append(f"What is {title}?" if len(words) <= 4 else f"What does {title} say?")
    return out


def choose(kb: KnowledgeBase, configured: Sequence[str] = ()) -> tuple[str, ...]:
    if configured:
        return tuple(configured)
    if kb.folder is not None and Path(kb.folder).resolve() == Path(DEFAULT_INDEX_DIR).resolve():
        return DEFAULT_EXAMPLES
    public = [d for d in kb.documents if not d.groups]
    titles: list[str] = []
    for doc in sorted(public, key=lambda d: d.title.lower()):
        titles.append(doc.title)
        titles.extend(section[1] for section in doc.sections[:3] if section[1] != doc.title)
    chosen: list[str] = []
    for question in candidates(list(dict.fromkeys(titles)))[:MAX_TRIES]:
        if not kb.ask(question, groups=[]).abstained:
            chosen.append(question)
        if len(chosen) == MAX_EXAMPLES:
            break
    return tuple(chosen)


class Examples:
    """The examples for whichever knowledge base is current, worked out once per load."""

    def __init__(self, configured: Sequence[str] = ()) -> None:
        self.configured = tuple(configured)
        self._for: tuple[KnowledgeBase, tuple[str, ...]] | None = None
        self._lock = threading.Lock()

    def of(self, kb: KnowledgeBase) -> tuple[str, ...]:
        with self._lock:
            if self._for is None or self._for[0] is not kb:
                self._for = (kb, choose(kb, self.configured))
            return self._for[1]
