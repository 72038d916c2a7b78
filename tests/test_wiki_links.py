"""Citations link to their page and section (chat and CLI), safely; exported folders get URLs."""

from __future__ import annotations

import re

import pytest

from qa.cli import format_answer
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.exports import file_documents, front_matter
from qa.serve.render import answer_html, citation_link, safe_url
from qa.types import Answer, Chunk, Passage


def passage(url, title="Harbour", section="History", text="Built in 1887."):
    chunk = Chunk("w:1::0", "w:1", text, 0, len(text))
    return Passage(chunk, 1.0, title, title, highlights=((0, 5),), url=url, section=section)


def reply(*passages):
    return Answer("When?", "Built in 1887. [1]", False, passages, 0.9, {"retrieve": 1, "answer": 1})


def test_a_citation_links_title_and_section_to_the_page():
    html = answer_html(reply(passage("https://wiki.example.org/wiki/Harbour#History")))
    link = re.search(r'<a class="qa-link" href="([^"]+)" target="_blank" rel="noopener noreferrer">'
                     r"(.*?)</a>", html)  # fmt: skip
    assert link, html
    import html as html_lib

    assert html_lib.unescape(link.group(1)) == "https://wiki.example.org/wiki/Harbour#History"
    assert "Harbour" in link.group(2) and "History" in link.group(2)
    top = answer_html(reply(passage("https://w.test/P")), link_target="_top")
    assert 'target="_top"' in top
    assert 'target="_blank"' in answer_html(reply(passage("https://w.test/P")), link_target="x")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        'https://w.test/" onmouseover="alert(1)',
        "https://w.test/<script>",
        "https://w.test/a b",
        "https://w.test/\nx",
        "//w.test/protocol-relative",
        "vbscript:x",
        "https://" + "a" * 3000,
    ],
)
def test_only_plain_http_urls_become_links(url):
    assert safe_url(url) is None
    html = answer_html(reply(passage(url, title='<img src=x onerror="alert(1)">')))
    assert "<a " not in html and "<img" not in html and 'onerror="' not in html


def test_hostile_characters_in_a_url_stay_inside_the_attribute():
    url = "https://w.test/P?a=1&b=2#Caf%C3%A9_(x)*_[y]:="
    link = citation_link(passage(url, section="<b>S</b>"))
    assert link.count('"') == 10  # class, href, target, rel, span class: no other quote
    assert "<b>" not in link and "[" not in link and "=2" not in link


def test_cli_shows_title_section_and_url():
    text = format_answer(reply(passage("https://w.test/Harbour#History", title="Har\x1b[31mbour")))
    assert "[1] Har\\x1b[31mbour > History" in text
    assert "    https://w.test/Harbour#History" in text


def test_exported_folders_get_urls_titles_and_groups(tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "guide.md").write_text(
        "---\ntitle: 'The Guide'\nurl: https://docs.example.org/guide\n---\n# Guide\nBe kind."
    )
    (tmp_path / "hr" / "pay.md").write_text("Salaries are paid on Fridays.")
    (tmp_path / "page.html").write_text(
        '<html><head><title>Page</title><link rel="canonical" href="https://c.example.org/p">'
        "</head><body><p>Hello there.</p></body></html>"
    )
    (tmp_path / "evil.md").write_text("---\nurl: javascript:alert(1)\n---\nEvil words.")
    access = AccessMap.from_json({"folders": {"hr": ["hr"]}})
    docs, skipped = file_documents(
        [tmp_path], base_url="https://wiki.example.org/base", strip_suffix=True, access=access
    )
    by_id = {d.id: d for d in docs}
    assert not skipped
    assert (by_id["guide.md"].title, by_id["guide.md"].url) == (
        "The Guide",
        "https://docs.example.org/guide",
    )
    assert by_id["guide.md"].text.startswith("# Guide")  # the front matter is not text
    assert by_id["hr/pay.md"].url == "https://wiki.example.org/base/hr/pay"
    assert by_id["hr/pay.md"].groups == ("hr",) and by_id["guide.md"].groups == ()
    assert by_id["page.html"].url == "https://c.example.org/p"
    assert by_id["evil.md"].url == "https://wiki.example.org/base/evil"  # not javascript:
    assert front_matter("no front matter") == ({}, "no front matter")
