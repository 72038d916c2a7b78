"""The load test's two ways of asking: REST, and the chat page as a browser drives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


class Refused(Exception):
    """A guard turned the request away (429, 503, a full queue): by design, counted apart."""


class Failed(Exception):
    """Anything else that is not a well-formed answer."""


async def ask_rest(client: httpx.AsyncClient, question: str, history: list[dict[str, str]]) -> Any:
    response = await client.post("/api/ask", json={"question": question, "history": history})
    if response.status_code in (429, 503):
        raise Refused(f"{response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise Failed(f"{response.status_code} {response.text[:200]}")
    return response.json()


@dataclass
class Page:
    """A reader's chat page: what it shows and the plain history it sends with a question."""

    session: str | None = None  # Gradio's session of the tab; None: Gradio makes one a call
    shown: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)


_EVENTS: dict[str, int] = {}  # server -> the index of its question box's event


async def ask_gradio(
    client: httpx.AsyncClient, question: str, history: list[Any], page: Page | None = None
) -> Any:
    """What the chat page does: the question box's event, posted to /gradio_api/run/predict
    with the page's state, the reply in the response (the question skips Gradio's queue).
    A new conversation (no `history`) starts from a cleared page; the answer comes back as
    REST's fields that `check_body` reads (its passages are in the reply's HTML)."""
    page = page or Page()
    if not history:
        page.shown, page.history = [], []
    base = str(client.base_url)
    if base not in _EVENTS:
        config = (await client.get("/config")).json()
        _EVENTS[base] = next(
            e["id"] for e in config["dependencies"] if e["targets"][0][1] == "submit"
        )
    body = {
        "data": [question, page.shown, page.history],
        "fn_index": _EVENTS[base],
        "session_hash": page.session,
    }
    response = await client.post("/gradio_api/run/predict", json=body)
    if response.status_code in (429, 503):
        raise Refused(f"{response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise Failed(f"{response.status_code} {response.text[:200]}")
    shown, page_history, _, status = response.json()["data"]
    if status:
        busy = "too many" in status or "busy" in status.lower()
        raise (Refused if busy else Failed)(status[:200])
    page.shown, page.history = shown, page_history
    content = shown[-1]["content"] if shown else ""  # a list of parts, as Gradio sends it
    reply = "".join(p.get("text", "") for p in content) if isinstance(content, list) else content
    passages = ["passage"] * reply.count('class="qa-passage')
    asked = page_history[-2]["content"] if len(page_history) >= 2 else None
    return {"question": asked, "answer": page_history[-1]["content"], "passages": passages}


def check_body(body: Any, question: str) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("answer"), str) or not body["answer"]:
        raise Failed(f"not an answer: {str(body)[:200]}")
    if not isinstance(body.get("passages"), list) or body.get("question") != question:
        raise Failed(f"malformed answer: {str(body)[:200]}")
