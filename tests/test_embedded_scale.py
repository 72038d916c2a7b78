"""The embedded store at scale: writers spill to disk, small commits add deltas, deletes are
tombstones until a compaction rewrites everything.

Uses the deterministic FakeEmbedder: these are tests of storage, not of the model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest

from qa import lexical
from qa.indexing.build import document_hash, embed_batch, index_documents, store_info
from qa.settings import Settings
from qa.stores import EVERYTHING, Filter, StoreError, open_store
from qa.stores.embedded import commit
from qa.stores.embedded.manifest import MANIFEST, read_manifest
from qa.types import Document
from tests.conftest import REPO
from tests.fakes import FakeEmbedder

SETTINGS = Settings(chunk_tokens=40)
WORDS = "harbour lighthouse engine valve turbine river bridge council archive ledger".split()


def page(n: int, extra: str = "") -> Document:
    words = [WORDS[(n * 7 + k) % len(WORDS)] for k in range(12)]
    text = (
        f"Town {n} has a {words[0]} and a {words[1]}. The {' '.join(words[2:8])} of town {n}. "
        f"\n\nIn {1800 + n} the {' '.join(words[8:])} was built in town {n}.{extra}"
    )
    return Document(id=f"town-{n:03}", title=f"Town {n}", source=f"town-{n:03}", text=text)


def build(folder: Path, documents, **options):
    store = open_store(folder)
    index_documents(store, documents, FakeEmbedder(), SETTINGS, progress=False, **options)
    return store


def upsert(folder: Path, documents=(), deletes=()) -> None:
    """One commit through the writer directly: these documents in, those ids out."""
    store = open_store(folder)
    embedder = FakeEmbedder()
    with store.writer(store_info(embedder, SETTINGS)) as writer:
        batch = [(d, document_hash(d)) for d in documents]
        for update in embed_batch(batch, embedder, SETTINGS, None) if batch else ():
            writer.upsert(update)
        for doc_id in deletes:
            writer.delete(doc_id)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def base_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Each base data file's (inode, mtime in ns): the same pair means never rewritten."""
    manifest = read_manifest(folder)
    return {
        entry["name"]: (os.stat(folder / entry["name"]).st_ino,
                        os.stat(folder / entry["name"]).st_mtime_ns)
        for entry in manifest.files.values()
    }  # fmt: skip


def every_chunk(store) -> set[str]:
    vector = FakeEmbedder().encode(["town harbour lighthouse"])[0]
    found = {c for c, _ in store.search_chunks(vector, 10_000, EVERYTHING)}
    found |= {c for c, _ in store.search_sentences(vector, 10_000, EVERYTHING)}
    found |= {c for c, _ in store.keyword_search(["town"], 10_000, EVERYTHING)}
    return found


@pytest.fixture
def big(tmp_path):
    """A store of 60 pages: big enough that one page is a small change."""
    folder = tmp_path / "kb"
    build(folder, [page(n) for n in range(60)])
    return folder


def test_a_one_page_change_adds_a_delta_and_rewrites_no_unchanged_file(big):
    before = base_files(big)
    upsert(big, [page(7, " A lighthouse keeper arrived.")])
    manifest = read_manifest(big)
    assert base_files(big) == before  # same names, same inodes, same mtimes
    assert len(manifest.deltas) == 1 and len(manifest.dead) == 1
    store = open_store(big)
    assert len(store.documents()) == 60 and store.counts()["documents"] == 60
    found = store.keyword_search(["keeper"], 10, EVERYTHING)
    assert [c.split("::")[0] for c, _ in found] == ["town-007"]
    # The replaced version is in no search, and ids stay stable.
    chunks = every_chunk(store)
    assert {c.split("::")[0] for c in chunks} == {f"town-{n:03}" for n in range(60)}
    fetched = store.fetch([c for c, _ in found], FakeEmbedder().encode(["keeper"])[0])
    assert "keeper" in fetched[found[0][0]].chunk.text


