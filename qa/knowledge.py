"""The Python API: open or build a knowledge base and ask it questions.

The question river runs here: question -> search query -> retrieve -> answer -> Answer.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from qa import lexical
from qa.asking import answer
from qa.asking.question import clean_question, resolve, validate_history
from qa.asking.retrieval import retrieve
from qa.embedding import Embedder, get_embedder
from qa.indexing.build import BuildReport, document_hash, index_documents, store_info
from qa.settings import DEFAULT_DOCS_DIR, DEFAULT_INDEX_DIR, Settings
from qa.stores import Filter, Store, StoreError, is_url, open_store
from qa.types import Answer, DocumentInfo, Passage, ShortAnswer

StoreSpec = str | os.PathLike[str]


class KnowledgeBase:
    """A store plus the model that reads questions for it."""

    def __init__(self, store: Store, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.last_build: BuildReport | None = None

    @property
    def location(self) -> str:
        return self.store.location

    @property
    def folder(self) -> Path | None:
        """The embedded store's folder (None for a database)."""
        return None if is_url(self.store.location) else Path(self.store.location)

    # ----- opening -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        spec: StoreSpec | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> KnowledgeBase:
        """Open a knowledge base: a folder, a postgresql:// URL, or None for the default one.

        The default one is (re)built, with a message, when it is missing or stale. Any other
        store must match the configured model and chunking, or opening fails saying what
        differs and how to rebuild.
        """
        settings = settings or Settings()
        if spec is None:
            return cls._load_default(settings, embedder)
        store = open_store(spec, approximate_above=settings.approximate_above)
        info = store.info()
        if info is None:
            raise StoreError(
                f"no knowledge base in {store.location}; build one with: qa index PATH... "
                + (f"--store {store.location}" if is_url(spec) else f"--out {store.location}")
            )
        if embedder is None:
            configured = "model" in settings.configured
            embedder = get_embedder(settings.model if configured else info.model_id)
        problem = info.mismatch(
            store_info(embedder, settings),
            check_chunking=bool(settings.configured & set(settings.index_params())),
        )
        if problem:
            raise StoreError(f"{store.location}: {problem}; {store.rebuild_hint()}")
        store.counts()  # reads (and, for a folder, verifies) it now rather than at a question
        return cls(store, embedder, settings)

    @classmethod
    def _load_default(cls, settings: Settings, embedder: Embedder | None) -> KnowledgeBase:
        embedder = embedder or get_embedder(settings.model)
        store = open_store(DEFAULT_INDEX_DIR, approximate_above=settings.approximate_above)
        reason = _why_rebuild(store, embedder, settings)
        if reason is None:
            return cls(store, embedder, settings)
        print(
            f"qa: building the default knowledge base from index/docs/ ({reason}); "
            "this takes 10 to 30 seconds",
            file=sys.stderr,
        )
        kb = cls.build(
            [DEFAULT_DOCS_DIR],
            DEFAULT_INDEX_DIR,
            settings=settings,
            embedder=embedder,
            progress=False,
            rebuild=True,
        )
        seconds = kb.last_build.seconds if kb.last_build else 0.0
        print(f"qa: the default knowledge base is ready ({seconds:.1f} s)", file=sys.stderr)
        return kb

    @classmethod
    def build(
        cls,
        paths: Sequence[StoreSpec],
        out: StoreSpec,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        progress: bool = False,
        keep_missing: bool = False,
        rebuild: bool = False,
    ) -> KnowledgeBase:
        """Make the store `out` (a folder or a postgresql:// URL) hold exactly the documents
        under `paths` (reusing unchanged ones), then open it."""
        from qa.indexing.documents import load_documents, path_text

        settings = settings or Settings()
        embedder = embedder or get_embedder(settings.model)
        store = open_store(out, approximate_above=settings.approximate_above)
        documents, skipped = load_documents(paths)
        report = index_documents(
            store,
            documents,
            embedder,
            settings,
            keep_missing=keep_missing,
            rebuild=rebuild,
            sources=[path_text(p) for p in paths],
            skipped=skipped,
            progress=progress,
        )
        kb = cls(store, embedder, settings)
        kb.last_build = report
        return kb

    # ----- asking ---------------------------------------------------------------------------
    def warm_up(self) -> KnowledgeBase:
        """Load the model and run one query, so the first real question is not the slow one."""
        self.ask("warm up")
        return self

    @property
    def documents(self) -> list[DocumentInfo]:
        return self.store.documents()

    def ask(
        self,
        question: str,
        history: Sequence[dict[str, str]] | None = None,
        *,
        groups: Iterable[str] | None = None,
        doc_ids: Iterable[str] | None = None,
    ) -> Answer:
        """Answer a question from the documents, with the passages it came from.

        `groups` are the reader's access groups (None: no restriction, e.g. the CLI); a reader
        only sees documents open to everyone or to one of their groups. `doc_ids` limits the
        answer to those documents.
        """
        began = time.perf_counter()
        text, notices = clean_question(question, self.settings.max_question_chars)
        turns = validate_history(history)
        read = resolve(text, turns, self.settings.max_question_chars)
        where = Filter(
            groups=None if groups is None else frozenset(groups),
            doc_ids=None if doc_ids is None else frozenset(doc_ids),
        )
        vector = self.embedder.encode_question(read.search)
        found = retrieve(
            self.store,
            vector,
            lexical.terms(read.search),
            mode=self.settings.retrieval,
            candidates=self.settings.candidates,
            where=where,
        )
        retrieved = time.perf_counter()
        # The answer is chosen by what this question asks (its pronouns resolved), not by the
        # question it follows, which only helped retrieval find the passages.
        choice = answer.choose(
            self.store,
            found,
            read.question,
            lexical.terms(read.question),
            self.settings.answer_from,
        )
        abstained = choice.confidence < self.settings.abstain_threshold
        short = None if abstained else answer.short_answer(found, choice)
        top = found.ranked[: self.settings.top_k]
        docs = self.store.document_info({hit.chunk.chunk.doc_id for hit in top})
        passages = []
        for rank, hit in enumerate(top):
            chunk = hit.chunk.chunk
            doc = docs.get(chunk.doc_id)
            passages.append(
                Passage(
                    chunk=chunk,
                    score=hit.score,
                    title=doc.title if doc else chunk.doc_id,
                    source=doc.source if doc else chunk.doc_id,
                    url=doc.url_at(chunk.start) if doc else None,
                    section=section[1]
                    if doc and (section := doc.section_at(chunk.start))
                    else None,
                    highlights=() if abstained else answer.highlights(found, rank, choice),
                    signals={"dense": hit.dense, "sentence": hit.sentence, "bm25": hit.bm25},
                )
            )
        reply = answer.DECLINE if abstained else answer.answer_text(found, choice)
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
            search_query=read.search,
            signals=choice.evidence.signals() if choice.evidence else {},
            short_answer=ShortAnswer(*short) if short and short[1] <= len(passages) else None,
        )

    def close(self) -> None:
        self.store.close()


def _why_rebuild(store: Store, embedder: Embedder, settings: Settings) -> str | None:
    """Why the default knowledge base must be (re)built, in a reader's words, or None."""
    from qa.indexing.documents import load_documents

    try:
        info = store.info()
        if info is None:
            return "first run"
        if info.mismatch(store_info(embedder, settings)):
            return "the model, the chunking or the index format changed"
        built = {d.id: d.sha256 for d in store.documents()}
    except StoreError:
        return "the previous index could not be read"
    documents, _ = load_documents([DEFAULT_DOCS_DIR])
    if built != {d.id: document_hash(d) for d in documents}:
        return "its documents changed"
    return None
