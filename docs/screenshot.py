"""Take docs/screenshot.png: the real app in headless Chromium, answering one question.

    python docs/screenshot.py [--index DIR] [--question "..."] [--out docs/screenshot.png]

Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    parser.add_argument("--question", default="Why did Turkey choose the S-400?")
    parser.add_argument("--out", default=str(Path(__file__).parent / "screenshot.png"))
    args = parser.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from qa.live import LiveKnowledgeBase
    from qa.settings import Settings, offline_defaults
    from qa.web import create_app, loader_for

    offline_defaults()
    live = LiveKnowledgeBase(loader_for(args.index or "", Settings.from_env()))
    live.load()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(live), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
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
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
