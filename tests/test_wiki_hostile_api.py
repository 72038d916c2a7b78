"""A hostile or broken wiki API cannot send the sync elsewhere, flood it, or plant bad links."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qa.indexing.sources import mediawiki_live
from qa.indexing.sources.mediawiki import SourceError
from qa.indexing.sources.mediawiki_live import WikiClient

SITE = {
    "query": {
        "general": {"wikiid": "evil", "server": "javascript:alert(1)//", "articlepath": "/$1"},
        "namespaces": {"0": {"id": 0, "name": ""}},
    },
    "curtimestamp": "2026-01-01T00:00:00Z",
}


class Hostile(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/elsewhere/api.php":
            self.send_response(302)
            self.send_header("Location", "http://attacker.invalid/api.php")
            self.end_headers()
        elif path == "/same/api.php":
            self.send_response(301)
            self.send_header("Location", "/site/api.php")
            self.end_headers()
        elif path == "/huge/api.php":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b" " * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at its limit, as it should
        elif path == "/html/api.php":
            self._send(b"<html>not the API</html>")
        elif path == "/list/api.php":
            self._send(b"[1, 2, 3]")
        elif path == "/site/api.php":
            self._send(json.dumps(SITE).encode())
        elif path == "/badid/api.php":
            bad = json.loads(json.dumps(SITE))
            bad["query"]["general"]["wikiid"] = "../../etc/passwd"
            self._send(json.dumps(bad).encode())
        else:
            self.send_response(500)
            self.end_headers()

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/elsewhere/api.php", "redirects to another site"),
        ("/huge/api.php", "over 1048576 bytes"),
        ("/html/api.php", "API's JSON"),
        ("/list/api.php", "not an object"),
        ("/broken/api.php", "HTTP 500"),
        ("/badid/api.php", "not a database name"),
    ],
)
def test_refused_with_a_message(server, path, message, monkeypatch):
    monkeypatch.setattr(mediawiki_live, "MAX_RESPONSE_BYTES", 2**20)
    with WikiClient(server + path) as client, pytest.raises(SourceError, match=message):
        client.site()


def test_a_same_site_redirect_is_followed_and_bad_page_urls_are_dropped(server):
    with WikiClient(server + "/same/api.php") as client:
        site, now = client.site()
    assert site.wiki_id == "evil" and now.startswith("2026")
    assert site.article_url is None and site.page_url("X") is None  # never javascript:


@pytest.mark.parametrize(
    "url",
    ["ftp://wiki/api.php", "javascript:alert(1)", "http://user:pw@wiki/api.php", "api.php", ""],
)
def test_only_plain_http_api_urls(url):
    with pytest.raises(SourceError):
        WikiClient(url)


def test_unreachable(server):
    client = WikiClient("http://127.0.0.1:9/api.php", timeout=2)
    with client, pytest.raises(SourceError, match="cannot reach"):
        client.site()
