"""The page-aware widget: answers prefer, or keep to, the wiki page (or namespace) it sits on."""

from __future__ import annotations

import pytest

from qa.indexing.build import index_documents
from qa.knowledge import KnowledgeBase
from qa.serve.wikipage import ask_on_page, page_ids
from qa.settings import Settings
from qa.stores import open_store
from qa.types import Document
from tests.fakes import FakeEmbedder

BASE = "https://wiki.example.org/wiki/"
PAGES = [
    ("w:1", "Help:Printing", "Printers on floor two print double sided by default.", ()),
    ("w:2", "Help:Scanning", "Scanners send documents to your mailbox.", ()),
    ("w:3", "Kitchen", "The kitchen printer prints lunch menus on Mondays.", ()),
    ("w:4", "Staff:Pay", "Salaries are printed on payslips every Friday.", ("hr",)),
]


@pytest.fixture
def kb(tmp_path):
    store = open_store(tmp_path / "kb")
    docs = [
        Document(i, t, t, text, url=BASE + t.replace(" ", "_"), groups=g) for i, t, text, g in PAGES
    ]
    index_documents(store, docs, FakeEmbedder(), Settings(chunk_tokens=40), progress=False)
    return KnowledgeBase(store, FakeEmbedder(), Settings())


def test_a_page_is_found_by_title_or_url(kb):
    docs = kb.documents
    assert page_ids(docs, "Help:Printing") == {"w:1"}
    assert page_ids(docs, "help:Printing") == page_ids(docs, "Help:Printing")  # first letter
    assert page_ids(docs, "Help_talk:Nothing") == frozenset()
    assert page_ids(docs, BASE + "Help%3APrinting#Setup") == {"w:1"}
    assert page_ids(docs, "Help:Printing", "namespace") == {"w:1", "w:2"}
    assert page_ids(docs, "javascript:alert(1)") == frozenset()
    assert page_ids(docs, "x" * 100_000) == frozenset()


def test_answers_prefer_or_keep_to_the_page(kb):
    docs = kb.documents
    question = "Which printer prints lunch menus?"
    only = ask_on_page(kb, docs, question, page="Help:Printing", scope="only")
    assert {p.chunk.doc_id for p in only.passages} <= {"w:1"}
    anywhere = ask_on_page(kb, docs, question, page=None)
    assert anywhere.passages[0].chunk.doc_id == "w:3"
    # An unknown page with "only": nothing to answer from, so a decline.
    unknown = ask_on_page(kb, docs, question, page="Nowhere", scope="only")
    assert unknown.abstained and not unknown.passages
    # Access groups hold inside the page scope too.
    pay = ask_on_page(kb, docs, "When are payslips printed?", page="Staff:Pay", scope="only",
                      groups=["sales"])  # fmt: skip
    assert not pay.passages
    with pytest.raises(ValueError, match="scope"):
        ask_on_page(kb, docs, question, page="Kitchen", scope="everything")
