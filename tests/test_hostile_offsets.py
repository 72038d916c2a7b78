"""Offsets under fuzz: every chunk and sentence is an exact slice of its document and fits the
model's window, at linear cost on pathological texts."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.indexing.chunking import chunk_documents
from qa.types import Document
from tests.fakes import FakeEmbedder
from tests.hostile import ANY_CHAR, FUZZ

# ----- offsets --------------------------------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(
        [
            "The S-400 was bought by Turkey. ",
            "Mr. Conkar said so. ",
            "It cost $2.5 bn! ",
            "Why? ",
            "e.g. this one ",
            "\n",
            "\n\n",
            "\r\n",
            "\n \t\n",
            "  ",
            "\u2028",
            "«Quoted.» ",
            '"Quoted." ',
            "(In brackets.) ",
            "3.14 ",
            "U.S.A. ",
            "...",
            "…",
            "Über straße. ",
            "منظومة إس-400. ",
            "מערכת. ",
            "漢字のテキスト。",
            "🚀🇹🇷. ",
            "Z̴̡̛a̸l̷g̵o̶ ",
            "\u200b",
            "\ufeff",
            "\x00",
            "\u00a0",
            "- item\n",
            "# Heading\n\n",
            "https://example.com/a/very/long/path?with=query&and=more#fragment ",
            "x" * 300,
            "supercalifragilistic" * 20 + " ",
            "word " * 60,
        ]
    ),
    st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=30),
)
DOCUMENT_TEXT = st.lists(PIECES, min_size=1, max_size=40).map("".join)


def check_offsets(documents: list[Document], count_tokens, budget: int) -> None:
    chunks, sentences = chunk_documents(documents, count_tokens, budget)
    texts = {d.id: d.text for d in documents}
    ordinal: dict[str, int] = {}
    for chunk in chunks:
        assert chunk.text and texts[chunk.doc_id][chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        # Ids are "<doc_id>::<n>", numbered from 0 in each document.
        assert chunk.id == f"{chunk.doc_id}::{ordinal.setdefault(chunk.doc_id, 0)}"
        ordinal[chunk.doc_id] += 1
    for chunk, n in zip(chunks, count_tokens([c.text for c in chunks]), strict=True):
        assert n <= budget, (n, chunk.text)
    row = {c.id: n for n, c in enumerate(chunks)}
    assert len(row) == len(chunks)
    previous = (-1, 0)
    in_chunk: dict[str, int] = {}
    for sentence in sentences:
        chunk = chunks[row[sentence.chunk_id]]
        assert chunk.start <= sentence.start < sentence.end <= chunk.end
        assert texts[chunk.doc_id][sentence.start : sentence.end].strip()
        assert (row[chunk.id], sentence.start) >= previous
        previous = (row[chunk.id], sentence.start)
        assert sentence.id == f"{chunk.id}.{in_chunk.setdefault(chunk.id, 0)}"
        in_chunk[chunk.id] += 1
    # Nothing is lost: every visible character of every document is inside some chunk.
    for document in documents:
        covered = bytearray(len(document.text))
        for chunk in chunks:
            if chunk.doc_id == document.id:
                covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        lost = [c for c, seen in zip(document.text, covered, strict=True) if not seen]
        assert all(c.isspace() for c in lost), lost[:20]


@FUZZ
@given(texts=st.lists(DOCUMENT_TEXT, min_size=1, max_size=3), budget=st.integers(16, 80))
def test_chunks_and_sentences_are_exact_slices_fake_tokens(texts, budget):
    documents = [Document(f"d{i}", "t", "s", text) for i, text in enumerate(texts)]
    check_offsets(documents, FakeEmbedder().count_tokens, budget)


@pytest.mark.slow
@FUZZ
@given(text=DOCUMENT_TEXT, budget=st.sampled_from([16, 40, 254]))
def test_chunks_fit_the_real_tokenizer(real_embedder, text, budget):
    check_offsets([Document("d", "t", "s", text)], real_embedder.count_tokens, budget)


@pytest.mark.slow
def test_a_word_cut_by_characters_still_fits_the_token_budget(real_embedder):
    # 300 x's are one [UNK] token; cut at 8 characters per token of a 16-token budget, the
    # pieces are 128, 128 and 44 characters, and the last is 22 tokens.
    assert real_embedder.count_tokens(["x" * 300, "x" * 44]) == [1, 22]
    check_offsets([Document("d", "t", "s", "x" * 300)], real_embedder.count_tokens, 16)


@pytest.mark.slow
def test_pathological_texts_cost_linear_work(real_embedder, monkeypatch):
    """A long paragraph and a long run without spaces: the work done must grow linearly.

    pysbd never sees more than one window, and the tokenizer counts each character only a
    few times (it once re-counted the whole rest after every cut; these took minutes).
    """
    import base64
    from types import SimpleNamespace

    from qa.indexing import chunking

    segmenter = chunking._segmenter()
    fed: list[int] = []

    def processor(text: str) -> object:
        fed.append(len(text))
        return segmenter.processor(text)

    monkeypatch.setattr(chunking, "_segmenter", lambda: SimpleNamespace(processor=processor))
    counted: list[int] = []

    def count_tokens(texts):
        counted.append(sum(map(len, texts)))
        return real_embedder.count_tokens(texts)

    def work(text: str) -> int:
        fed.clear()
        counted.clear()
        check_offsets([Document("d", "t", "s", text)], count_tokens, 254)
        assert max(fed) <= chunking.SEGMENT_WINDOW
        return sum(counted)

    def words(n: int) -> str:  # one paragraph of n words
        return " ".join(["alpha", "beta", "gamma", "delta."][i % 4] for i in range(n))

    def blob(n: int) -> str:  # base64 of n bytes: no spaces at all
        return base64.b64encode(os.urandom(n)).decode()

    for make, n in ((words, 3_000), (blob, 8_000)):
        # Four times the text, four times the work (quadratic would be sixteen).
        assert work(make(4 * n)) <= 5 * work(make(n))


def test_text_pysbd_alters_stays_in_the_sentences():
    """pysbd uses characters such as ∯ and ȹ as placeholders; a sentence holding one comes back
    altered and cannot be found in the text. Its text must still be a sentence of its own."""
    from qa.indexing.chunking import sentence_spans

    text = "First sentence here. Use ∯ here. And the last one ȹ too. Final words."
    spans = sentence_spans(text, 0, len(text))
    covered = "".join(text[a:b] for a, b in spans)
    assert covered.replace(" ", "") == text.replace(" ", "")
    assert text[spans[0][0] : spans[0][1]] == "First sentence here."
    assert text[spans[-1][0] : spans[-1][1]] == "Final words."
