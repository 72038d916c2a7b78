"""Answers to HTML for the chat: the reply with its citations, then the evidence, all inert.

Every piece of document or user text goes through `inert()`, which escapes HTML *and* the
characters Markdown (and the chat's LaTeX) would treat as structure, so a hostile document
shows as text: no tags, no links, no images, no maths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from urllib.parse import urlsplit

from qa.types import Answer, DocumentInfo, Passage, ShortAnswer

# HTML specials, plus Markdown's link/image/emphasis/code/heading/table/escape characters,
# LaTeX's dollar and ':' (which stops bare "https://" links from being auto-linked).
_INERT = {ch: f"&#{ord(ch)};" for ch in "&<>\"'`*_[]()!#~|\\${}:="}
_TRANSLATE = str.maketrans(_INERT)
# Link targets a citation may use: a new tab, or the top window (the wiki around a widget).
LINK_TARGETS = ("_blank", "_top")
MAX_URL_CHARS = 2048
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f-\x9f<>\"'`\\]")
_CITATION = re.compile(r"\[(\d{1,3})\]")
_BLANK_LINES = re.compile(r"\n\s*\n")

DECLINE_LABEL = "Not in the documents"


def inert(text: str) -> str:
    """Text that renders as itself in HTML and in Markdown; line breaks become <br>."""
    escaped = text.translate(_TRANSLATE)
    # A blank line would end the surrounding HTML block and let Markdown loose again.
    escaped = _BLANK_LINES.sub("<br><br>", escaped)
    return escaped.replace("\r", "").replace("\n", "<br>")


def highlighted(
    text: str, spans: Sequence[Sequence[int]], strong: Sequence[int] | None = None
) -> str:
    """`text` made inert, with the [start, end) spans wrapped in <mark>; the `strong` span (the
    short answer) marked again inside them, as <mark class="qa-hl qa-short">."""
    n = len(text)
    marked = [(max(0, a), min(n, b)) for a, b in spans]
    short = (max(0, strong[0]), min(n, strong[1])) if strong else None
    cuts = sorted({0, n, *(x for span in marked for x in span), *(short or ())})
    out = []
    for a, b in pairwise(cuts):
        if a >= b:
            continue
        piece = inert(text[a:b])
        if short and short[0] <= a and b <= short[1]:
            out.append(f'<mark class="qa-hl qa-short">{piece}</mark>')
        elif any(x <= a and b <= y for x, y in marked):
            out.append(f'<mark class="qa-hl">{piece}</mark>')
        else:
            out.append(piece)
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


def safe_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with nothing that could break out of an
    attribute or run (no `javascript:`, no whitespace or control characters), else None."""
    if not url or len(url) > MAX_URL_CHARS or _UNSAFE_URL.search(url):
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def citation_link(passage: Passage, target: str = "_blank") -> str:
    """The passage's page title and section, as a link to its page (and section) when it has
    a safe URL; as plain text otherwise. `target` "_top" opens the page in the embedding
    wiki's own tab when the chat is a widget inside it."""
    label = inert(passage.title)
    if passage.section and passage.section != passage.title:
        label += f' <span class="qa-section">&#8250; {inert(passage.section)}</span>'
    url = safe_url(passage.url)
    if url is None:
        return label
    # Every character that means something in HTML or Markdown is a numeric entity: the
    # browser decodes it back inside the attribute, and nothing can close the quote.
    target = target if target in LINK_TARGETS else "_blank"
    return (
        f'<a class="qa-link" href="{inert(url)}" target="{target}" '
        f'rel="noopener noreferrer">{label}</a>'
    )


