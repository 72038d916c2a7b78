"""Take docs/screenshot.png: the real app in headless Chromium, answering one question.

    python docs/screenshot.py [--index DIR | --store URL] [--question "..."] [--out PNG]

Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the tests' browser settings are the same here
from tests.browsing import ARGS, CHROMIUM  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    where.add_argument("--store", metavar="URL", help="a postgresql:// knowledge base")
    parser.add_argument("--question", default="Why did Turkey choose the S-400?")
    parser.add_argument("--out", default=str(Path(__file__).parent / "screenshot.png"))
    args = parser.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from qa.errors import USER_ERRORS
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app, listen, loader_for
    from qa.settings import Settings, offline_defaults

    offline_defaults()
    live = LiveKnowledgeBase(loader_for(args.store or args.index or "", Settings.from_env()))
    try:
        live.load()
        sock = listen("127.0.0.1", 0)  # bound here, as `qa serve` does: no port race
    except USER_ERRORS as error:
        print(f"screenshot: error: {error}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(live), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            print("screenshot: error: the app server did not start", file=sys.stderr)
            return 1
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            box = page.locator("#qa-question textarea")
            box.fill(args.question)
            box.press("Enter")
            page.locator(".qa-reply").wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
