"""Documents to chunks and sentences: sentence-aware, bounded by the model's own tokenizer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from qa.types import Chunk, Document, Sentence, chunk_id, sentence_id

TokenCounter = Callable[[Sequence[str]], list[int]]
Span = tuple[int, int]

# pysbd's time grows with the square of its input (60 KB took 8 s, 200 KB over a minute), so a
# longer paragraph is fed to it in windows of this many characters; a one-line 20 MB file then
# costs what its windows cost, and a cut at a window's edge can only fall on a likely sentence
# end or a space.
SEGMENT_WINDOW = 4000
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+")
_SPACE = re.compile(r"\s+")
# A run with no space (a URL, base64) is cut within windows of this many characters per token
# of budget: re-counting the whole rest after each cut was quadratic (100 KB took 100 s).
CHARS_PER_TOKEN_WINDOW = 16
# Chunks and sentences are bounded in characters too, at this many per token of budget
# (English runs about 4-5): a word the tokenizer reads as one [UNK] token could otherwise make
# a 1 MB chunk, returned whole with every answer.
CHARS_PER_TOKEN = 8


def paragraph_spans(text: str) -> list[Span]:
    """Paragraphs of a text: blocks between blank lines, or lines when it has no blank lines."""
    separator = r"\n[ \t\r\f\v]*\n\s*" if re.search(r"\n[ \t\r\f\v]*\n", text) else r"\n\s*"
    spans: list[Span] = []
    start = 0
    for match in re.finditer(separator, text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[1] > s[0]]


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    """Sentences of text[start:end] as offsets into text, found by pysbd's rule-based splitter."""
    spans: list[Span] = []
    for window_start, window_end in _windows(text, start, end):
        spans.extend(_segment(text, window_start, window_end))
    return spans


def _windows(text: str, start: int, end: int) -> list[Span]:
    """text[start:end] in pieces of at most SEGMENT_WINDOW characters, cut at a likely sentence
    end, else at a space, else anywhere."""
    windows: list[Span] = []
    while end - start > SEGMENT_WINDOW:
        limit, half = start + SEGMENT_WINDOW, start + SEGMENT_WINDOW // 2
        cut = None
        for pattern in (_SENTENCE_END, _SPACE):
            for match in pattern.finditer(text, half, limit):
                cut = match.end()
            if cut is not None:
                break
        if cut is None:
            cut = limit
        windows.append((start, cut))
        start = cut
    windows.append((start, end))
    return windows


def _segment(text: str, start: int, end: int) -> list[Span]:
    segmenter = _segmenter()
    try:
        # The processor's sentences, not `segment()`: that maps them back to the text with one
        # freshly compiled regex per sentence, half of pysbd's time; `text.find` below does it.
        pieces = segmenter.processor(text[start:end]).process()
    except Exception:  # pysbd is rule-based; a pathological input must not stop the build
        pieces = [text[start:end]]
    spans: list[Span] = []
    cursor = start
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        found = text.find(piece, cursor, end)
        if found < 0:  # pysbd altered this one (its placeholders): the gap keeps its text
            continue
        if text[cursor:found].strip():  # text no sentence covered is a sentence of its own
            spans.append((cursor, found))
        spans.append((found, found + len(piece)))
        cursor = found + len(piece)
    if cursor < end and text[cursor:end].strip():
        spans.append((cursor, end))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[1] > s[0]]


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap: int = 1,
) -> tuple[list[Chunk], list[list[Span]]]:
    """Chunks of a document and, for each chunk, its sentence spans (document offsets).

    A chunk never crosses a paragraph boundary, and never holds more than `max_tokens` tokens
    as the model's tokenizer counts them; a sentence longer than that is cut at word breaks.
    """
    text = document.text
    max_chars = max_tokens * CHARS_PER_TOKEN
    chunks: list[Chunk] = []
    chunk_sentences: list[list[Span]] = []
    for p_start, p_end in paragraph_spans(text):
        sentences = sentence_spans(text, p_start, p_end)
        counts = count_tokens([text[a:b] for a, b in sentences])
        pieces: list[Span] = []
        piece_counts: list[int] = []
        for span, n in zip(sentences, counts, strict=True):
            if n <= max_tokens and span[1] - span[0] <= max_chars:
                pieces.append(span)
                piece_counts.append(n)
                continue
            for sub in _split_long(text, span, count_tokens, max_tokens):
                for part in _split_chars(text, sub, max_chars):
                    n_part = count_tokens([text[part[0] : part[1]]])[0]
                    # A cut "word" the tokenizer read as one [UNK] may now be many word pieces.
                    for piece in (
                        [part]
                        if n_part <= max_tokens
                        else _split_long(text, part, count_tokens, max_tokens)
                    ):
                        pieces.append(piece)
                        piece_counts.append(
                            n_part
                            if piece == part
                            else count_tokens([text[piece[0] : piece[1]]])[0]
                        )
        packed = _pack(text, pieces, piece_counts, count_tokens, max_tokens, overlap, max_chars)
        for group in packed:
            start, end = group[0][0], group[-1][1]
            chunks.append(
                Chunk(
                    id=chunk_id(document.id, len(chunks)),
                    doc_id=document.id,
                    text=text[start:end],
                    start=start,
                    end=end,
                )
            )
            chunk_sentences.append(group)
    return chunks, chunk_sentences


