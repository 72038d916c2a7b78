"""Wikitext to passages: no markup left, sections with MediaWiki's anchors, hostile input."""

# ruff: noqa: E501

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from qa.indexing.sources.wikitext import anchor, wikitext_to_text

MARKUP = ("{{", "}}", "[[", "]]", "<ref", "'''", "''", "{|", "|}", "__NOTOC__")

PAGE = """{{Infobox ship|name=Ember|tonnage={{convert|300|t}}}}
'''Ember''' was a ''steam'' [[tug]] built in [[Glasgow|the Clyde]].<ref name="a">Lloyd's, 1901.</ref> &amp; more.
__NOTOC__
<!-- an editor's note -->
== Service ==
She towed [[ship]]s<ref>Port log.</ref> for the [http://example.org/port Port Authority].
* first [[item]]
* second item
{| class="wikitable"
|-
! Year !! Event
|-
| 1901 || Launched
|}
[[File:Ember.jpg|thumb|The tug]] [[Category:Tugs]] [[fr:Ember]]
=== Crew & captains ===
Captain <span style="color:red">Ada Byrne</span> commanded her.<br/>She retired.
<nowiki>[[not a link]]</nowiki>
== Notes ==
First notes.
== Notes ==
Second notes.
"""


def test_markup_is_gone_and_words_stay():
    text, _ = wikitext_to_text(PAGE)
    for mark in MARKUP:
        assert mark not in text, mark
    for words in ("Ember was a steam tug built in the Clyde.", "& more", "Port Authority",
                  "Captain Ada Byrne commanded her.", "1901 ; Launched", "not a link"):  # fmt: skip
        assert words in text, words
    for hidden in ("Lloyd", "Port log", "editor's note", "Ember.jpg", "Tugs", "tonnage", "thumb"):
        assert hidden not in text, hidden
    assert "first item\nsecond item" in text  # list items stay one paragraph


def test_headings_become_sections_with_the_wikis_anchors():
    text, sections = wikitext_to_text(PAGE)
    assert [(title, key) for _, title, key in sections] == [
        ("Service", "Service"),
        ("Crew & captains", "Crew_&_captains"),
        ("Notes", "Notes"),
        ("Notes", "Notes_2"),  # MediaWiki numbers a repeated heading
    ]
    starts = {title: start for start, title, _ in sections}
    assert text[starts["Service"] :].startswith("She towed ships")
    assert text[starts["Crew & captains"] :].startswith("Captain Ada Byrne")
    assert "Service" not in text.split("\n")  # headings are sections, not passage text
    assert anchor("Café  au lait") == "Caf%C3%A9_au_lait"
    assert anchor('a"<b>%41') == "a%22%3Cb%3E%2541"  # nothing that can leave an attribute


def test_hostile_wikitext_is_inert_and_fast():
    hostile = (
        '<script>alert(1)</script><iframe src="javascript:alert(2)"></iframe>'
        '[javascript:alert(3) click] <a href="javascript:alert(4)">x</a> '
        "<style>body{}</style>Visible words."
    )
    text, _ = wikitext_to_text(hostile)
    assert "Visible words." in text
    assert "<script" not in text and "<iframe" not in text and "<style" not in text
    # Deep nesting and long runs: linear, bounded, and nothing thrown.
    for page in ("{{" * 5000 + "x" + "}}" * 5000, "[[" * 20000, "'''" * 20000,
                 "<div>" * 3000 + "deep" + "</div>" * 3000, "== " * 10000):  # fmt: skip
        began = time.perf_counter()
        text, _sections = wikitext_to_text(page)
        assert time.perf_counter() - began < 20, page[:20]
        for mark in ("{{", "[[", "'''"):
            assert mark not in text


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "{{",
                "}}",
                "[[",
                "]]",
                "|",
                "'''",
                "''",
                "==",
                "\n",
                "<ref>",
                "</ref>",
                "word ",
                "Title",
                "{|",
                "|}",
                "*",
                "<nowiki>",
                "&amp;",
            ]
        ),
        max_size=60,
    )
)
def test_any_wikitext_gives_clean_text_and_valid_sections(parts):
    text, sections = wikitext_to_text("".join(parts))
    for mark in ("{{", "}}", "[[", "]]", "'''", "<ref"):
        assert mark not in text
    starts = [s for s, _, _ in sections]
    assert starts == sorted(starts) and all(0 <= s <= len(text) for s in starts)
