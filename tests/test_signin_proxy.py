"""Signed-in wiki readers in the widget, the deployment of docs/embedding.md followed to the
letter: a real MediaWiki at http://wiki.corp.test and the app at http://qa.corp.test, both
behind Debian's nginx on loopback; nginx asks the wiki (qa-auth.php) who the reader is and
passes the user and groups on. Two users, two documents: alice (group hr) may read the
salaries page, bob may not; a reader without a session is asked to sign in."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browsing import record, require_chromium
from tests.mediawiki_site import PASSWORD, mediawiki, recipe
from tests.webserver import free_port, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SALARY_QUESTION = "When are salaries paid?"
HOLIDAY_QUESTION = "How many days of paid holiday does an employee get?"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_config(prefix: Path, port: int, wiki_port: int, app_port: int) -> Path:
    qa = recipe(
        "signin-nginx",
        **{
            "listen 80;": f"listen 127.0.0.1:{port};",
            "qa.example.org": "qa.corp.test",
            "wiki.example.org": "wiki.corp.test",
            "127.0.0.1:8080": f"127.0.0.1:{wiki_port}",
            "127.0.0.1:7860": f"127.0.0.1:{app_port}",
        },
    )
    temp = " ".join(
        f"{kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    wiki = (
        f"server {{ listen 127.0.0.1:{port}; server_name wiki.corp.test;\n"
        f"  location / {{ proxy_pass http://127.0.0.1:{wiki_port}; proxy_set_header Host $host;"
        " } }\n"
    )
    config = prefix / "nginx.conf"
    config.write_text(
        f"daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ access_log off; {temp} uwsgi_temp_path {prefix}/u; scgi_temp_path {prefix}/s;\n"
        f"{wiki}{qa}}}\n"
    )
    return config


@contextlib.contextmanager
def nginx(prefix: Path, config: Path, port: int) -> Iterator[None]:
    assert Path(NGINX).exists(), "no nginx: run bash scripts/setup.sh --test"
    process = subprocess.Popen([NGINX, "-c", str(config), "-p", str(prefix)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, (prefix / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def app_settings(wiki_origin: str) -> Any:
    """The recipe's QA_* variables, with the test's host names."""
    from qa.serve.webconfig import WebSettings

    env = recipe(
        "signin-env",
        **{"https://wiki.example.org": wiki_origin, "qa.example.org": "qa.corp.test"},
    )
    variables = dict(re.findall(r"(QA_[A-Z_]+)=(\S+)", env))
    return WebSettings.from_env(variables).with_overrides(rate_limit=10_000)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, real_embedder):
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from tests.groups_kb import build

    require_chromium()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    kb = build(tmp_path_factory.mktemp("kb"), real_embedder)
    port, wiki_port = free_port(), free_port()
    wiki_url, qa_url = f"http://wiki.corp.test:{port}", f"http://qa.corp.test:{port}"
    web = app_settings(wiki_url)
    assert web.auth_header and web.groups_header and web.trusted_proxies
    with running_app(create_app(LiveKnowledgeBase.of(kb), web, kb.settings)) as app_port:
        folder = tmp_path_factory.mktemp("wiki")
        settings = recipe("signin-localsettings", **{".example.org": ".corp.test"})
        settings += "\n$wgGroupPermissions['hr']['read'] = true;\n"
        with mediawiki(folder, wiki_url, wiki_port, settings=settings) as wiki:
            (folder / "qa-auth.php").write_text(recipe("signin-php"))
            names = {"https://qa.example.org": qa_url}
            wiki.edit("MediaWiki:Common.js", recipe("mediawiki-common-js", **names))
            wiki.edit("Ask", "Questions for the team.\n\n" + recipe("mediawiki-page"))
            wiki.user("Alice", "hr")
            wiki.user("Bob")
            prefix = tmp_path_factory.mktemp("nginx")
            with nginx(prefix, nginx_config(prefix, port, wiki_port, app_port), port):
                yield {"wiki": wiki_url, "qa": qa_url, "kb": kb}


def reader(browser: Any, deployment: dict[str, Any], name: str | None, **kw: Any) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, **kw)
    page = context.new_page()
    if name:
        page.goto(f"{deployment['wiki']}/index.php?title=Special:UserLogin")
        page.fill("#wpName1", name)
        page.fill("#wpPassword1", PASSWORD)
        page.click("#wpLoginAttempt")
        page.wait_for_load_state()
        assert page.locator("#pt-userpage, #pt-userpage-2").count() >= 1, "login failed"
    page.goto(f"{deployment['wiki']}/index.php?title=Ask")
    return page


def ask(page: Any, question: str) -> str:
    frame = page.frame_locator(".qa-widget iframe")
    frame.locator(".qa-docs").wait_for(timeout=30_000)
    before = frame.locator(".qa-w-turn").count()
    frame.locator("#qa-question").fill(question)
    frame.locator("#qa-question").press("Enter")
    turn = frame.locator(".qa-w-turn").nth(before)
    turn.locator(".qa-reply").wait_for(timeout=20_000)
    return str(turn.inner_text())


def test_a_reader_without_a_session_is_asked_to_sign_in(deployment, browser):
    # Even one who sends the proxy's header himself: nginx replaces it.
    page = reader(browser, deployment, None, extra_http_headers={"X-QA-User": "Alice"})
    frame = page.frame_locator(".qa-widget iframe")
    status = frame.locator("#qa-status")
    status.wait_for(timeout=30_000)
    assert status.inner_text().startswith("Sign in to the wiki to ask questions here")
    link = frame.locator("#qa-signin")
    assert "Special:UserLogin" in str(link.get_attribute("href"))
    assert frame.locator("#qa-question").is_disabled()
    body = frame.locator("body").inner_text()
    assert "{" not in body and "Could not load" not in body
    page.context.close()


def test_signed_in_readers_are_answered_from_what_they_may_read(deployment, browser):
    results = {}
    alice = reader(browser, deployment, "Alice")
    said = ask(alice, SALARY_QUESTION)
    assert "25th" in said and "Salaries" in said
    results["alice (hr): when are salaries paid?"] = "answered from Salaries"
    alice.context.close()

    bob = reader(browser, deployment, "Bob")
    said = ask(bob, SALARY_QUESTION)
    assert "payroll" not in said and "Salaries" not in said
    results["bob: when are salaries paid?"] = "declined; no passage of Salaries shown"
    assert "25 days" in ask(bob, HOLIDAY_QUESTION)
    results["bob: how many days of holiday?"] = "answered from Holidays"
    docs = bob.frame_locator(".qa-widget iframe").locator(".qa-docs").inner_text()
    assert "Salaries" not in docs  # not even its title
    bob.context.close()

    record("sign-in through nginx", results)
