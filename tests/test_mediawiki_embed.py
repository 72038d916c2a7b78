"""The MediaWiki recipe of docs/embedding.md, followed to the letter on a real MediaWiki 1.39
(Debian's package) at http://wiki.test, the app on another site (http://app.test), read in
headless Chromium on a desktop (Vector 2022) and a phone (Minerva), with the wiki's own
Content-Security-Policy on. Screenshots go to $QA_SCREENSHOT_DIR (docs/ for the README)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browsing import VISIBLE_SHARE_JS, contrasts, record, require_chromium
from tests.mediawiki_site import mediawiki, recipe
from tests.webserver import free_port, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Why did Turkey choose the S-400?"
PAGE = "Ask the documents"
INTRO = "This page answers questions from the S-400 article.\n\n"


@pytest.fixture(scope="module")
def wiki_and_app(article_kb, tmp_path_factory):
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    require_chromium()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    wiki_port = free_port()
    wiki_url = f"http://wiki.test:{wiki_port}"
    web = WebSettings(allowed_origins=(wiki_url,), allowed_hosts=("app.test",), rate_limit=10_000)
    live = LiveKnowledgeBase.of(article_kb)
    with running_app(create_app(live, web, article_kb.settings)) as app_port:
        app_url = f"http://app.test:{app_port}"
        names = {"https://qa.example.org": app_url, "https://wiki.example.org": wiki_url}
        csp = recipe("mediawiki-csp", **names)
        folder = tmp_path_factory.mktemp("mediawiki")
        with mediawiki(folder, wiki_url, wiki_port, settings=csp) as wiki:
            wiki.edit("MediaWiki:Common.js", recipe("mediawiki-common-js", **names))
            placeholder = recipe("mediawiki-page", **names)
            wiki.edit(PAGE, INTRO + placeholder)
            # The same placeholder with the snippet's "follow the reader" option, for dark mode.
            wiki.edit(PAGE + " (auto)", INTRO + placeholder.replace('"light"', '"auto"'))
            _warm_up(wiki_port)
            yield wiki_url, app_url


DEVICES = {
    "desktop": ({"viewport": {"width": 1280, "height": 800}}, ""),
    "phone": (
        {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True},
        "useskin=minerva",
    ),
}


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_reader_asks_inside_the_wiki_page(wiki_and_app, browser, device, scheme):
    wiki_url, _ = wiki_and_app
    options, skin = DEVICES[device]
    context = browser.new_context(color_scheme=scheme, **options)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    title = PAGE if scheme == "light" else PAGE + " (auto)"
    query = "&".join(q for q in (f"title={title.replace(' ', '_')}", skin) if q)
    page.goto(f"{wiki_url}/index.php?{query}")
    frame = page.frame_locator(".qa-widget iframe")
    box = frame.locator("#qa-question")
    box.wait_for(timeout=30_000)
    frame.locator(".qa-docs").wait_for(timeout=20_000)
    ready_ms = page.evaluate("performance.now()")
    box.fill(QUESTION)
    box.press("Enter")
    reply = frame.locator(".qa-reply").first
    reply.wait_for(timeout=20_000)
    answered_ms = page.evaluate("performance.now()")
    assert "Russia proposed the S-400" in reply.inner_text()
    page.wait_for_timeout(400)  # the page has scrolled to the new exchange
    inner = next(f for f in page.frames if "/widget/" in f.url)
    assert inner.locator("mark.qa-hl, .qa-text").count() >= 1
    shares = {
        "question": inner.locator(".qa-w-q").element_handle().evaluate(VISIBLE_SHARE_JS),
        "answer": inner.locator(".qa-text").element_handle().evaluate(VISIBLE_SHARE_JS),
    }
    assert shares == {"question": 1.0, "answer": 1.0}, shares
    worst = min(contrasts(inner), key=lambda f: f["ratio"])
    assert worst["ratio"] >= 4.5, worst
    assert not [e for e in errors if "Content Security Policy" in e or "qa widget" in e], errors
    loader_ms = page.evaluate(
        "performance.getEntriesByType('resource')"
        ".find(r => r.name.includes('/widget.js')).startTime"
    )
    record(
        f"mediawiki {device} {scheme}",
        {"page_open_to_first_answer_ms": round(answered_ms), "widget_ready_ms": round(ready_ms),
         "loader_requested_ms": round(loader_ms), "visible": shares,
         "worst_contrast": worst["ratio"]},
    )  # fmt: skip
    _screenshot(page, f"wiki-{scheme}-{device}.png")
    context.close()


def _warm_up(port: int) -> None:
    """One visit's worth of server caches (MediaWiki's localisation and ResourceLoader under
    php -S), so the timings are those of a reader, not of the wiki's very first request."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    for skin in ("vector-2022", "minerva"):
        html = httpx.get(f"{base}/index.php", params={"title": PAGE, "useskin": skin}, timeout=60)
        for url in set(re.findall(r'(?:src|href)="(/load\.php[^"]+)"', html.text)):
            httpx.get(base + url.replace("&amp;", "&"), timeout=60)


def _screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("QA_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


def test_the_page_text_holds_only_the_placeholder(wiki_and_app):
    """What editors see: no script in the page, the loader comes from the site's Common.js."""
    import httpx

    wiki_url, app_url = wiki_and_app
    port = wiki_url.rsplit(":", 1)[1]
    raw = httpx.get(f"http://127.0.0.1:{port}/index.php", params={"title": PAGE, "action": "raw"})
    assert "<script" not in raw.text and 'class="qa-widget"' in raw.text
    js = httpx.get(
        f"http://127.0.0.1:{port}/index.php",
        params={"title": "MediaWiki:Common.js", "action": "raw"},
    )
    assert f"{app_url}/widget.js" in js.text
