"""How `index_documents` groups changed documents into batches: by text volume, capped by count.
Fake embedder, real embedded store."""

from __future__ import annotations

import pytest

from qa.indexing import build
from qa.indexing.build import Batch, index_documents
from qa.settings import Settings
from qa.stores import open_store
from qa.types import Document
from tests.fakes import FakeEmbedder


def doc(n: int, text: str = "") -> Document:
    body = text or f"Page {n} is about the lighthouse. It has a keeper named Keeper {n}."
    return Document(f"page-{n}.txt", f"Page {n}", f"page-{n}.txt", body)


def test_a_batch_closes_at_its_text_budget_and_at_its_count(monkeypatch):
    monkeypatch.setattr(build, "BATCH_CHARACTERS", 100)
    monkeypatch.setattr(build, "DOCUMENTS_PER_BATCH", 3)
    batch = Batch()
    assert not batch.add(doc(1, "x" * 60), "a")
    assert batch.add(doc(2, "y" * 40), "b")  # 100 characters
    assert [d.id for d, _ in batch.take()] == ["page-1.txt", "page-2.txt"]
    assert batch.documents == [] and batch.characters == 0
    assert not batch.add(doc(3, "z"), "c")
    assert not batch.add(doc(4, "z"), "d")
    assert batch.add(doc(5, "z"), "e")  # three documents, whatever their size


@pytest.mark.parametrize(
    ("characters", "batches"), [(250, [4, 4, 4, 4, 4, 4, 4, 2]), (10**9, [30])]
)
def test_every_document_is_stored_whatever_the_batches(tmp_path, monkeypatch, characters, batches):
    monkeypatch.setattr(build, "BATCH_CHARACTERS", characters)  # each page is 63-65 characters
    sizes: list[int] = []
    real = build.embed_batch

    def counted(batch, *args):
        sizes.append(len(batch))
        return real(batch, *args)

    monkeypatch.setattr(build, "embed_batch", counted)
    store = open_store(str(tmp_path / "kb"))
    report = index_documents(
        store,
        [doc(n) for n in range(30)],
        FakeEmbedder(dim=32, max_tokens=256),
        Settings(),
        progress=False,
    )
    assert report.documents == report.embedded_documents == 30
    assert sizes == batches
    assert {d.id for d in store.documents()} == {f"page-{n}.txt" for n in range(30)}
    store.close()
