"""The wiki widget in a real headless Chromium, on a page of another site (http://wiki.test).

It sizes itself (no inner scrollbar, no blank band), keeps the question in view with its answer
at 320-1280 px, reads at 4.5:1 or better in light, dark and "follow the reader", tells the reader
what is happening (getting ready, unavailable, not allowed here) and records thumbs.
Figures go to $QA_FIGURES when set; screenshots to $QA_SCREENSHOT_DIR.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browsing import VISIBLE_SHARE_JS, contrasts, record, require_chromium
from tests.browsing import worst as worst_of
from tests.webserver import free_port, running_app, static_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Why did Turkey choose the S-400?"
FOLLOW_UP = "Who is Conkar?"
WIDTHS = (320, 640, 944, 1280)
HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Team wiki</title>
<style>body {{ margin: 0; font-family: sans-serif; }}
main {{ box-sizing: border-box; margin: 0 auto; padding: 0 8px; }}</style></head><body><main>
<h1>Team wiki</h1><p>Ask the documents right here.</p>
<div class="qa-widget" data-theme="light"></div>
<p>The rest of the page.</p></main>
<script>
  const q = new URLSearchParams(location.search);
  document.querySelector('main').style.maxWidth = (q.get('w') || 944) + 'px';
  document.querySelector('.qa-widget').dataset.theme = q.get('theme') || 'light';
</script>
<script src="{app}/widget.js" async></script></body></html>
"""
LATE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Late</title>
<script src="{app}/widget.js"></script></head><body><h1>Added later</h1><div id="here"></div>
<script>setTimeout(() => {{ const d = document.createElement('div'); d.className = 'qa-widget';
document.getElementById('here').appendChild(d); }}, 800);</script></body></html>
"""


@pytest.fixture(scope="module")
def site(article_kb, tmp_path_factory):
    """The app over the S-400 article, and a wiki on another site that embeds it."""
    from qa.serve.live import LiveKnowledgeBase

    require_chromium()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    folder = tmp_path_factory.mktemp("wiki")
    with static_site(folder) as (wiki_port, _):
        live = LiveKnowledgeBase.of(article_kb)
        with running_app(make_app(live, wiki_port)) as port:
            app = f"http://app.test:{port}"
            (folder / "host.html").write_text(HOST_PAGE.format(app=app))
            (folder / "late.html").write_text(LATE_PAGE.format(app=app))
            yield {"app": app, "wiki": f"http://wiki.test:{wiki_port}", "port": wiki_port,
                   "folder": folder, "kb": article_kb}  # fmt: skip


def make_app(live: Any, wiki_port: int, **overrides: Any) -> Any:
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    web = WebSettings(
        allowed_origins=(f"http://wiki.test:{wiki_port}",),
        allowed_hosts=("app.test",),
        rate_limit=10_000,
        **overrides,
    )
    return create_app(live, web, live.current().settings if live.status()["loaded"] else None)


def open_page(
    browser: Any, url: str, width: int = 1100, height: int = 800, routes: Any = (), **kw: Any
) -> Any:
    """A page at `url`; `routes` (pattern, handler) are set on its context before it loads,
    so they also catch the widget's frame, which is another site's process (a route set on
    the page after it loaded missed that frame's requests once in CI)."""
    context = browser.new_context(viewport={"width": width, "height": height}, **kw)
    for pattern, handler in routes:
        context.route(pattern, handler)
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(m.text))
    page.goto(url)
    return page


def ask(page: Any, question: str) -> Any:
    frame = page.frame_locator(".qa-widget iframe")
    box = frame.locator("#qa-question")
    box.wait_for(timeout=20_000)
    frame.locator(".qa-docs").wait_for(timeout=20_000)
    turns = frame.locator(".qa-w-turn")
    before = turns.count()
    box.fill(question)
    box.press("Enter")
    turns.nth(before).locator(".qa-reply").wait_for(timeout=20_000)
    page.wait_for_timeout(300)  # the host page has scrolled
    return turns.nth(before)


def frame_of(page: Any) -> Any:
    return next(f for f in page.frames if "/widget/" in f.url)


def test_the_widget_answers_and_sizes_itself(site, browser):
    page = open_page(browser, site["wiki"] + "/host.html")
    turn = ask(page, QUESTION)
    assert "Russia proposed the S-400" in turn.inner_text()
    assert turn.locator("mark.qa-hl, .qa-text").count() >= 1
    frame = frame_of(page)
    inner = frame.evaluate("[document.documentElement.scrollHeight, innerHeight]")
    content = frame.evaluate("document.querySelector('.qa-w').getBoundingClientRect().height")
    assert inner[0] <= inner[1], "the widget scrolls inside its frame"
    assert inner[1] - content <= 4, f"blank band of {inner[1] - content} px below the widget"
    page.context.close()


