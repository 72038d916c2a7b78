"""What any source's documents must be before they are indexed: bounded and visibly honest.

Applied to every document in `index_documents`, whatever its source, so no source can forget:
- invisible format characters are removed from the text (zero-width spaces and joiners, word
  joiners, byte-order marks, soft hyphens, and the bidirectional controls that made
  "gnol sretem 3" display as "3 meters long" and reordered citation markers);
- titles and sources are one line of bounded length; a URL is kept only if it is http(s).
Chunking then bounds every chunk and sentence in characters as well as tokens.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

from qa.types import Document

MAX_TITLE_CHARS = 300
MAX_SOURCE_CHARS = 300
MAX_URL_CHARS = 2000
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """The text without invisible format characters (see the module docstring)."""
    text = _INVISIBLE.sub("", text)
    if any(unicodedata.category(ch) == "Cf" for ch in text if ord(ch) > 0x7F):
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text


def one_line(text: str, limit: int) -> str:
    """Cleaned, on one line, at most `limit` characters (cut in the middle with an ellipsis)."""
    text = _SPACE.sub(" ", clean_text(text)).strip()
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return f"{text[:half]}…{text[len(text) - (limit - 1 - half) :]}"


def safe_url(url: str | None) -> str | None:
    if not url:
        return None
    url = url.strip()
    if len(url) > MAX_URL_CHARS or not re.match(r"^https?://[^\s\"'<>]+$", url, re.IGNORECASE):
        return None
    return url


def sanitize(document: Document) -> Document:
    text = clean_text(document.text)
    sections = document.sections
    if text != document.text and sections:
        sections = tuple(
            (len(clean_text(document.text[:start])), title, anchor)
            for start, title, anchor in sections
        )
    return replace(
        document,
        text=text,
        title=one_line(document.title, MAX_TITLE_CHARS) or one_line(document.id, MAX_TITLE_CHARS),
        source=one_line(document.source, MAX_SOURCE_CHARS),
        url=safe_url(document.url),
        sections=tuple(
            (start, one_line(title, MAX_TITLE_CHARS), one_line(anchor, MAX_TITLE_CHARS))
            for start, title, anchor in sections
        ),
    )
