"""A live MediaWiki, read through its action API (api.php) with httpx.

What a sync needs and nothing more: the site's identity and URLs, an optional bot-password
login, every page of some namespaces with its latest wikitext, pages by id or title, and the
recent changes since a time. Every response is bounded in size and must be the API's JSON;
redirects are followed only within the wiki's own origin, so a hostile or misconfigured wiki
cannot send the sync (or its credentials) elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from qa.indexing.sources.mediawiki import Site, SourceError, checked_url

log = logging.getLogger("qa")

# Pages whose content one request asks for; MediaWiki allows 50 (500 for bots), and continues a
# response over $wgAPIMaxResultSize (8 MiB), which the loop below follows.
PAGES_PER_REQUEST = 50
# A response larger than this is refused: 50 pages at MediaWiki's 2 MiB page limit fit in it.
MAX_RESPONSE_BYTES = 128 * 2**20
MAX_REDIRECTS = 5
USER_AGENT = "qa-wiki-sync/0.1 (offline question answering; https://www.mediawiki.org/wiki/API)"


class WikiClient:
    """One wiki's API, one session (cookies) per client."""

    def __init__(self, api_url: str, *, timeout: float = 60.0) -> None:
        import httpx

        self.api_url = checked_url(api_url, "the API URL")
        self._origin = urlsplit(self.api_url)[:2]
        self._http = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WikiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- requests ------------------------------------------------------------------------
    def call(self, params: dict[str, Any], *, post: bool = False) -> dict[str, Any]:
        """One API request; SourceError for a transport, HTTP, JSON or API error."""
        import httpx

        params = {**params, "format": "json", "formatversion": "2", "errorformat": "plaintext"}
        url = self.api_url
        try:
            for _ in range(MAX_REDIRECTS + 1):
                request = self._http.build_request(
                    "POST" if post else "GET",
                    url,
                    data=params if post else None,
                    params=None if post else params,
                )
                response = self._http.send(request, stream=True)
                try:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if urlsplit(target)[:2] != self._origin:
                            raise SourceError(
                                f"{self.api_url} redirects to another site ({target[:200]}); "
                                "give the final API URL"
                            )
                        url = target
                        continue
                    body = self._read(response)
                finally:
                    response.close()
                break
            else:
                raise SourceError(f"{self.api_url}: too many redirects")
        except httpx.HTTPError as error:
            raise SourceError(f"cannot reach {self.api_url} ({error})") from None
        if response.status_code != 200:
            raise SourceError(f"{self.api_url} answered HTTP {response.status_code}")
        try:
            data = response.json() if body is None else _json(body)
        except ValueError:
            raise SourceError(
                f"{self.api_url} did not answer with the API's JSON (is it api.php?)"
            ) from None
        if not isinstance(data, dict):
            raise SourceError(f"{self.api_url} answered JSON that is not an object")
        errors = data.get("errors") or ([data["error"]] if "error" in data else [])
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {"text": str(errors[0])}
            code = first.get("code", "error")
            text = first.get("text") or first.get("info") or ""
            hint = " (log in: --user and QA_WIKI_PASSWORD)" if "read" in str(code) else ""
            raise SourceError(f"the wiki refused the request: {code}: {text}{hint}"[:500])
        return data

    def _read(self, response: Any) -> bytes:
        size = int(response.headers.get("content-length") or 0)
        if size > MAX_RESPONSE_BYTES:
            raise SourceError(f"{self.api_url} sent a response over {MAX_RESPONSE_BYTES} bytes")
        parts, total = [], 0
        for part in response.iter_bytes():
            total += len(part)
            if total > MAX_RESPONSE_BYTES:
                raise SourceError(f"{self.api_url} sent a response over {MAX_RESPONSE_BYTES} bytes")
            parts.append(part)
        return b"".join(parts)

    def query(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every response of a query, following its `continue` markers."""
        params = {"action": "query", **params}
        carry: dict[str, Any] = {}
        for _ in range(1_000_000):
            data = self.call({**params, **carry})
            yield data
            more = data.get("continue")
            if not isinstance(more, dict):
                return
            carry = {k: v for k, v in more.items() if isinstance(v, str | int)}

    # ----- what a sync reads ---------------------------------------------------------------
    def login(self, user: str, password: str) -> None:
        """Log in with a bot password (Special:BotPasswords): user "Name@bot"."""
        token = self.call({"action": "query", "meta": "tokens", "type": "login"})
        login_token = token.get("query", {}).get("tokens", {}).get("logintoken")
        if not login_token:
            raise SourceError(f"{self.api_url} gave no login token")
        result = self.call(
            {"action": "login", "lgname": user, "lgpassword": password, "lgtoken": login_token},
            post=True,
        ).get("login", {})
        if result.get("result") != "Success":
            reason = result.get("reason") or result.get("result") or "refused"
            if isinstance(reason, dict):
                reason = reason.get("text") or reason
            raise SourceError(f"cannot log in to the wiki as {user!r}: {reason}"[:500])

    def site(self, base_url: str | None = None) -> tuple[Site, str]:
        """The wiki (id, page URLs, namespaces) and the server's current time."""
        data = self.call(
            {
                "action": "query",
                "meta": "siteinfo",
                "siprop": "general|namespaces",
                "curtimestamp": "1",
            }
        )
        general = data.get("query", {}).get("general", {})
        spaces = data.get("query", {}).get("namespaces", {})
        wiki_id = general.get("wikiid")
        if not isinstance(wiki_id, str) or not isinstance(spaces, dict):
            raise SourceError(f"{self.api_url} gave no site information (is it api.php?)")
        names = {int(v["id"]): str(v.get("name", "")) for v in spaces.values() if "id" in v}
        article = base_url and checked_url(base_url, "--base-url")
        if not article:
            article = self._article_url(general)
        return Site(wiki_id=wiki_id, article_url=article, namespaces=names), str(
            data.get("curtimestamp", "")
        )

    def _article_url(self, general: dict[str, Any]) -> str | None:
        server, path = str(general.get("server", "")), str(general.get("articlepath", ""))
        if server.startswith("//"):  # protocol-relative: the API's own scheme
            server = f"{urlsplit(self.api_url).scheme}:{server}"
        if not path.endswith("$1"):
            log.warning("the wiki's article path %r does not end in $1: pages get no URL", path)
            return None
        try:
            return checked_url(server + path[:-2], "the wiki's page URLs")
        except SourceError as error:
            log.warning("%s: pages get no URL (give --base-url)", error)
            return None

    def all_pages(self, namespace: int) -> Iterator[dict[str, Any]]:
        """Every non-redirect page of a namespace, with its latest revision's content."""
        params = {
            "generator": "allpages",
            "gapnamespace": str(namespace),
            "gapfilterredir": "nonredirects",
            "gaplimit": str(PAGES_PER_REQUEST),
            **_CONTENT,
        }
        for data in self.query(params):
            yield from _with_content(data)

    def pages(self, *, ids: Iterable[int] = (), titles: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Pages by id and by title, as they are now (a gone one has "missing": true)."""
        found: list[dict[str, Any]] = []
        for key, values in (("pageids", sorted(set(ids))), ("titles", sorted(set(titles)))):
            for i in range(0, len(values), PAGES_PER_REQUEST):
                batch = "|".join(str(v) for v in values[i : i + PAGES_PER_REQUEST])
                merged: dict[Any, dict[str, Any]] = {}
                for data in self.query({key: batch, **_CONTENT}):
                    for page in data.get("query", {}).get("pages", []) or []:
                        known = merged.setdefault(page.get("pageid") or page.get("title"), page)
                        if "revisions" in page:
                            known["revisions"] = page["revisions"]
                found.extend(merged.values())
        return found

    def recent_changes(self, since: str) -> Iterator[dict[str, Any]]:
        """Edits, new pages and log entries (moves, deletions, ...) since `since`, oldest first."""
        params = {
            "list": "recentchanges",
            "rcstart": since,
            "rcdir": "newer",
            "rcprop": "title|ids|timestamp|loginfo",
            "rctype": "edit|new|log",
            "rclimit": "500",
        }
        for data in self.query(params):
            yield from data.get("query", {}).get("recentchanges", []) or []


_CONTENT = {"prop": "info|revisions", "rvprop": "ids|content|contentmodel", "rvslots": "main"}


def _with_content(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for page in data.get("query", {}).get("pages", []) or []:
        if page.get("revisions"):
            yield page


def _json(body: bytes) -> Any:
    import json

    return json.loads(body.decode("utf-8"))


def page_content(page: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """(revision id, content model, wikitext) of a page from the API; Nones when hidden."""
    revisions = page.get("revisions") or []
    if not revisions:
        return None, None, None
    latest = revisions[-1]
    main = (latest.get("slots") or {}).get("main") or {}
    content = main.get("content")
    if main.get("texthidden") or not isinstance(content, str):
        return latest.get("revid"), main.get("contentmodel"), None
    return latest.get("revid"), main.get("contentmodel"), content
