"""Answers to HTML for the chat: the reply with its citations, then the evidence, all inert.

Every piece of document or user text goes through `inert()`, which escapes HTML *and* the
characters Markdown (and the chat's LaTeX) would treat as structure, so a hostile document
shows as text: no tags, no links, no images, no maths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.types import Answer, DocumentInfo, Passage

# HTML specials, plus Markdown's link/image/emphasis/code/heading/table/escape characters,
# LaTeX's dollar and ':' (which stops bare "https://" links from being auto-linked).
_INERT = {ch: f"&#{ord(ch)};" for ch in "&<>\"'`*_[]()!#~|\\${}:="}
_TRANSLATE = str.maketrans(_INERT)
_CITATION = re.compile(r"\[(\d{1,3})\]")
_BLANK_LINES = re.compile(r"\n\s*\n")

DECLINE_LABEL = "Not in the documents"


def inert(text: str) -> str:
    """Text that renders as itself in HTML and in Markdown; line breaks become <br>."""
    escaped = text.translate(_TRANSLATE)
    # A blank line would end the surrounding HTML block and let Markdown loose again.
    escaped = _BLANK_LINES.sub("<br><br>", escaped)
    return escaped.replace("\r", "").replace("\n", "<br>")


def highlighted(text: str, spans: Sequence[Sequence[int]]) -> str:
    """`text` made inert, with the [start, end) spans wrapped in <mark>."""
    out, at = [], 0
    for start, end in sorted((max(0, a), min(len(text), b)) for a, b in spans):
        if end <= at:
            continue
        start = max(start, at)
        out.append(inert(text[at:start]))
        out.append(f'<mark class="qa-hl">{inert(text[start:end])}</mark>')
        at = end
    out.append(inert(text[at:]))
    return "".join(out)


def with_citations(text: str) -> str:
    """The reply made inert, its [n] markers styled as citations."""
    out, at = [], 0
    for match in _CITATION.finditer(text):
        out.append(inert(text[at : match.start()]))
        out.append(f'<sup class="qa-cite">&#91;{match.group(1)}&#93;</sup>')
        at = match.end()
    out.append(inert(text[at:]))
    return "".join(out)


def answer_html(result: Answer) -> str:
    """One chat reply: the answer (or a visible decline), then the passages it rests on."""
    parts = []
    if result.abstained:
        parts.append('<div class="qa-reply qa-declined">')
        parts.append(f'<div class="qa-badge">{DECLINE_LABEL}</div>')
        parts.append(f'<p class="qa-text">{inert(result.text)}</p>')
        label = "Nearest passages (they do not answer the question)"
    else:
        parts.append('<div class="qa-reply qa-answered">')
        parts.append(f'<p class="qa-text">{with_citations(result.text)}</p>')
        label = "Evidence"
    parts.append(f'<p class="qa-meta">confidence {result.confidence:.2f}</p>')
    parts.extend(f'<p class="qa-notice">{inert(n)}</p>' for n in result.notices)
    cards = [_passage_html(rank, p) for rank, p in enumerate(result.passages, start=1)]
    # The passages an answer came from stay open; the rest fold away, so the reply fits.
    cited = [card for card, p in zip(cards, result.passages, strict=True) if p.highlights]
    rest = [card for card, p in zip(cards, result.passages, strict=True) if not p.highlights]
    if result.abstained or not cited:
        cited, rest = cards, []
    parts.append(f'<div class="qa-evidence"><div class="qa-label">{label}</div>')
    parts.extend(cited)
    if rest:
        more = f"{len(rest)} more passage{'s' if len(rest) > 1 else ''} retrieved"
        parts.append(f'<details class="qa-more"><summary>{more}</summary>{"".join(rest)}</details>')
    parts.append("</div></div>")
    return "".join(parts)


def _passage_html(rank: int, passage: Passage) -> str:
    return (
        '<div class="qa-passage">'
        f'<div class="qa-source"><b>&#91;{rank}&#93; {inert(passage.title)}</b>'
        f' <span class="qa-doc">{inert(passage.chunk.doc_id)}</span>'
        f' <span class="qa-score">score {passage.score:.3f}</span></div>'
        f'<div class="qa-passage-text">{highlighted(passage.chunk.text, passage.highlights)}'
        "</div></div>"
    )


def documents_html(documents: Sequence[DocumentInfo], shown: int = 8) -> str:
    """A line saying what the knowledge base holds."""
    if not documents:
        return '<p class="qa-docs">The knowledge base is empty.</p>'
    names = ", ".join(f"<i>{inert(d.title)}</i>" for d in documents[:shown])
    more = f" and {len(documents) - shown} more" if len(documents) > shown else ""
    noun = "document" if len(documents) == 1 else "documents"
    return (
        f'<p class="qa-docs">Answers come only from {len(documents)} {noun}: {names}{more}. '
        "Each answer shows the passages it rests on.</p>"
    )


# Styles for the classes above; passed to Gradio as the page's CSS.
CSS = """
.qa-reply { line-height: 1.5; }
.qa-text { margin: 0 0 .3em 0 !important; font-size: 1.02em; }
.qa-cite { color: #2563eb; font-weight: 600; margin-left: 1px; }
.qa-meta { margin: 0 0 .4em 0 !important; font-size: .8em; color: #6b7280; }
.qa-notice { margin: 0 0 .4em 0 !important; font-size: .85em; color: #92400e; }
.qa-declined { border-left: 4px solid #d97706; padding-left: .6em; }
.qa-declined .qa-text { color: #92400e; font-style: italic; }
.qa-badge { display: inline-block; font-size: .8em; font-weight: 700; color: #92400e;
  background: #fef3c7; border-radius: 4px; padding: 1px 6px; margin-bottom: .3em; }
.qa-evidence { margin-top: .4em; }
.qa-label { font-size: .8em; font-weight: 700; color: #6b7280; margin-bottom: .2em; }
.qa-passage { border: 1px solid #e5e7eb; border-radius: 6px; padding: .4em .6em;
  margin: .35em 0; font-size: .9em; background: rgba(249, 250, 251, .6); }
.qa-declined .qa-passage { opacity: .85; }
.qa-source { font-size: .85em; color: #374151; margin-bottom: .2em; }
.qa-doc, .qa-score { color: #6b7280; margin-left: .5em; }
.qa-hl { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
.qa-more summary { cursor: pointer; font-size: .85em; color: #6b7280; margin: .2em 0; }
.qa-docs { color: #4b5563; margin: 0 !important; }
.qa-title h1 { margin-bottom: 0 !important; }
.qa-examples button { font-weight: 400 !important; }
"""