def test_a_placeholder_added_later_becomes_the_widget(site, browser):
    page = open_page(browser, site["wiki"] + "/late.html")
    assert "Russia proposed" in ask(page, QUESTION).inner_text()
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_question_stays_in_view_with_its_answer(site, browser, width):
    page = open_page(browser, f"{site['wiki']}/host.html?w={width}", width=width, height=720)
    ask(page, QUESTION)
    turn = ask(page, FOLLOW_UP)  # the second reply: the first scrolls above it
    question = turn.locator(".qa-w-q").element_handle()
    answer = turn.locator(".qa-text").element_handle()
    reply = turn.element_handle()
    shares = {
        "question": question.evaluate(VISIBLE_SHARE_JS),
        "answer": answer.evaluate(VISIBLE_SHARE_JS),
        "reply": reply.evaluate(VISIBLE_SHARE_JS),
    }
    record(f"visible share at {width} px", shares)
    assert shares["question"] == 1.0 and shares["answer"] == 1.0, shares
    page.context.close()


THEMES = [("light", "light"), ("dark", "light"), ("auto", "dark"), ("auto", "light")]


@pytest.mark.parametrize(("theme", "system"), THEMES)
def test_every_text_in_the_widget_reads_at_4_5_to_1(site, browser, theme, system):
    page = open_page(
        browser, f"{site['wiki']}/host.html?theme={theme}", color_scheme=system, width=944
    )
    turn = ask(page, QUESTION)
    turn.locator(".qa-w-rate").first.click()  # the comment box and the thanks show too
    frame = frame_of(page)
    frame.locator(".qa-w-comment input").wait_for()
    ask(page, "What is the capital of France?")  # a declined reply, in its own colours
    found = contrasts(frame)
    worst = worst_of(found)
    record(f"widget contrast, theme {theme}, system {system}", worst)
    assert worst["ratio"] >= 4.5, [f for f in found if f["ratio"] < 4.5]
    shots = os.environ.get("QA_SCREENSHOT_DIR")
    if shots:
        page.screenshot(path=str(Path(shots) / f"widget-{theme}-{system}.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_in_the_chat_page_reads_at_4_5_to_1(site, browser, theme):
    page = open_page(browser, f"{site['app']}/?__theme={theme}", color_scheme=theme)
    box = page.locator("#qa-question textarea")
    box.wait_for(timeout=20_000)
    page.locator(".qa-docs", has_text="turkey").wait_for(timeout=20_000)
    box.fill(QUESTION)
    box.press("Enter")
    page.locator(".qa-reply").first.wait_for(timeout=20_000)
    page.wait_for_timeout(500)
    base = page.evaluate("getComputedStyle(document.body).backgroundColor")
    found = contrasts(page, base)
    worst = worst_of(found)
    record(f"chat page contrast, {theme}", worst)
    assert worst["ratio"] >= 4.5, [f for f in found if f["ratio"] < 4.5]
    question = page.locator(".user-row").last.element_handle()
    assert question.evaluate(VISIBLE_SHARE_JS) == 1.0
    page.context.close()


def test_a_site_that_is_not_allowed_is_told_so(site, browser):
    evil = site["wiki"].replace("wiki.test", "evil.test") + "/host.html"
    page = open_page(browser, evil)
    note = page.locator(".qa-widget .qa-widget-note")
    note.wait_for(timeout=10_000)
    assert "not allowed" in note.inner_text()
    assert any("QA_ALLOWED_ORIGINS" in line for line in page.console_lines)
    assert page.locator(".qa-widget iframe").count() == 0
    page.context.close()


def test_feedback_is_kept_with_the_answer_and_its_passages(site, browser):
    kb = site["kb"]
    before = len(kb.store.feedback())
    page = open_page(browser, site["wiki"] + "/host.html")
    turn = ask(page, QUESTION)
    turn.locator(".qa-w-rate[data-rating='-1']").click()
    turn.locator(".qa-w-fb [role=status]", has_text="Thanks").wait_for(timeout=10_000)
    turn.locator(".qa-w-comment input").fill("The second passage is about something else.")
    turn.locator(".qa-w-comment button").click()
    turn.locator(".qa-w-fb [role=status]", has_text="comment").wait_for(timeout=10_000)
    kept = kb.store.feedback()[before:]
    assert [k.rating for k in kept] == [-1, -1]
    assert kept[0].question == QUESTION and "Russia" in kept[0].answer
    assert kept[0].passage_ids and all(
        p.startswith("turkey-s400-article") for p in kept[0].passage_ids
    )
    assert kept[1].comment == "The second passage is about something else."
    page.context.close()


def test_loading_then_ready_keeps_the_question(site, browser, real_embedder):
    """A question asked while the knowledge base loads waits, then is answered; no reload."""
    from qa.serve.live import LiveKnowledgeBase

    release = threading.Event()

    def slow_loader(embedder: Any) -> Any:
        release.wait(60)
        return site["kb"]

    live = LiveKnowledgeBase(slow_loader, warm_up=False)
    live.load_in_background()
    with running_app(make_app(live, site["port"])) as port:
        (site["folder"] / "slow.html").write_text(HOST_PAGE.format(app=f"http://app.test:{port}"))
        page = open_page(browser, site["wiki"] + "/slow.html")
        frame = page.frame_locator(".qa-widget iframe")
        frame.locator("#qa-status", has_text="getting ready").wait_for(timeout=20_000)
        frame.locator("#qa-question").fill(QUESTION)
        frame.locator("#qa-question").press("Enter")
        frame.locator(".qa-w-wait").wait_for()
        assert frame.locator(".qa-notice, .qa-reply").count() == 0
        release.set()
        frame.locator(".qa-reply").wait_for(timeout=20_000)
        assert frame.locator("#qa-status").is_hidden()
        assert not any("rror" in line for line in page.console_lines if "favicon" not in line)
        page.context.close()


def test_an_outage_is_said_and_recovers_without_a_reload(site, browser):
    from qa.serve.live import LiveKnowledgeBase

    port = free_port()
    live = LiveKnowledgeBase.of(site["kb"])
    (site["folder"] / "outage.html").write_text(HOST_PAGE.format(app=f"http://app.test:{port}"))
    with running_app(make_app(live, site["port"]), port=port):
        page = open_page(browser, site["wiki"] + "/outage.html")
        ask(page, QUESTION)
    frame = page.frame_locator(".qa-widget iframe")  # the app is down now
    frame.locator("#qa-question").fill(FOLLOW_UP)
    frame.locator("#qa-question").press("Enter")
    frame.locator("#qa-status", has_text="unavailable, try again").wait_for(timeout=10_000)
    time.sleep(1)
    with running_app(make_app(live, site["port"]), port=port):
        frame.locator(".qa-w-turn").nth(1).locator(".qa-reply").wait_for(timeout=20_000)
        assert frame.locator("#qa-status").is_hidden()
        assert "Conkar" in frame.locator(".qa-w-turn").nth(1).inner_text()
    page.context.close()


def test_the_chat_pages_thumbs_are_kept_too(site, browser):
    kb = site["kb"]
    before = len(kb.store.feedback())
    page = open_page(browser, f"{site['app']}/")
    box = page.locator("#qa-question textarea")
    box.wait_for(timeout=20_000)
    box.fill(QUESTION)
    box.press("Enter")
    page.locator(".qa-reply").first.wait_for(timeout=20_000)
    page.locator("#qa-chat button[aria-label='Dislike']").first.click()
    page.locator(".qa-status", has_text="Thanks").wait_for(timeout=10_000)
    kept = kb.store.feedback()[before:]
    assert [k.rating for k in kept] == [-1] and kept[0].question == QUESTION
    assert kept[0].passage_ids and kept[0].at
    page.context.close()


PAGE_AWARE = """<!doctype html><html><head><meta charset="utf-8"><title>On a page</title>
<script>window.mw = {{ config: {{ get: function (k) {{
  return k === "wgPageName" ? {name} : null; }} }} }};</script></head><body>
<div class="qa-widget" data-page="this" data-scope="{scope}"></div>
<script src="{app}/widget.js" async></script></body></html>
"""


@pytest.mark.parametrize(("scope", "on_page"), [("only", True), ("only", False), ("prefer", False)])
def test_a_widget_on_a_wiki_page_names_its_page(site, browser, scope, on_page):
    """data-page="this" sends MediaWiki's page name: "only" keeps to that page (nothing from
    a page the knowledge base does not hold), "prefer" falls back to every page."""
    import json

    title = site["kb"].documents[0].title if on_page else "Some other page"
    name = json.dumps(title.replace(" ", "_"))
    (site["folder"] / "onpage.html").write_text(
        PAGE_AWARE.format(app=site["app"], name=name, scope=scope)
    )
    page = open_page(browser, site["wiki"] + "/onpage.html")
    with page.expect_request(lambda r: r.url.endswith("/widget/ask")) as sent:
        turn = ask(page, QUESTION)
    body = json.loads(sent.value.post_data or "{}")
    assert body["page"] == title.replace(" ", "_") and body["scope"] == scope
    answered = "Russia proposed the S-400" in turn.inner_text()
    assert answered is (on_page or scope == "prefer")
    page.context.close()


def test_citations_open_in_the_wikis_own_tab(site, browser):
    """The frame points citation links at the wiki's tab (_top) when embedded."""
    import json

    link = '<div class="qa-reply"><a class="qa-link" href="https://wiki.test/P">P</a></div>'

    served: list[str] = []

    def reply(route: Any) -> None:
        served.append(route.request.url)
        body = {"question": QUESTION, "answer": "A", "html": link, "feedback": ""}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page = open_page(browser, site["wiki"] + "/host.html", routes=[("**/widget/ask", reply)])
    turn = ask(page, QUESTION)
    assert served, "the frame's question reached the real server, not the test's reply"
    assert turn.locator("a.qa-link").get_attribute("target") == "_top"
    page.context.close()
