"""Wikitext to readable plain text plus section anchors, with mwparserfromhell.

Templates, references, comments, files, categories and interwiki links are dropped (they cannot
be expanded offline, and what they hold is not prose); links become their label; tables become
one line per row. Headings are not part of the text: each one becomes a section (the offset where
its text starts, its title, its anchor as MediaWiki computes it) so a citation can link there.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from qa.types import Section

# Link prefixes whose target is not prose a reader sees in the page.
HIDDEN_LINK_PREFIXES = {"file", "image", "media", "category"}
# Tags whose content is not shown as prose (or is shown as a list of links elsewhere).
DROPPED_TAGS = {
    "ref", "references", "gallery", "math", "chem", "score", "timeline", "graph", "imagemap",
    "templatedata", "templatestyles", "indicator", "categorytree", "inputbox", "mapframe",
    "maplink", "style", "script", "noinclude", "syntaxhighlight-lang", "charinsert",
}  # fmt: skip
# Tags that end a line of text.
LINE_TAGS = {"br", "p", "div", "li", "dd", "dt", "tr", "blockquote", "pre", "hr", "center"}
# A heading's words above this many characters are cut (MediaWiki cuts ids at 1024 too).
MAX_ANCHOR_CHARS = 1024
# Markup that must never reach a passage: what is left of it after parsing (unbalanced or
# malformed wikitext stays as text in mwparserfromhell's tree) is removed at the end.
_LEFTOVER = re.compile(r"\{\{+|\}\}+|\[\[+|\]\]+|'{2,}|</?ref\b[^>]*>|__[A-Z]+__|\{\||\|\}")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_INTERWIKI = re.compile(r"^[a-z]{2,3}(-[a-z]+)?:")
_LINE = "\x00line"  # "end the line here, unless one just ended": nested blocks add no blank lines
_MW = None  # the imported mwparserfromhell module (imported on first use)


def _mw() -> Any:
    global _MW
    if _MW is None:
        import mwparserfromhell

        _MW = mwparserfromhell
    return _MW


def anchor(title: str) -> str:
    """The URL fragment MediaWiki (html5 fragment mode, its default) gives a heading."""
    words = re.sub(r"\s+", " ", title).strip()[:MAX_ANCHOR_CHARS]
    return quote(words.replace(" ", "_"), safe="!$&()*+,;=:@/?-._~")


def wikitext_to_text(wikitext: str) -> tuple[str, tuple[Section, ...]]:
    """(plain text, sections) of a page's wikitext; headings become sections, not text."""
    mw = _mw()
    try:
        code = mw.parse(wikitext, skip_style_tags=False)
        blocks = _blocks(code.nodes)
    except (RecursionError, ValueError, TypeError):
        # mwparserfromhell gives up on some pathological nesting: keep the words, not the markup.
        blocks = [(None, _fallback(wikitext))]
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    used: dict[str, int] = {}
    for heading, body in blocks:
        text = _tidy(body)
        if heading is not None:
            title = _tidy(heading).replace("\n", " ").strip()
            if title:
                key = anchor(title)
                used[key] = used.get(key, 0) + 1
                if used[key] > 1:  # MediaWiki numbers repeated headings: Notes, Notes_2, ...
                    key = f"{key}_{used[key]}"
                sections.append((offset + (2 if parts and text else 0), title, key))
        if not text:
            continue
        if parts:
            offset += 2
        parts.append(text)
        offset += len(text)
    # A heading with no text of its own starts where the next text starts.
    full = "\n\n".join(parts)
    fixed = tuple((min(start, len(full)), title, key) for start, title, key in sections)
    return full, fixed


def _blocks(nodes: Iterable[object]) -> list[tuple[str | None, str]]:
    """The page cut at its headings: (heading text or None for the lead, body text)."""
    mw = _mw()
    blocks: list[tuple[str | None, str]] = []
    heading: str | None = None
    body: list[str] = []
    for node in nodes:
        if isinstance(node, mw.nodes.Heading):
            blocks.append((heading, "".join(body)))
            heading, body = _render(node.title.nodes), []
        else:
            body.append(_render([node]))
    blocks.append((heading, "".join(body)))
    return blocks


