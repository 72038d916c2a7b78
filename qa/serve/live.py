"""The knowledge base a server answers from: loaded once, reloadable from disk without a restart.

A reload builds the new knowledge base beside the old one and then swaps one reference, so a
question already being answered finishes on the old one and the next starts on the new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qa.embedding import Embedder
from qa.knowledge import KnowledgeBase
from qa.settings import Settings

log = logging.getLogger("qa")

Loader = Callable[[Embedder | None], KnowledgeBase]
"""Opens the knowledge base; given the embedder already in memory, so the model loads once."""


class NotReadyError(RuntimeError):
    """The knowledge base is still loading (or failed to load); the message says which."""


@dataclass(frozen=True)
class Loaded:
    kb: KnowledgeBase
    at: float  # time.time() when it was swapped in
    took_ms: float
    counts: dict[str, int]  # documents, chunks, sentences when it was opened


class LiveKnowledgeBase:
    """Holds the current KnowledgeBase; `current()` is cheap and never blocks on a reload."""

    def __init__(self, loader: Loader, *, warm_up: bool = True) -> None:
        self._loader = loader
        self._warm_up = warm_up
        self._loaded: Loaded | None = None
        self._error: str | None = None
        self._reload_lock = threading.Lock()  # one load at a time; readers never take it
        self.reloads = 0

    @classmethod
    def of(cls, kb: KnowledgeBase, loader: Loader | None = None) -> LiveKnowledgeBase:
        """An already opened knowledge base; reloads reopen its folder unless given a loader."""
        settings = kb.settings
        location = kb.location
        live = cls(
            loader
            or (
                lambda embedder: KnowledgeBase.load(location, settings=settings, embedder=embedder)
            ),
            warm_up=False,
        )
        live._loaded = Loaded(kb, time.time(), 0.0, kb.store.counts())
        return live

    @property
    def ready(self) -> bool:
        """A knowledge base is loaded (what `current` would return)."""
        return self._loaded is not None

    def current(self) -> KnowledgeBase:
        loaded = self._loaded  # one read of one reference: the swap is atomic
        if loaded is None:
            raise NotReadyError(
                "the knowledge base could not be opened; the server log says why"
                if self._error
                else "the knowledge base is still loading; try again in a moment"
            )
        return loaded.kb

    def load(self) -> KnowledgeBase:
        """Open (or reopen) the knowledge base from disk and swap it in; errors keep the old one."""
        with self._reload_lock:
            began = time.perf_counter()
            old = self._loaded
            try:
                kb = self._loader(old.kb.embedder if old else None)
                if self._warm_up:
                    kb.warm_up()
            except Exception as error:
                self._error = f"{type(error).__name__}: {error}"
                raise
            took = (time.perf_counter() - began) * 1000
            self._loaded = Loaded(kb, time.time(), took, kb.store.counts())
            self._error = None
            if old is not None:
                self.reloads += 1
            return kb

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    def load_in_background(self) -> threading.Thread:
        """Start loading; until it is done, `current()` raises NotReadyError."""

        def run() -> None:
            try:
                self.load()
            except Exception:
                log.exception("loading the knowledge base failed")

        thread = threading.Thread(target=run, name="qa-load", daemon=True)
        thread.start()
        return thread

    def status(self) -> dict[str, Any]:
        """What /healthz reports: never a server path or an error's text (those go to the log)."""
        loaded = self._loaded
        if loaded is None:
            return {"loaded": False, "failed": self._error is not None}
        kb = loaded.kb
        counts = loaded.counts
        return {
            "loaded": True,
            "failed": False,
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "model": kb.embedder.model_id,
            "questions": getattr(kb.embedder, "question_path", None),  # which graph, if any
            "loaded_at": round(loaded.at, 3),
            "load_ms": round(loaded.took_ms, 1),
            "reloads": self.reloads,
            "reloading": self._reload_lock.locked(),
            "last_reload_failed": self._error is not None,
        }


def precheck(index: str, settings: Settings) -> None:
    """Fail fast, before serving, when the knowledge base named cannot be opened at all."""
    from qa.stores import StoreError, is_url, open_store

    if not index:
        return  # the default knowledge base builds itself
    store = open_store(index, approximate_above=settings.approximate_above)
    try:
        if store.info() is None:
            flag = f"--store {store.location}" if is_url(index) else f"--out {store.location}"
            raise StoreError(
                f"no knowledge base in {store.location}; build one with: qa index PATH... {flag}"
            )
        verify = getattr(store, "verify", None)
        if verify is not None:  # the embedded store: every file there and intact
            verify()
    finally:
        store.close()
