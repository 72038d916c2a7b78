"""The Python API: open or build a knowledge base and ask it questions.

The question river runs here: question -> search query -> retrieve -> answer -> Answer.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa import answer, lexical, store
from qa.embedding import Embedder, get_embedder
from qa.indexing import BuildReport, build_index, chunk_budget, document_hash
from qa.question import clean_question, search_query, validate_history
from qa.retrieval import retrieve
from qa.settings import DEFAULT_DOCS_DIR, DEFAULT_INDEX_DIR, Settings
from qa.types import Answer, Document, Passage

log = logging.getLogger("qa")


class KnowledgeBase:
    """An opened index plus the model that reads questions for it."""

    def __init__(
        self, folder: Path, data: store.IndexData, embedder: Embedder, settings: Settings
    ) -> None:
        self.folder = folder
        self.data = data
        self.embedder = embedder
        self.settings = settings
        self.last_build: BuildReport | None = None

    # ----- opening -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> KnowledgeBase:
        """Open the index in `path`; None opens the default S-400 knowledge base.

        The default one is (re)built, with a message, when it is missing or stale. Any other
        folder must match the configured model and chunking, or loading fails saying what
        differs and how to rebuild.
        """
        if path is None:
            return cls._load_default(settings, embedder)
        folder = Path(path)
        manifest = store.read_manifest(folder)
        settings = settings or Settings.from_env()
        embedder = embedder or get_embedder(_configured_model(settings, manifest))
        problem = _mismatch(manifest, embedder, settings, folder)
        if problem:
            raise store.StoreError(problem)
        return cls(folder, store.load(folder), embedder, settings)

    @classmethod
    def _load_default(cls, settings: Settings | None, embedder: Embedder | None) -> KnowledgeBase:
        settings = settings or Settings.from_env()
        embedder = embedder or get_embedder(settings.model)
        folder, docs = DEFAULT_INDEX_DIR, DEFAULT_DOCS_DIR
        reason = None
        try:
            manifest = store.read_manifest(folder)
            reason = _mismatch(manifest, embedder, settings, folder) or _stale(manifest, docs)
            if reason is None:
                return cls(folder, store.load(folder), embedder, settings)
        except store.StoreError as error:
            reason = reason or str(error)
        print(f"qa: building the default knowledge base ({reason})", file=sys.stderr)
        return cls.build([docs], folder, settings=settings, embedder=embedder, progress=False)

    @classmethod
    def build(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        progress: bool = False,
        **overrides: Any,
    ) -> KnowledgeBase:
        """Build an index of `paths` in `out_dir` (reusing unchanged documents) and open it."""
        settings = (settings or Settings.from_env()).with_overrides(**overrides)
        embedder = embedder or get_embedder(settings.model)
        report = build_index(paths, out_dir, embedder, settings, progress=progress)
        kb = cls(Path(out_dir), store.load(Path(out_dir)), embedder, settings)
        kb.last_build = report
        return kb

    # ----- asking ---------------------------------------------------------------------------
    def warm_up(self) -> KnowledgeBase:
        """Load the model and run one query, so the first real question is not the slow one."""
        self.ask("warm up")
        return self

    @property
    def documents(self) -> list[Document]:
        return self.data.documents

    def ask(self, question: str, history: Sequence[dict[str, str]] | None = None) -> Answer:
        """Answer a question from the documents, with the passages it came from."""
        began = time.perf_counter()
        text, notices = clean_question(question, self.settings.max_question_chars)
        turns = validate_history(history)
        query = search_query(text, turns, self.settings.max_question_chars)
        terms = lexical.terms(query)
        vector = self.embedder.encode([query])[0]
        found = retrieve(
            self.data,
            vector,
            terms,
            mode=self.settings.retrieval,
            candidates=self.settings.candidates,
        )
        retrieved = time.perf_counter()
        choice = answer.choose(self.data, found, text, terms, self.settings.answer_from)
        abstained = choice.confidence < self.settings.abstain_threshold
        docs = {d.id: d for d in self.data.documents}
        passages = []
        for hit in found.ranked[: self.settings.top_k]:
            chunk = self.data.chunks[hit.chunk]
            doc = docs[chunk.doc_id]
            passages.append(
                Passage(
                    chunk=chunk,
                    score=hit.score,
                    title=doc.title,
                    source=doc.source,
                    highlights=() if abstained else answer.highlights(self.data, hit.chunk, choice),
                    signals={"dense": hit.dense, "sentence": hit.sentence, "bm25": hit.bm25},
                )
            )
        reply = answer.DECLINE if abstained else answer.answer_text(self.data, choice)
        done = time.perf_counter()
        return Answer(
            question=text,
            text=reply,
            abstained=abstained,
            passages=tuple(passages),
            confidence=choice.confidence,
            timings_ms={
                "retrieve": (retrieved - began) * 1000,
                "answer": (done - retrieved) * 1000,
                "total": (done - began) * 1000,
            },
            notices=tuple(notices),
            search_query=query,
            signals=choice.evidence.signals() if choice.evidence else {},
        )


def _configured_model(settings: Settings, manifest: dict[str, Any]) -> str:
    """The model the index was built with, unless the user configured another one."""
    if "QA_MODEL" in os.environ or settings.model != Settings().model:
        return settings.model
    return str(manifest.get("model", {}).get("id", settings.model))


def _mismatch(
    manifest: dict[str, Any], embedder: Embedder, settings: Settings, folder: Path
) -> str | None:
    """What makes an index unusable with this model and these settings, or None."""
    hint = store.rebuild_hint(manifest, folder)
    model = manifest.get("model", {})
    if model.get("id") != embedder.model_id:
        return (
            f"{folder} was built with model {model.get('id')!r}, but the configured model is "
            f"{embedder.model_id!r}; {hint}"
        )
    if model.get("fingerprint") != embedder.fingerprint():
        return (
            f"{folder} was built with other weights of model {embedder.model_id!r} (fingerprint "
            f"{model.get('fingerprint')} vs {embedder.fingerprint()}); {hint}"
        )
    chunking = manifest.get("chunking", {})
    expected = {**settings.index_params(), "budget_tokens": chunk_budget(embedder, settings)}
    differ = [f"{k} {chunking.get(k)} vs {v}" for k, v in expected.items() if chunking.get(k) != v]
    if differ and _chunking_configured(settings):
        return f"{folder} was built with other chunking ({', '.join(differ)}); {hint}"
    return None


def _chunking_configured(settings: Settings) -> bool:
    defaults = Settings().index_params()
    return settings.index_params() != defaults or any(
        f"QA_{k.upper()}" in os.environ for k in defaults
    )


def _stale(manifest: dict[str, Any], docs: Path) -> str | None:
    """Why the default index no longer matches its documents, or None."""
    from qa.documents import load_documents

    documents, _ = load_documents([docs])
    built = {d["id"]: d["sha256"] for d in manifest.get("documents", [])}
    current = {d.id: document_hash(d) for d in documents}
    if built != current:
        return f"the documents in {docs} changed"
    return None