def _render(nodes: Iterable[object]) -> str:
    """The visible text of some nodes, with an explicit stack (deep nesting costs no recursion)."""
    mw = _mw()
    out: list[str] = []
    stack: list[object] = list(reversed(list(nodes)))
    while stack:
        node = stack.pop()
        if node is _LINE:
            if out and not out[-1].endswith("\n"):
                out.append("\n")
        elif isinstance(node, str):
            out.append(node)
        elif isinstance(node, mw.nodes.Text):
            out.append(node.value)
        elif isinstance(node, mw.nodes.Wikilink):
            stack.extend(reversed(_link_nodes(node)))
        elif isinstance(node, mw.nodes.ExternalLink):
            if node.title is not None:
                stack.extend(reversed(node.title.nodes))
            elif not node.brackets:
                out.append(str(node.url))
        elif isinstance(node, mw.nodes.HTMLEntity):
            out.append(html.unescape(str(node)))
        elif isinstance(node, mw.nodes.Tag):
            stack.extend(reversed(_tag_nodes(node)))
        elif isinstance(node, mw.nodes.Heading):  # a heading inside a tag: a line of its own
            stack.extend(reversed([_LINE, *node.title.nodes, _LINE]))
        # Templates, arguments ({{{x}}}), comments and anything else: nothing a reader sees.
    return "".join(out)


def _link_nodes(link: object) -> list[object]:
    title = str(link.title).strip()  # type: ignore[attr-defined]
    lowered = title.lstrip(":").lower()
    prefix = lowered.split(":", 1)[0] if ":" in lowered else ""
    if not title.startswith(":") and (prefix in HIDDEN_LINK_PREFIXES or _INTERWIKI.match(lowered)):
        return []
    text = link.text  # type: ignore[attr-defined]
    if text is not None:
        return list(text.nodes)
    return [title.lstrip(":").split("#")[0] or title.lstrip(":#")]


def _tag_nodes(tag: object) -> list[object]:
    name = str(tag.tag).strip().lower()  # type: ignore[attr-defined]
    if name in DROPPED_TAGS:
        return []
    if name in {"nowiki", "pre", "code", "tt", "source", "syntaxhighlight", "poem"}:
        contents = tag.contents  # type: ignore[attr-defined]
        raw = html.unescape(str(contents)) if contents is not None else ""
        # Shown as typed, but markup inside must still not reach a passage.
        return [
            _LINE if name in LINE_TAGS else "",
            _LEFTOVER.sub(" ", raw),
            _LINE if name in LINE_TAGS else "",
        ]
    if name in {"table"}:
        return _table_nodes(tag)
    if name in {"td", "th"}:
        contents = tag.contents  # type: ignore[attr-defined]
        return [*(contents.nodes if contents is not None else []), "; "]
    contents = tag.contents  # type: ignore[attr-defined]
    if contents is None:  # "*", ";", ":", "----", <br/>: the markup alone ends a line
        return [_LINE] if name in LINE_TAGS else []
    inner = list(contents.nodes)
    if name in LINE_TAGS:
        return [_LINE, *inner, _LINE]
    return inner


def _table_nodes(table: object) -> list[object]:
    """One line per row, cells separated by semicolons; captions on their own line."""
    contents = table.contents  # type: ignore[attr-defined]
    nodes = list(contents.nodes) if contents is not None else []
    return [_LINE, *nodes, _LINE]


def _tidy(text: str) -> str:
    """Markup leftovers removed, spaces collapsed, lines trimmed, at most one blank line."""
    text = _LEFTOVER.sub("", text)
    text = re.sub(r"(?m)^[*#:;]+\s*", "", text)  # list markers left as text
    text = re.sub(r"(?m)^-{4,}\s*$", "", text)  # horizontal rules
    text = _SPACES.sub(" ", text)
    lines = [line.strip().rstrip(";").strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _BLANKS.sub("\n\n", text).strip()


def _fallback(wikitext: str) -> str:
    """Words of wikitext mwparserfromhell could not parse: tags and brackets removed."""
    text = re.sub(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>|<!--.*?-->", " ", wikitext, flags=re.S)
    text = re.sub(r"<[^>]{0,200}>", " ", text)
    return html.unescape(text)
