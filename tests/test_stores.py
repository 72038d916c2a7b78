"""One contract, two engines: every test here runs on the embedded store and on PostgreSQL.

The PostgreSQL server is real (tests/pgserver.py starts PostgreSQL 18 + pgvector); the
embedder is the deterministic FakeEmbedder, so the tests are about storage, not the model.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from qa.asking.retrieval import retrieve
from qa.indexing.build import index_documents
from qa.settings import Settings
from qa.stores import EVERYTHING, Filter, StoreBusyError, StoreError, open_store
from qa.types import Document
from tests.fakes import FakeEmbedder

SETTINGS = Settings(chunk_tokens=40)


def doc(doc_id: str, text: str, **meta) -> Document:
    return Document(id=doc_id, title=doc_id.title(), source=doc_id, text=text, **meta)


DOCS = [
    doc("lighthouse.txt", "The old lighthouse stood on the cliff. Martha kept the lamp lit."),
    doc(
        "payroll.txt",
        "Salaries are paid on the last Friday. Payroll questions go to the finance office.",
        groups=("hr",),
    ),
    doc(
        "rockets.md",
        "The rocket reached orbit in 1961. Its engine burned kerosene and liquid oxygen.\n\n"
        "A second paragraph about the launch pad and the weather that day.",
        url="https://wiki.example.org/Rockets",
        revision="42",
    ),
]


@pytest.fixture(params=["embedded", "postgres"])
def spec(request, tmp_path):
    if request.param == "embedded":
        return str(tmp_path / "kb")
    return request.getfixturevalue("pg_schema_url")


def build(spec, documents, embedder=None, **options):
    store = open_store(spec)
    report = index_documents(
        store, documents, embedder or FakeEmbedder(), SETTINGS, progress=False, **options
    )
    return store, report


def all_chunk_ids(store, where=EVERYTHING) -> set[str]:
    vector = FakeEmbedder().encode(["lighthouse payroll rocket"])[0]
    return {c for c, _ in store.search_chunks(vector, 1000, where)}


def test_ids_are_stable_and_content_derived(spec):
    store, _ = build(spec, DOCS)
    ids = all_chunk_ids(store)
    assert "rockets.md::0" in ids and "rockets.md::1" in ids
    assert all(i.split("::")[0] in {d.id for d in DOCS} for i in ids)
    fetched = store.fetch(sorted(ids), FakeEmbedder().encode(["x"])[0])
    for chunk_id, scored in fetched.items():
        assert scored.chunk.id == chunk_id
        assert [s.id for s in scored.sentences] == [
            f"{chunk_id}.{n}" for n in range(len(scored.sentences))
        ]
    store.close()
    # Reopened, and after another document changes: the same ids.
    store, report = build(spec, [*DOCS[:2], doc("rockets.md", DOCS[2].text + " More text.")])
    assert report.embedded_documents == 1 and report.reused_documents == 2
    assert {i for i in all_chunk_ids(store) if not i.startswith("rockets")} == {
        i for i in ids if not i.startswith("rockets")
    }


def test_metadata_travels_with_documents(spec):
    store, _ = build(spec, DOCS)
    info = {d.id: d for d in store.documents()}
    assert info["rockets.md"].url == "https://wiki.example.org/Rockets"
    assert info["rockets.md"].revision == "42"
    assert info["payroll.txt"].groups == ("hr",)
    assert info["lighthouse.txt"].groups == () and info["lighthouse.txt"].url is None
    assert len(info["lighthouse.txt"].sha256) == 64 and info["lighthouse.txt"].indexed_at
    assert store.document_info(["rockets.md", "nope"]).keys() == {"rockets.md"}


def test_only_changed_documents_are_embedded(spec):
    embedder = FakeEmbedder()
    build(spec, DOCS, embedder)
    embedder.encoded.clear()
    changed = doc("lighthouse.txt", "The old lighthouse stood on the cliff. Nobody kept it.")
    _, report = build(spec, [changed, *DOCS[1:]], embedder)
    assert (report.embedded_documents, report.reused_documents) == (1, 2)
    assert embedder.encoded and all("lighthouse" in t or "Nobody" in t for t in embedder.encoded)


def test_a_removed_document_is_gone_from_every_search(spec):
    store, _ = build(spec, DOCS)
    assert any(i.startswith("payroll") for i in all_chunk_ids(store))
    store, report = build(spec, [DOCS[0], DOCS[2]])
    assert report.removed_documents == 1
    vector = FakeEmbedder().encode(["salaries payroll finance"])[0]
    assert not any(c.startswith("payroll") for c, _ in store.search_chunks(vector, 50, EVERYTHING))
    assert not any(
        c.startswith("payroll") for c, _ in store.search_sentences(vector, 50, EVERYTHING)
    )
    assert store.keyword_search(["payrol", "salari"], 50, EVERYTHING) == []
    assert "payroll.txt" not in {d.id for d in store.documents()}
    assert store.fetch(["payroll.txt::0"], vector) == {}
    assert store.counts()["documents"] == 2
    # Re-adding it brings it back; --keep-missing keeps what is not given.
    store, _ = build(spec, [DOCS[1]], keep_missing=True)
    assert store.counts()["documents"] == 3


def test_filters_apply_inside_every_search(spec):
    store, _ = build(spec, DOCS)
    vector = FakeEmbedder().encode(["salaries payroll finance office"])[0]
    outsider = Filter(groups=frozenset({"engineering"}))
    insider = Filter(groups=frozenset({"hr", "engineering"}))
    for where, visible in ((outsider, False), (insider, True), (EVERYTHING, True)):
        found = {c for c, _ in store.search_chunks(vector, 50, where)}
        found |= {c for c, _ in store.search_sentences(vector, 50, where)}
        found |= {c for c, _ in store.keyword_search(["payrol", "salari"], 50, where)}
        assert any(c.startswith("payroll") for c in found) is visible, where
    only = Filter(doc_ids=frozenset({"rockets.md"}))
    assert {c.split("::")[0] for c in all_chunk_ids(store, only)} == {"rockets.md"}
    # A filtered search still returns k rows when k rows are allowed.
    assert len(store.search_chunks(vector, 3, outsider)) == 3


def test_a_mismatched_store_is_refused_with_the_rebuild_command(spec):
    build(spec, DOCS)
    other = FakeEmbedder(model_id="another-model")
    with pytest.raises(StoreError, match="another-model") as caught:
        build(spec, DOCS, other)
    assert "--rebuild" in str(caught.value)
    store, report = build(spec, DOCS[:1], other, rebuild=True)
    assert report.embedded_documents == 1 and store.counts()["documents"] == 1
    info = store.info()
    assert info is not None and info.model_id == "another-model"


def test_a_second_writer_is_refused_at_once(spec):
    store, _ = build(spec, DOCS)
    info = store.info()
    assert info is not None
    with (
        open_store(spec).writer(info),
        pytest.raises(StoreBusyError, match="another 'qa index'"),
        open_store(spec).writer(info),
    ):
        pass


def test_readers_never_see_half_a_document(spec):
    build(spec, DOCS)
    big = doc("zebra.txt", "\n\n".join(f"Zebra fact number {n} is here." for n in range(30)))
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        reader = open_store(spec)
        try:
            while not stop.is_set():
                if hasattr(reader, "refresh"):
                    reader.refresh()
                seen.append(len(reader.keyword_search(["zebra"], 1000, EVERYTHING)))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        store, _ = build(spec, [*DOCS, big])
        final = len(store.keyword_search(["zebra"], 1000, EVERYTHING))
        for _ in range(3):  # let the reader see the committed state too
            n = len(seen)
            while len(seen) == n and thread.is_alive():
                threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert final == 30
    assert set(seen) <= {0, final}, sorted(set(seen))
    assert seen[-1] == final


def test_both_stores_rank_alike(tmp_path, pg_schema_url):
    """The same documents give the same fused ranking and scores in both engines."""
    embedded, _ = build(str(tmp_path / "kb"), DOCS)
    postgres, _ = build(pg_schema_url, DOCS)
    embedder = FakeEmbedder()
    for question in ("Who kept the lamp lit?", "When did the rocket reach orbit?", "payroll"):
        vector = embedder.encode([question])[0]
        terms = ["lamp", "lit", "kept", "rocket", "orbit", "payrol"]
        a = retrieve(embedded, vector, terms, candidates=10)
        b = retrieve(postgres, vector, terms, candidates=10)
        assert [r.chunk.chunk.id for r in a.ranked] == [r.chunk.chunk.id for r in b.ranked]
        np.testing.assert_allclose(
            [(r.dense, r.sentence, r.bm25) for r in a.ranked],
            [(r.dense, r.sentence, r.bm25) for r in b.ranked],
            rtol=1e-4,
            atol=1e-5,
        )
        assert embedded.idf(terms) == pytest.approx(postgres.idf(terms))


def test_typed_spans_travel_with_sentences(spec):
    """Entities found at index time are stored with their sentence and come back on fetch."""
    from dataclasses import replace

    from qa.indexing.build import embed_batch, store_info

    embedder = FakeEmbedder()
    (update,) = embed_batch([(DOCS[0], "h" * 64)], embedder, SETTINGS, None)
    first = update.sentences[0]
    typed = replace(first, entities=((first.start, first.start + 3, "PERSON"),))
    update = replace(update, sentences=[typed, *update.sentences[1:]])
    store = open_store(spec)
    with store.writer(store_info(embedder, SETTINGS)) as writer:
        writer.upsert(update)
    store.close()
    fetched = open_store(spec).fetch([first.chunk_id], embedder.encode(["x"])[0])
    sentences = fetched[first.chunk_id].sentences
    assert sentences[0].entities == ((first.start, first.start + 3, "PERSON"),)
    # The others keep whatever the indexer's tagger found in them, unchanged.
    assert [s.entities for s in sentences[1:]] == [s.entities for s in update.sentences[1:]]


def test_sections_give_citations_an_anchor(spec):
    text = "Intro line about rockets.\n\nHistory\n\nThe rocket reached orbit in 1961."
    page = doc(
        "rocket-page",
        text,
        url="https://wiki.example.org/Rocket",
        sections=((0, "", ""), (text.index("History"), "History", "History")),
    )
    store, _ = build(spec, [page])
    info = store.document_info(["rocket-page"])["rocket-page"]
    assert info.sections == page.sections
    assert info.url_at(0) == "https://wiki.example.org/Rocket"
    assert info.url_at(text.index("The rocket")) == "https://wiki.example.org/Rocket#History"


def test_writers_keep_state_with_their_commit(spec):
    store, _ = build(spec, DOCS)
    assert store.state("sync") is None
    info = store.info()
    assert info is not None
    with pytest.raises(RuntimeError), store.writer(info) as writer:
        writer.set_state("sync", {"since": "2026-01-01T00:00:00Z"})
        raise RuntimeError("the run dies before its commit")
    assert open_store(spec).state("sync") is None
    with store.writer(info) as writer:
        writer.set_state("sync", {"since": "2026-01-01T00:00:00Z"})
    assert open_store(spec).state("sync") == {"since": "2026-01-01T00:00:00Z"}
    build(spec, DOCS)  # a later index run keeps it
    assert open_store(spec).state("sync") == {"since": "2026-01-01T00:00:00Z"}


def test_feedback_is_kept_and_bounded(spec):
    from qa.types import Feedback

    store, _ = build(spec, DOCS)
    store.add_feedback(Feedback("Who kept the lamp?", "Martha [1]", ("lighthouse.txt::0",), 1))
    store.add_feedback(
        Feedback("q", "a", (), -1, comment="x" * 100_000 + "\n\"'<script>", user="alice")
    )
    kept = open_store(spec).feedback()
    assert [f.rating for f in kept] == [1, -1]
    assert kept[0].passage_ids == ("lighthouse.txt::0",) and kept[0].at
    assert kept[1].user == "alice" and len(kept[1].comment) == 4000
    build(spec, DOCS[:1])  # a rebuild keeps what readers said
    assert len(open_store(spec).feedback()) == 2
    with pytest.raises(ValueError, match="rating"):
        Feedback("q", "a", (), 5)


def test_postgres_bulk_loads_and_row_by_row_updates_agree(pg_schema_url, monkeypatch):
    """A first build (search indexes built after the rows), a store grown a few documents at a
    time (indexes kept up row by row) and one grown in a large run (indexes dropped, rebuilt
    at its end) hold the same rows, statistics and indexes, and search alike."""
    from qa.stores.postgres import writer
    from qa.stores.postgres.schema import schema_of, with_schema

    words = "lamp orbit payroll zebra cliff engine finance weather kerosene harbour".split()
    many = [
        doc(f"note{n:02d}.txt", f"Note {n} is about {words[n % 10]} and {words[n * 3 % 10]}. "
            f"It was written in {1900 + n} near the {words[(n + 4) % 10]}.")
        for n in range(40)
    ]  # fmt: skip
    urls = [pg_schema_url] + [
        with_schema(pg_schema_url, f"{schema_of(pg_schema_url)}_{n}") for n in (1, 2)
    ]
    bulk, _ = build(urls[0], DOCS + many)
    grown, _ = build(urls[1], DOCS)
    for part in (many[:20], many[20:]):
        grown, _ = build(urls[1], part, keep_missing=True)
    build(urls[2], DOCS)
    monkeypatch.setattr(writer, "BULK_MIN_CHUNKS", 10)
    deferred, defer = [], writer.PostgresWriter.defer_indexes
    monkeypatch.setattr(
        writer.PostgresWriter, "defer_indexes", lambda w: (defer(w), deferred.append(w.deferred))
    )
    regrown, _ = build(urls[2], DOCS + many)
    assert deferred == [True]
    stores = [bulk, grown, regrown]
    try:
        embedder = FakeEmbedder()
        terms = ["lamp", "orbit", "zebra", "note", "written", "payrol"]
        first = None
        for store in stores:
            vector = embedder.encode(["zebra near the harbour"])[0]
            found = (
                store.counts(),
                dict(store.search_chunks(vector, 200, EVERYTHING)),  # all of them
                dict(store.search_sentences(vector, 200, EVERYTHING)),
                dict(store.keyword_search(terms, 200, EVERYTHING)),
                store.idf(terms),
                {r.chunk.chunk.id: r.score for r in retrieve(store, vector, terms).ranked},
            )
            first = first or found
            assert found[0] == first[0]
            for a, b in zip(found[1:], first[1:], strict=True):
                assert a == pytest.approx(b, rel=1e-6)
            rows = store._query(
                "SELECT count(*) FILTER (WHERE tsv = array_to_tsvector(ARRAY("
                "SELECT jsonb_object_keys(tf)))), count(*) FROM qa_chunks"
            )
            assert rows[0][0] == rows[0][1] == found[0]["chunks"]
            indexes = store._query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (store.schema,)
            )
            assert {"qa_chunks_tsv", "qa_chunks_hnsw", "qa_sentences_hnsw"} <= {
                r[0] for r in indexes
            }
    finally:
        for store in stores[1:]:
            store.drop()
            store.close()
