"""The web app: chat pages (Gradio), the wiki embed, a REST API and health/admin routes.

    /             the full chat page            /api/ask       POST {"question", "history"}
    /embed        the compact page for a wiki   /healthz       is the knowledge base loaded?
    /gradio.js    the web-component script      /admin/reload  reopen the index from disk
    /docs         OpenAPI documentation

Every route calls the same `KnowledgeBase.ask()` as the CLI.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from qa.errors import USER_ERRORS
from qa.serve.edge import Edge, default_hosts
from qa.serve.feedback import check_secret
from qa.serve.guards import AskGate, BodyLimit, OriginPolicy, Refused
from qa.serve.live import LiveKnowledgeBase, Loader, NotReadyError, precheck
from qa.serve.readers import ask_async
from qa.serve.schema import AnswerOut, AskRequest
from qa.serve.webconfig import WebSettings, default_calls
from qa.settings import Settings, offline_defaults

log = logging.getLogger("qa")


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(
    live: LiveKnowledgeBase, web: WebSettings | None = None, settings: Settings | None = None
) -> FastAPI:
    """The whole app around a (possibly still loading) knowledge base."""
    import gradio as gr
    from fastapi_offline import FastAPIOffline

    from qa.serve.examples import Examples
    from qa.serve.feedback import FeedbackDesk
    from qa.serve.gradio_setup import queue_for_many_readers, unknown_events_not_found
    from qa.serve.readers import Readers
    from qa.serve.render import CSS
    from qa.serve.theme import PAGE_CSS, gradio_theme, page_variables
    from qa.serve.ui import REVEAL_JS, build_blocks
    from qa.serve.widget import add_embed_routes, add_widget_routes

    web = web or WebSettings.from_env()
    settings = settings or Settings.from_env()
    gate = AskGate(web.rate_limit, web.max_inflight, settings.max_question_chars)
    readers = Readers(web.auth_header, web.groups_header, web.trusted_proxies)
    examples = Examples(web.examples)

    # The root path goes to uvicorn only (see serve()), which puts it in every request's
    # scope; FastAPI(root_path=) or Gradio's own root_path override the scope of mounted apps
    # and break /embed behind a proxy. /docs and /redoc load Swagger UI and ReDoc from the
    # fastapi-offline package, not from a CDN.
    app = FastAPIOffline(title="qa", summary="Evidence-first answers from your documents.")

    def identity(request: Request) -> str | None:
        """The signed-in user the proxy vouches for (Gradio's auth_dependency)."""
        reader = readers.of(request.headers, request.client.host if request.client else "")
        return reader.user if reader else None

    desk = FeedbackDesk(web.feedback_secret)
    add_widget_routes(app, live=live, gate=gate, readers=readers, examples=examples, desk=desk)
    add_embed_routes(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e['msg']}"
            for e in error.errors()
        ]
        detail = [
            {"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")}
            for e in error.errors()
        ]
        return JSONResponse({"error": "; ".join(problems), "detail": detail}, status_code=422)

    @app.post(
        "/api/ask",
        response_model=None,
        responses={
            200: {"model": AnswerOut},
            401: {"description": "no identity header (when QA_AUTH_HEADER is set)"},
            422: {"description": "the question or history is not valid"},
            429: {"description": "too many questions from this client; see Retry-After"},
            503: {"description": "busy or still loading; see Retry-After"},
        },
        summary="Answer a question from the documents, with the passages it rests on",
    )
    async def ask(body: AskRequest, request: Request) -> Response:
        reader = readers.of(request.headers, request.client.host if request.client else "")
        if reader is None:
            return _error(401, f"sign in first (no {web.auth_header} header)")
        history = [turn.model_dump() for turn in body.history]
        try:
            result = await ask_async(live, gate, reader, body.question, history)
        except Refused as error:
            wait = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            return _error(error.status, error.message, **wait)
        except NotReadyError as error:
            return _error(503, str(error), **{"Retry-After": "5"})
        except USER_ERRORS as error:
            return _error(422, str(error))
        return JSONResponse(result.to_dict())

    @app.get("/healthz", summary="Whether the knowledge base is loaded, and its size")
    async def healthz() -> JSONResponse:  # async: never queued behind threads doing work
        status = live.status()
        state = "ok" if status["loaded"] else ("failed" if status["failed"] else "loading")
        return JSONResponse({"status": state, **status}, status_code=200 if state == "ok" else 503)

    @app.get("/api/ask", include_in_schema=False)
    def ask_get() -> JSONResponse:
        return _error(405, 'use POST with a JSON body: {"question": "..."}', Allow="POST")

    def admin(request: Request) -> None:
        if web.admin_token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), web.admin_token.encode()):
                raise _Refused(401, "a valid 'Authorization: Bearer <QA_ADMIN_TOKEN>' is needed")
        elif (
            not _loopback(request.client.host if request.client else "")
            or request.headers.get("x-qa-forwarded")  # a proxy on this machine forwarded it
            or _cross_site(request)
        ):
            raise _Refused(403, "reload is only allowed from this machine (or set QA_ADMIN_TOKEN)")

    @app.exception_handler(_Refused)
    async def refused(request: Request, error: _Refused) -> JSONResponse:
        return _error(error.status, error.message)

    @app.post("/admin/reload", dependencies=[Depends(admin)], summary="Reopen the index from disk")
    async def reload() -> JSONResponse:
        if live.reloading:  # concurrent reloads coalesce: the running one reads the newest index
            return JSONResponse({"reloaded": False, "coalesced": True}, status_code=202)
        try:
            await anyio.to_thread.run_sync(live.load)
        except Exception as error:
            log.exception("reload failed")
            # The error's text can hold server paths: it goes to the log, not to the client.
            return _error(
                500,
                f"reload failed ({type(error).__name__}); still answering from the previous "
                "index; the server log says why",
            )
        return JSONResponse({"reloaded": True, **live.status()})

    common: dict[str, Any] = {
        "auth_dependency": identity if web.auth_header else None,
        "show_error": False,  # gr.Error messages still show; tracebacks never do
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "run_history": False,  # it keeps runs in browser storage, blocked in cross-site iframes
        "css": page_variables() + PAGE_CSS + CSS,
        "theme": gradio_theme(),
        "js": REVEAL_JS,
    }
    for path, compact in (("/embed", True), ("/", False)):
        blocks = build_blocks(
            live,
            gate,
            readers=readers,
            examples=examples,
            compact=compact,
            api=not compact,
            desk=desk,
        )
        queue_for_many_readers(blocks, web.concurrency, web.queue_size)
        links = [] if compact else ["api"]
        gr.mount_gradio_app(app, blocks, path=path, footer_links=links, **common)
        unknown_events_not_found(app.routes[-1].app)  # type: ignore[attr-defined]

    # Outermost last: the origin policy sees every response, the 413s and CORS preflights too.
    app.add_middleware(BodyLimit, max_bytes=web.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,  # always present: Gradio then leaves CORS to it
        allow_origins=list(web.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        max_age=600,
    )
    app.add_middleware(OriginPolicy, allowed_origins=web.allowed_origins)
    app.add_middleware(
        Edge,
        allowed_hosts=frozenset(web.allowed_hosts) or default_hosts(web.host),
        trusted_proxies=web.trusted_proxies,
        api_mounts=("",),
        page_mounts=("", "/embed"),
        loading=lambda: not live.ready,
    )
    return app


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _cross_site(request: Request) -> bool:
    """A browser request another site made (a form or fetch from a web page), e.g. CSRF."""
    if request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    from urllib.parse import urlsplit

    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loader_for(index: str, settings: Settings, web: WebSettings | None = None) -> Loader:
    """Opens `index` (or the default knowledge base when empty), reusing a loaded embedder.

    The knowledge base a server answers from embeds concurrent questions together
    (`BatchingEmbedder`) on the traced model (qa/traced.py); reloads keep the same one.
    """
    from qa.embedding import SentenceTransformerEmbedder
    from qa.knowledge import KnowledgeBase
    from qa.serve.batching import BatchingEmbedder

    web = web or WebSettings()

    def load(embedder: Any) -> KnowledgeBase:
        kb = KnowledgeBase.load(index or None, settings=settings, embedder=embedder)
        if not isinstance(kb.embedder, BatchingEmbedder):
            if isinstance(kb.embedder, SentenceTransformerEmbedder):
                kb.embedder.trace()
            kb.embedder = BatchingEmbedder(
                kb.embedder,
                max_batch=web.batch_max,
                window_ms=web.batch_window_ms,
                calls=web.batch_calls or default_calls(),
            )
        return kb

    return load


def reload_on_sighup(live: LiveKnowledgeBase) -> None:
    """`kill -HUP <pid>` reloads the index; the work runs off the signal handler."""

    def reload() -> None:
        try:
            kb = live.load()
            print(
                f"qa: reloaded the knowledge base ({len(kb.documents)} documents)", file=sys.stderr
            )
        except Exception:
            log.exception("reload on SIGHUP failed; still answering from the previous index")

    signal.signal(
        signal.SIGHUP,
        lambda signum, frame: threading.Thread(
            target=reload, name="qa-reload", daemon=True
        ).start(),
    )


def serve(host: str | None = None, port: int | None = None, index: str | None = None) -> int:
    """Run the app with uvicorn until interrupted (`qa serve`, `python app.py`); exit code.

    A knowledge base that cannot be opened, or a port that is taken, is one line on stderr and
    exit code 2, before anything claims to be serving.
    """
    import uvicorn

    offline_defaults()
    web = WebSettings.from_env().with_overrides(host=host, port=port, index=index)
    settings = Settings.from_env()
    try:
        check_secret(web.feedback_secret)
        precheck(web.index, settings)
        sock = listen(web.host, web.port)
    except USER_ERRORS as error:
        print(f"qa: error: {error}", file=sys.stderr)
        return 2
    private_gradio_folder()
    live = LiveKnowledgeBase(loader_for(web.index, settings, web))
    app = create_app(live, web, settings)
    if web.trusted_proxies and not web.feedback_secret:
        print(
            "qa: warning: behind a proxy without QA_FEEDBACK_SECRET: feedback tokens are signed "
            "with a key of this process only; give every replica the same QA_FEEDBACK_SECRET",
            file=sys.stderr,
        )
    if not web.allowed_hosts and default_hosts(web.host) is None:
        print(
            f"qa: warning: listening on {web.host} answers any Host header; set QA_ALLOWED_HOSTS "
            "to the names readers use (it stops DNS rebinding and forged page URLs)",
            file=sys.stderr,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            root_path=web.root_path,
            log_level="warning",
            timeout_graceful_shutdown=5,
            # Longer than a proxy keeps idle connections to us (nginx: 60 s), so that we never
            # close one just as the proxy reuses it (it would count the replica as failed).
            timeout_keep_alive=75,
            proxy_headers=False,  # the Edge middleware decides whom to believe (trusted_proxies)
        )
    )
    failed: list[int] = []

    def first_load() -> None:
        try:
            live.load()
        except USER_ERRORS as error:
            print(f"qa: error: {error}", file=sys.stderr)
            failed.append(2)
            server.should_exit = True
        except Exception:
            log.exception("loading the knowledge base failed")
            failed.append(1)
            server.should_exit = True

    threading.Thread(target=first_load, name="qa-load", daemon=True).start()
    reload_on_sighup(live)
    print(
        f"qa: serving on http://{web.host}:{web.port}{web.root_path}/ "
        "(the knowledge base loads in the background; see /healthz)",
        file=sys.stderr,
    )
    server.run(sockets=[sock])
    return failed[0] if failed else 0


def private_gradio_folder() -> None:
    """Gradio's temporary files go to a folder of this process only, removed at exit.

    Gradio's default (gradio/ in the system temp folder) is shared by every Gradio app on the
    machine, so what one instance stored another served.
    """
    import atexit
    import shutil
    import tempfile

    if "GRADIO_TEMP_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="qa-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = folder
        atexit.register(shutil.rmtree, folder, True)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a taken port is reported before serving."""
    from qa.settings import SettingsError

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
        # TCP, and with Nagle on, a reused connection waited 40 ms for each response's body.
        sock = socket.socket(info[0], socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(2048)
    except OSError as error:
        reason = error.strerror or str(error)
        raise SettingsError(
            f"cannot listen on {host}:{port} ({reason}); choose another port with --port "
            "(or QA_PORT)"
        ) from None
    sock.set_inheritable(True)
    return sock