def answer_html(result: Answer, *, link_target: str = "_blank") -> str:
    """One chat reply: the answer (or a visible decline), then the passages it rests on.

    Citations link to their page in a new tab; the wiki widget passes `link_target="_top"`."""
    parts = []
    if result.abstained:
        parts.append('<div class="qa-reply qa-declined">')
        parts.append(f'<div class="qa-badge">{DECLINE_LABEL}</div>')
        parts.append(f'<p class="qa-text">{inert(result.text)}</p>')
        label = "Nearest passages (they do not answer the question)"
    else:
        parts.append('<div class="qa-reply qa-answered">')
        if result.short_answer:  # the short answer first, then the sentences it stands in
            first = result.short_answer
            parts.append(
                f'<p class="qa-short-answer">{inert(first.text)}'
                f'<sup class="qa-cite">&#91;{first.passage_rank}&#93;</sup></p>'
            )
        parts.append(f'<p class="qa-text">{with_citations(result.text)}</p>')
        label = "Evidence"
    parts.append(f'<p class="qa-meta">confidence {result.confidence:.2f}</p>')
    parts.extend(f'<p class="qa-notice">{inert(n)}</p>' for n in result.notices)
    short = None if result.abstained else result.short_answer
    cards = [
        _passage_html(rank, p, link_target, short if short and short.passage_rank == rank else None)
        for rank, p in enumerate(result.passages, start=1)
    ]
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


def _passage_html(
    rank: int, passage: Passage, link_target: str = "_blank", short: ShortAnswer | None = None
) -> str:
    # A wiki page is named by its linked title; a file by its path as well.
    where = "" if safe_url(passage.url) else f' <span class="qa-doc">{inert(passage.source)}</span>'
    return (
        '<div class="qa-passage">'
        f'<div class="qa-source"><b>&#91;{rank}&#93; {citation_link(passage, link_target)}</b>'
        f"{where}"
        f' <span class="qa-score">score {passage.score:.3f}</span></div>'
        f"{_passage_text(passage, short)}</div>"
    )


def _passage_text(passage: Passage, short: ShortAnswer | None = None) -> str:
    """The passage with its highlights (and the short answer inside them); when the answer is
    the whole passage, a note instead of the same text a second time."""
    text = passage.chunk.text
    covered = sum(max(0, min(b, len(text)) - max(a, 0)) for a, b in passage.highlights)
    # (the short answer is shown first, above the sentence: marking it here again would repeat
    # the whole sentence once more)
    if passage.highlights and covered >= len(text.strip()):
        return '<div class="qa-meta">The answer above is this whole passage.</div>'
    strong = (short.start, short.end) if short else None
    return f'<div class="qa-passage-text">{highlighted(text, passage.highlights, strong)}</div>'


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
.qa-cite { color: var(--qa-link); font-weight: 600; margin-left: 1px; }
.qa-meta { margin: 0 0 .4em 0 !important; font-size: .8em; color: var(--qa-muted); }
.qa-notice { margin: 0 0 .4em 0 !important; font-size: .85em; color: var(--qa-warn); }
.qa-declined { border-left: 4px solid var(--qa-warn); padding-left: .6em; }
.qa-declined .qa-text { color: var(--qa-warn); font-style: italic; }
.qa-badge { display: inline-block; font-size: .8em; font-weight: 700; color: var(--qa-warn);
  background: var(--qa-warn-bg); border-radius: 4px; padding: 1px 6px; margin-bottom: .3em; }
.qa-evidence { margin-top: .4em; }
.qa-label { font-size: .8em; font-weight: 700; color: var(--qa-muted); margin-bottom: .2em; }
.qa-passage { border: 1px solid var(--qa-border); border-radius: 6px; padding: .4em .6em;
  margin: .35em 0; font-size: .9em; background: var(--qa-card); color: var(--qa-fg); }
.qa-source { font-size: .85em; color: var(--qa-fg); margin-bottom: .2em; }
.qa-doc, .qa-score { color: var(--qa-muted); margin-left: .5em; }
.qa-link { color: var(--qa-link); text-decoration: underline; }
.qa-section { font-weight: 400; }
.qa-hl { background: var(--qa-hl-bg); color: var(--qa-hl-fg); padding: 0 1px; border-radius: 2px; }
.qa-short { font-weight: 700; text-decoration: underline; text-underline-offset: 2px; }
.qa-short-answer { margin: 0 0 .2em 0 !important; font-size: 1.15em; font-weight: 700; }
.qa-more summary { cursor: pointer; font-size: .85em; color: var(--qa-muted); margin: .2em 0; }
.qa-docs { color: var(--qa-muted); margin: 0 !important; }
.qa-title h1 { margin-bottom: 0 !important; }
.qa-examples button { font-weight: 400 !important; }
"""