def chunk_documents(
    documents: Sequence[Document],
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap: int = 1,
) -> tuple[list[Chunk], list[Sentence]]:
    """All chunks of all documents, and every sentence with its chunk's id."""
    chunks: list[Chunk] = []
    sentences: list[Sentence] = []
    for document in documents:
        doc_chunks, doc_sentences = chunk_document(document, count_tokens, max_tokens, overlap)
        for chunk, spans in zip(doc_chunks, doc_sentences, strict=True):
            sentences.extend(
                Sentence(sentence_id(chunk.id, n), chunk.id, a, b) for n, (a, b) in enumerate(spans)
            )
            chunks.append(chunk)
    return chunks, sentences


def _pack(
    text: str,
    pieces: list[Span],
    counts: list[int],
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap: int,
    max_chars: int,
) -> list[list[Span]]:
    """Greedy groups of consecutive sentences that fit the budget, checked by the tokenizer."""
    groups: list[list[Span]] = []
    i = 0
    while i < len(pieces):
        group = [pieces[i]]
        total = counts[i]
        j = i + 1
        while (
            j < len(pieces)
            and total + counts[j] <= max_tokens
            and pieces[j][1] - group[0][0] <= max_chars
        ):
            group.append(pieces[j])
            total += counts[j]
            j += 1
        # Token counts of parts need not add up to the count of the whole: check the whole.
        while len(group) > 1 and count_tokens([text[group[0][0] : group[-1][1]]])[0] > max_tokens:
            group.pop()
            j -= 1
        groups.append(group)
        if j >= len(pieces):
            break
        # Carry the last `overlap` sentences into the next chunk, if they leave room to move on.
        carry = min(overlap, len(group) - 1)
        while carry > 0 and (
            sum(counts[j - carry : j + 1]) > max_tokens
            or pieces[j][1] - pieces[j - carry][0] > max_chars
        ):
            carry -= 1
        i = j - carry
    return groups


def _split_long(text: str, span: Span, count_tokens: TokenCounter, max_tokens: int) -> list[Span]:
    """Cut an over-long sentence at word breaks into pieces of at most `max_tokens` tokens."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[span[0] : span[1]])]
    words = [(span[0] + a, span[0] + b) for a, b in words]
    word_counts = count_tokens([text[a:b] for a, b in words])
    pieces: list[Span] = []
    start_word = 0
    total = 0
    for k, n in enumerate(word_counts):
        if total + n > max_tokens and k > start_word:
            pieces.append((words[start_word][0], words[k - 1][1]))
            start_word, total = k, 0
        total += n
    pieces.append((words[start_word][0], words[-1][1]))
    # A single "word" longer than the window (a URL, a base64 blob) is cut by characters.
    result: list[Span] = []
    for a, b in pieces:
        if count_tokens([text[a:b]])[0] <= max_tokens:
            result.append((a, b))
            continue
        while a < b:
            end = min(b, a + CHARS_PER_TOKEN_WINDOW * max_tokens)
            n = count_tokens([text[a:end]])[0]
            while n > max_tokens:
                end = a + max(1, (end - a) * max_tokens // (2 * n))
                n = count_tokens([text[a:end]])[0]
            result.append((a, end))
            a = end
    return result


def _split_chars(text: str, span: Span, max_chars: int) -> list[Span]:
    """A span in pieces of at most `max_chars` characters, cut at a space where there is one."""
    a, b = span
    parts: list[Span] = []
    while b - a > max_chars:
        cut = text.rfind(" ", a + max_chars // 2, a + max_chars)
        cut = cut if cut > a else a + max_chars
        parts.append(_strip(text, a, cut))
        a = cut
    parts.append(_strip(text, a, b))
    return [p for p in parts if p[1] > p[0]]


def _strip(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)