def test_deletes_never_come_back(big):
    upsert(big, deletes=["town-010"])
    assert read_manifest(big).dead  # a tombstone, not a rewrite
    for step in range(3):  # through more deltas, a reload, and whatever compaction comes
        store = open_store(big)
        assert "town-010" not in {d.id for d in store.documents()}
        assert not any(c.startswith("town-010::") for c in every_chunk(store))
        assert store.fetch(["town-010::0"], np.ones(64, np.float32)) == {}
        assert store.bm25_scores(["town"], ["town-010::0"]) == {}
        only = Filter(doc_ids=frozenset({"town-010", "town-011"}))
        vector = FakeEmbedder().encode(["town"])[0]
        assert {c.split("::")[0] for c, _ in store.search_chunks(vector, 50, only)} == {"town-011"}
        upsert(big, [page(20 + step, " Changed again.")])


def test_a_commit_gives_the_scores_a_fresh_build_gives(big, tmp_path):
    """BM25 over deltas and tombstones is BM25 over the live chunks: the same as bm25s on
    them, and the same ranking as a store built from scratch with the same documents."""
    upsert(big, [page(3, " Turbine ledger."), page(100)], deletes=["town-004", "town-005"])
    assert read_manifest(big).deltas
    documents = [page(n) for n in range(60) if n not in (3, 4, 5)]
    documents += [page(3, " Turbine ledger."), page(100)]
    fresh = build(tmp_path / "fresh", documents)
    store = open_store(big)
    terms = ["turbin", "ledger", "town", "harbour"]
    for term_list in (terms, ["ledger"], ["lighthous", "bridg"]):
        got = dict(store.keyword_search(term_list, 1000, EVERYTHING))
        assert got == pytest.approx(dict(fresh.keyword_search(term_list, 1000, EVERYTHING)))
    assert store.idf(terms) == pytest.approx(fresh.idf(terms))
    vector = FakeEmbedder().encode(["turbine ledger town"])[0]
    got = dict(store.search_chunks(vector, 1000, EVERYTHING))
    assert got == pytest.approx(dict(fresh.search_chunks(vector, 1000, EVERYTHING)))
    # And bm25s itself, on the live chunks' terms, agrees.
    snap = store.snapshot
    live = sorted(snap.chunk_row.items())
    reference = bm25s.BM25()
    reference.index([lexical.terms(snap.chunks[row].text) for _, row in live], show_progress=False)
    expected = reference.get_scores(["ledger", "town"])
    got = store.bm25_scores(["ledger", "town"], [c for c, _ in live])
    np.testing.assert_allclose([got[c] for c, _ in live], expected, rtol=1e-5)


def test_compaction_rewrites_once_the_dead_pass_a_fifth(big):
    first = set(base_files(big))
    n = 0
    while read_manifest(big).deltas or n == 0:
        upsert(big, [page(n, " Edited.")])
        n += 1
        assert n < 60
    # Compacted after about a fifth of the pages changed: one segment, no tombstones, and
    # the previous base's files are gone from the folder.
    assert 5 <= n <= int(60 * commit.COMPACT_SHARE) + 2
    manifest = read_manifest(big)
    assert not manifest.deltas and not manifest.dead
    assert not first & set(base_files(big))
    assert not first & {p.name for p in big.iterdir()}
    store = open_store(big)
    assert len(store.documents()) == 60
    assert {c for c, _ in store.keyword_search(["edit"], 100, EVERYTHING)} >= {
        f"town-{k:03}::1" for k in range(n)
    }


def test_many_small_commits_merge_their_deltas(tmp_path, monkeypatch):
    folder = tmp_path / "kb"
    build(folder, [page(n) for n in range(200)])
    monkeypatch.setattr(commit, "MAX_DELTAS", 3)
    before = base_files(folder)
    for n in range(5):
        upsert(folder, [page(n, " Merged.")])
        assert len(read_manifest(folder).deltas) <= 3
    assert base_files(folder) == before
    store = open_store(folder)
    found = {c.split("::")[0] for c, _ in store.keyword_search(["merg"], 100, EVERYTHING)}
    assert found == {f"town-{n:03}" for n in range(5)}
    assert len(store.documents()) == 200


