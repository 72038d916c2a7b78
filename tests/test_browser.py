"""The app in a real headless Chromium: the full page, and embedded in a wiki on another site.

A static "wiki" runs at http://wiki.test:<port> (allowed) and http://evil.test:<port> (not
allowed), the app at http://app.test:<port>; Chromium maps *.test to 127.0.0.1.
Screenshots go to $QA_SCREENSHOT_DIR, or to the test's tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.webserver import running_app, static_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Why did Turkey choose the S-400?"
ANSWER_WORDS = "Russia proposed the S-400"
HOSTILE_QUESTION = "How fast does the peregrine falcon dive?"
PWNED = "window.__pwned=1"
EXAMPLES = (QUESTION, "What is the capital of France?")


def hostile_documents(folder: Path, pixel: str) -> None:
    """Documents that try every way of running code or fetching things in a reader's page."""
    (folder / "falcons.md").write_text(
        f"# Falcons <img src=x onerror=\"{PWNED};alert('title')\"> field notes\n\n"
        "The peregrine falcon dives at over 300 km/h, the fastest of all birds. "
        f'<img src=x onerror="{PWNED};alert(1)"> <script>{PWNED};alert(2)</script> '
        f'<svg onload="{PWNED}"></svg> [click me](javascript:{PWNED}) '
        f'![pixel]({pixel}) <a href="javascript:{PWNED}">link</a> '
        f'<iframe src="javascript:{PWNED}"></iframe> $\\alpha$ **bold** `code` '
        f"<style>body{{display:none}}</style> {pixel}\n",
        encoding="utf-8",
    )
    (folder / "kestrels.html").write_text(
        "<html><head><title>Kestrels &lt;script&gt;alert(3)&lt;/script&gt;</title></head><body>"
        "<p>The kestrel hovers over fields. &lt;img src=x onerror=alert(4)&gt;</p>"
        f"<script>{PWNED};alert(5)</script></body></html>",
        encoding="utf-8",
    )


# ----- servers and browser (once per session) ----------------------------------------------------
@pytest.fixture(scope="session")
def wiki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wiki")
    with static_site(folder) as (port, requested):
        yield folder, port, requested


def _app(live: Any, wiki_port: int) -> Any:
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    web = WebSettings(
        allowed_origins=(f"http://wiki.test:{wiki_port}",),
        allowed_hosts=("app.test",),
        rate_limit=10_000,
        examples=EXAMPLES,
    )
    return create_app(live, web, live.current().settings)


def _wiki_pages(folder: Path, name: str, app: str) -> None:
    """component.html and iframe.html embedding `app`, as a wiki editor would paste them."""
    (folder / name).mkdir()
    (folder / name / "component.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Team wiki</title>\n"
        f'<script type="module" src="{app}/gradio.js"></script></head>\n'
        "<body><h1>Team wiki</h1><p>Ask the documents right here:</p>\n"
        f'<gradio-app src="{app}/embed"></gradio-app></body></html>\n'
    )
    (folder / name / "iframe.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Team wiki</title></head>\n"
        "<body><h1>Team wiki</h1><p>Ask the documents right here:</p>\n"
        f'<iframe src="{app}/embed" width="100%" height="640" style="border:0" '
        'title="Ask the documents"></iframe></body></html>\n'
    )


@pytest.fixture(scope="session")
def servers(article_kb, real_embedder, wiki, tmp_path_factory):
    """The app over the S-400 article and over hostile documents, and the wiki pages for both."""
    from qa.knowledge import KnowledgeBase
    from qa.serve.live import LiveKnowledgeBase

    # Before Gradio is first imported: it reads the folder once, at import.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    folder, wiki_port, _ = wiki
    docs = tmp_path_factory.mktemp("hostile-docs")
    hostile_documents(docs, f"http://wiki.test:{wiki_port}/pixel.png")
    hostile = KnowledgeBase.build(
        [docs], tmp_path_factory.mktemp("hostile-kb"), embedder=real_embedder
    )
    with (
        running_app(_app(LiveKnowledgeBase.of(article_kb), wiki_port)) as article_port,
        running_app(_app(LiveKnowledgeBase.of(hostile), wiki_port)) as hostile_port,
    ):
        urls = {
            "article": f"http://app.test:{article_port}",
            "hostile": f"http://app.test:{hostile_port}",
        }
        for name, url in urls.items():
            _wiki_pages(folder, name, url)
        urls["wiki"] = f"http://wiki.test:{wiki_port}"
        urls["evil"] = f"http://evil.test:{wiki_port}"
        yield urls


