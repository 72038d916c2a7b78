"""The wiki widget: a loader script a wiki page includes, and the small chat page it frames.

    /widget.js         the loader: turns <div class="qa-widget"> placeholders into the chat
    /widget/           the chat page (also usable as a plain iframe, without the loader)
    /widget/hello      GET: ready? signed in? the reader's documents line and examples
    /widget/ask        POST {"question", "history", "page", "scope"}: the answer's HTML and a
                       feedback token; `page` (the wiki page the widget sits on, by URL or
                       title) is preferred, or the only source, as `scope` says (wikipage.py)
    /widget/feedback   POST {"token", "rating", "comment"}: a reader's verdict, kept in the store
    /gradio.js, /embed the Gradio web component and compact page (kept for existing embeds)

The page is plain HTML and JavaScript (no Gradio): it loads fast inside a wiki, sizes itself to
its content, follows the theme the wiki asks for and never covers the wiki with toasts. Its
Content-Security-Policy allows only its own scripts, styles and requests, a second lock behind
the escaping in render.py.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import Field

from qa.errors import USER_ERRORS
from qa.serve.examples import Examples
from qa.serve.feedback import FeedbackDesk, FeedbackIn, FeedbackRefused, answered
from qa.serve.guards import AskGate, RateLimiter, Refused
from qa.serve.live import LiveKnowledgeBase, NotReadyError
from qa.serve.readers import Reader, Readers, ask_async, visible
from qa.serve.render import CSS, answer_html, documents_html
from qa.serve.schema import AskRequest
from qa.serve.theme import widget_variables
from qa.serve.wikipage import MAX_PAGE_CHARS, WikiPage

log = logging.getLogger("qa")
STATIC = Path(__file__).parent / "static"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
FEEDBACK_PER_MINUTE = 30  # verdicts one reader may give a minute; more get 429
SIGN_IN = "sign in to the wiki to ask questions here"


class WidgetAskRequest(AskRequest):
    page: str | None = Field(
        default=None, max_length=MAX_PAGE_CHARS, description="The wiki page: a URL or a title."
    )
    scope: Literal["prefer", "only", "namespace"] = "prefer"


def _json(status: int, body: dict[str, object], **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or None)


def add_widget_routes(
    app: FastAPI,
    *,
    live: LiveKnowledgeBase,
    gate: AskGate,
    readers: Readers,
    examples: Examples,
    desk: FeedbackDesk,
) -> None:
    loader = (STATIC / "widget.js").read_text("utf-8")
    page = (
        (STATIC / "frame.html")
        .read_text("utf-8")
        .replace('maxlength="2000"', f'maxlength="{gate.max_question_chars}"')
    )
    script = (STATIC / "frame.js").read_text("utf-8")
    styles = widget_variables() + CSS + (STATIC / "frame.css").read_text("utf-8")
    feedback_rate = RateLimiter(FEEDBACK_PER_MINUTE)
    fresh = {"Cache-Control": "no-cache"}

    def reader_of(request: Request) -> Reader | None:
        return readers.of(request.headers, request.client.host if request.client else "")

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> Response:
        return Response(loader, media_type="text/javascript", headers=fresh)

    @app.get("/widget", include_in_schema=False)
    def widget_slash(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.url.path}/{query}", status_code=307)

    @app.get("/widget/", include_in_schema=False)
    def widget_page() -> Response:
        return Response(
            page, media_type="text/html", headers={**fresh, "Content-Security-Policy": PAGE_POLICY}
        )

    @app.get("/widget/frame.js", include_in_schema=False)
    def frame_js() -> Response:
        return Response(script, media_type="text/javascript", headers=fresh)

    @app.get("/widget/frame.css", include_in_schema=False)
    def frame_css() -> Response:
        return Response(styles, media_type="text/css", headers=fresh)

    @app.get("/widget/hello", include_in_schema=False)
    def hello(request: Request) -> JSONResponse:
        reader = reader_of(request)
        state: dict[str, object] = {
            "ready": False,
            "failed": bool(live.status().get("failed")),
            "sign_in": reader is None,
            "user": reader.user if reader else None,
            "documents": "",
            "examples": [],
            "max_question_chars": gate.max_question_chars,
        }
        if reader is None:
            return _json(200, state, **fresh)
        try:
            kb = live.current()
        except NotReadyError:
            return _json(200, state, **fresh)
        state["ready"] = True
        state["documents"] = documents_html(visible(kb.documents, reader))
        state["examples"] = list(examples.of(kb))
        return _json(200, state, **fresh)

    @app.post("/widget/ask", include_in_schema=False)
    async def widget_ask(body: WidgetAskRequest, request: Request) -> JSONResponse:
        reader = reader_of(request)
        if reader is None:
            return _json(401, {"error": SIGN_IN, "sign_in": True})
        history = [turn.model_dump() for turn in body.history]
        page = WikiPage(body.page, body.scope) if body.page and body.page.strip() else None
        try:
            result = await ask_async(live, gate, reader, body.question, history, page)
        except Refused as error:
            wait = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            return _json(error.status, {"error": error.message}, **wait)
        except NotReadyError as error:
            loading = not live.status().get("failed")
            return _json(503, {"error": str(error), "loading": loading}, **{"Retry-After": "2"})
        except USER_ERRORS as error:
            return _json(422, {"error": str(error)})
        return _json(
            200,
            {
                "question": result.question,
                "answer": result.text,
                "html": answer_html(result, link_target="_top"),
                "feedback": desk.token(answered(result, reader.user)),
            },
        )

    @app.post("/widget/feedback", include_in_schema=False)
    async def widget_feedback(body: FeedbackIn, request: Request) -> JSONResponse:
        reader = reader_of(request)
        if reader is None:
            return _json(401, {"error": SIGN_IN, "sign_in": True})
        wait = feedback_rate.retry_after(reader.client)
        if wait:
            return _json(429, {"error": f"too much feedback; try again in {wait} s"})
        try:
            record = desk.verdict(body, reader.user)
            kb = live.current()
            await anyio.to_thread.run_sync(kb.store.add_feedback, record)
        except FeedbackRefused as error:
            return _json(error.status, {"error": error.message})
        except NotReadyError as error:
            return _json(503, {"error": str(error)}, **{"Retry-After": "2"})
        except USER_ERRORS:
            log.exception("feedback could not be stored")  # the reason can name a server path
            return _json(503, {"error": "feedback cannot be kept right now; try again later"})
        return _json(200, {"recorded": True})


def web_component_script() -> str:
    """A module that loads the installed Gradio web-component bundle, by its hashed name."""
    import gradio

    frontend = Path(gradio.__file__).parent / "templates" / "frontend"
    match = re.search(r"assets/index-[\w-]+\.js", (frontend / "index.html").read_text("utf-8"))
    if not match or not (frontend / match.group(0)).is_file():
        raise RuntimeError(f"no Gradio web-component bundle found in {frontend}")
    # Relative to this script's own URL, so it works under any root path.
    return f'import "./{match.group(0)}";\n'


def add_embed_routes(app: FastAPI) -> None:
    """/gradio.js (a stable URL for the web component) and the /embed -> /embed/ redirect."""
    script = web_component_script()

    @app.get("/gradio.js", include_in_schema=False)
    def gradio_js() -> Response:
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/embed", include_in_schema=False)
    def embed_page(request: Request) -> Response:
        # The mount at / would swallow "/embed" before Starlette's own slash redirect.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.url.path}/{query}", status_code=307)