def test_the_spill_is_on_disk_while_writing_and_gone_after_a_commit_or_a_failure(big):
    store = open_store(big)
    embedder = FakeEmbedder()
    answer = store.keyword_search(["harbour"], 5, EVERYTHING)
    writing = store.writer(store_info(embedder, SETTINGS))
    with pytest.raises(RuntimeError, match="stop"), writing as writer:
        for n in range(100, 120):
            batch = [(page(n), document_hash(page(n)))]
            for update in embed_batch(batch, embedder, SETTINGS, None):
                writer.upsert(update)
        (spill,) = leftovers(big)
        sizes = {p.name: p.stat().st_size for p in (big / spill).iterdir()}
        assert min(sizes.values()) > 0, sizes  # documents and vectors are on disk
        raise RuntimeError("stop")
    assert leftovers(big) == []
    store = open_store(big)
    assert len(store.documents()) == 60
    assert store.keyword_search(["harbour"], 5, EVERYTHING) == answer
    upsert(big, [page(100)])
    assert leftovers(big) == []


KILLED_MID_RUN = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from tests.test_embedded_scale import SETTINGS, page
from tests.fakes import FakeEmbedder
from qa.indexing.build import document_hash, embed_batch, store_info
from qa.stores import open_store
embedder = FakeEmbedder()
with open_store({kb!r}).writer(store_info(embedder, SETTINGS)) as writer:
    for n in range(100, 140):
        for update in embed_batch([(page(n), document_hash(page(n)))], embedder, SETTINGS, None):
            writer.upsert(update)
    writer.delete("town-001")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_mid_run_leaves_the_previous_store_answering(big):
    before = open_store(big)
    answer = before.keyword_search(["harbour", "town"], 10, EVERYTHING)
    manifest = (big / MANIFEST).read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN.format(repo=str(REPO), kb=str(big))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert leftovers(big)  # the dead run's spill
    assert (big / MANIFEST).read_bytes() == manifest
    store = open_store(big)
    assert len(store.documents()) == 60 and "town-001" in {d.id for d in store.documents()}
    assert store.keyword_search(["harbour", "town"], 10, EVERYTHING) == answer
    upsert(big, [page(5, " After the crash.")])  # the next writer collects the leftovers
    assert leftovers(big) == []


def test_a_folder_of_the_previous_layout_asks_for_a_rebuild(big):
    raw = json.loads((big / MANIFEST).read_text())
    del raw["layout"]
    (big / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(StoreError, match=r"layout 1, this qa reads layout 2; rebuild it with: "):
        open_store(big).documents()
    store = build(big, [page(1)], rebuild=True)
    assert [d.id for d in store.documents()] == ["town-001"]


def test_an_hnsw_base_keeps_its_graph_and_searches_deltas_beside_it(tmp_path):
    folder = tmp_path / "kb"
    store = open_store(folder, approximate_above=10)
    index_documents(store, [page(n) for n in range(60)], FakeEmbedder(), SETTINGS, progress=False)
    graph = base_files(folder)
    upsert(folder, [page(100, " Zebulon the keeper.")], deletes=["town-002"])
    assert base_files(folder) == graph
    snap = open_store(folder).snapshot
    assert type(snap.chunk_index).__name__ == "IndexHNSWFlat"
    assert snap.chunk_vectors.extra is not None
    assert snap.chunk_vectors.ntotal == len(snap.chunks)
    store = open_store(folder)
    vector = FakeEmbedder().encode(["Zebulon the keeper"])[0]
    assert store.search_chunks(vector, 1, EVERYTHING)[0][0].startswith("town-100::")
    assert store.search_sentences(vector, 1, EVERYTHING)[0][0].startswith("town-100::")
    only = Filter(doc_ids=frozenset({"town-001", "town-002", "town-100"}))
    found = {c.split("::")[0] for c, _ in store.search_chunks(vector, 50, only)}
    assert found == {"town-001", "town-100"}
    assert not any(c.startswith("town-002::") for c in every_chunk(store))