class Watched:
    """A page plus what it did that it should not have: dialogs, page errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.console.append(m.text))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    watched = Watched(context.new_page())
    yield watched
    context.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("QA_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ask(root: Any, question: str) -> Any:
    """Type a question into the chat inside `root` (page or frame) and wait for the reply."""
    box = root.locator("#qa-question textarea")
    box.wait_for(timeout=20_000)
    replies = root.locator(".qa-reply")
    before = replies.count()
    box.fill(question)
    box.press("Enter")
    replies.nth(before).wait_for(timeout=20_000)
    return replies.nth(before)


def assert_evidence(reply: Any) -> None:
    """The answer's evidence is shown: highlighted in its passage, or, when the answer is the
    whole passage, named once (a reply never shows the same text twice)."""
    if reply.locator("mark.qa-hl").count():
        assert ANSWER_WORDS in reply.locator("mark.qa-hl").first.inner_text()
    else:
        assert "this whole passage" in reply.locator(".qa-passage").first.inner_text()
        assert reply.inner_text().count(ANSWER_WORDS) == 1


# ----- 1-3: it works, on its own and inside the wiki ---------------------------------------------
def _no_server_paths(root: Any, tmp_path_factory: Any) -> None:
    """Every folder the tests index or store in is under pytest's base temp folder: a page
    shows sources relative to what was indexed, never a path on the server."""
    assert str(tmp_path_factory.getbasetemp()) not in root.content()


def test_full_app_answers_with_highlighted_evidence(servers, page, shots, tmp_path_factory):
    p = page.page
    p.goto(servers["article"] + "/")
    assert p.locator("h1").first.inner_text() == "Ask the documents"
    p.locator(".qa-docs", has_text="turkey-s400-article").wait_for(timeout=20_000)
    # The question skips Gradio's queue: one POST to run/predict, its reply in the response.
    with p.expect_response(lambda r: r.url.endswith("/gradio_api/run/predict")) as sent:
        reply = ask(p, QUESTION)
    assert sent.value.status == 200
    assert ANSWER_WORDS in reply.locator(".qa-text").inner_text()
    assert reply.locator(".qa-cite").first.inner_text() == "[1]"
    assert reply.locator(".qa-passage").count() == 3
    assert_evidence(reply)
    assert "score" in reply.locator(".qa-source").first.inner_text()
    _no_server_paths(p, tmp_path_factory)
    p.screenshot(path=shots / "full-app.png", full_page=True)

    # An example question the documents cannot answer: a visibly different, declined reply.
    replies = p.locator(".qa-reply")
    count = replies.count()
    p.get_by_role("button", name="What is the capital of France?").click()
    replies.nth(count).wait_for(timeout=20_000)
    declined = replies.nth(count)
    assert "qa-declined" in declined.get_attribute("class")
    assert "Not in the documents" in declined.inner_text()
    assert declined.locator(".qa-passage").count() == 3
    assert declined.locator("mark").count() == 0

    # Clear empties the chat; a follow-up then starts afresh.
    p.locator("#qa-clear").click()
    p.wait_for_function("document.querySelectorAll('.qa-reply').length === 0")


def test_follow_up_uses_the_conversation(servers, page):
    p = page.page
    p.goto(servers["article"] + "/")
    ask(p, "Who is Conkar?")
    reply = ask(p, "What did he say about the Patriots?")
    assert "qa-answered" in reply.get_attribute("class")


def test_web_component_on_the_wiki_answers(servers, page, shots):
    p = page.page
    p.goto(servers["wiki"] + "/article/component.html")
    reply = ask(p, QUESTION)  # Playwright's locators pierce the component's shadow root
    assert ANSWER_WORDS in reply.inner_text()
    assert_evidence(reply)
    p.screenshot(path=shots / "wiki-web-component.png", full_page=True)


def test_cross_site_iframe_on_the_wiki_answers(servers, page, shots):
    p = page.page
    p.goto(servers["wiki"] + "/article/iframe.html")
    frame = p.frame_locator("iframe")
    reply = ask(frame, QUESTION)
    assert ANSWER_WORDS in reply.inner_text()
    assert_evidence(reply)
    p.screenshot(path=shots / "wiki-iframe.png", full_page=True)


# ----- 4: a site that is not on the list gets nothing --------------------------------------------
def test_unlisted_site_cannot_embed(servers, page):
    p = page.page

    def refused(word: str) -> bool:
        for _ in range(100):
            if any(word in line for line in page.console):
                return True
            p.wait_for_timeout(100)
        return False

    p.goto(servers["evil"] + "/article/component.html")
    assert refused("CORS"), page.console
    p.wait_for_timeout(500)
    assert p.locator("#qa-question").count() == 0

    page.console.clear()
    p.goto(servers["evil"] + "/article/iframe.html")
    assert refused("frame-ancestors"), page.console
    assert p.frames[1].locator("#qa-question").count() == 0


def test_unlisted_site_cannot_call_the_api(servers, page, article_kb):
    call = """async (url) => {
        try {
            const r = await fetch(url + '/api/ask', {method: 'POST',
                headers: {'content-type': 'application/json'},
                body: JSON.stringify({question: 'Who is Conkar?'})});
            return await r.json();
        } catch (e) { return 'refused: ' + e; }
    }"""
    p = page.page
    p.goto(servers["wiki"] + "/article/iframe.html")
    answer = p.evaluate(call, servers["article"])
    expected = article_kb.ask("Who is Conkar?").to_dict()
    assert {**answer, "timings_ms": None} == {**expected, "timings_ms": None}
    p.goto(servers["evil"] + "/article/iframe.html")
    assert str(p.evaluate(call, servers["article"])).startswith("refused")


# ----- 5: hostile documents stay text ------------------------------------------------------------
def _assert_inert(page: Watched, root: Any, reply: Any, frames: list[Any]) -> None:
    text = reply.inner_text()
    assert "onerror" in text and "<script>" in text and "javascript" in text  # shown as text
    assert reply.locator("img, script, iframe, svg, style, a, math, .katex").count() == 0
    assert root.locator("img[src='x']").count() == 0
    assert page.dialogs == []
    for frame in frames:
        assert frame.evaluate("() => window.__pwned") is None


def test_hostile_document_is_inert_in_the_full_app(servers, page, wiki, tmp_path_factory):
    p = page.page
    p.goto(servers["hostile"] + "/")
    docs = p.locator(".qa-docs")
    docs.wait_for(timeout=20_000)
    p.wait_for_function("document.querySelector('.qa-docs').innerText.includes('Falcons')")
    assert "onerror" in docs.inner_text()
    reply = ask(p, HOSTILE_QUESTION)
    assert "300 km/h" in reply.inner_text()
    p.wait_for_timeout(500)
    _assert_inert(page, p, reply, p.frames)
    _no_server_paths(p, tmp_path_factory)
    _, _, requested = wiki
    assert "/pixel.png" not in requested


def test_hostile_document_is_inert_in_the_web_component(servers, page, wiki):
    p = page.page
    p.goto(servers["wiki"] + "/hostile/component.html")
    reply = ask(p, HOSTILE_QUESTION)
    p.wait_for_timeout(500)
    _assert_inert(page, p, reply, p.frames)
    assert "/pixel.png" not in wiki[2]


def test_hostile_document_is_inert_in_the_iframe(servers, page, wiki):
    p = page.page
    p.goto(servers["wiki"] + "/hostile/iframe.html")
    frame = p.frame_locator("iframe")
    reply = ask(frame, HOSTILE_QUESTION)
    p.wait_for_timeout(500)
    _assert_inert(page, frame, reply, p.frames)
    assert "/pixel.png" not in wiki[2]
