"""How a server sets up its Gradio apps: the queue for many readers, and clean refusals of
unqueued calls that name no event."""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

QUEUE_POLL_S = 0.01  # how often an idle Gradio queue looks for work (Gradio's own: 0.001)


def queue_for_many_readers(blocks: gr.Blocks, concurrency: int, size: int | None) -> None:
    """The chat's Gradio queue, set for a server of many readers (measured at 50)."""
    # Queue positions go to waiting readers every 2 s, not to all of them each time a job
    # ends (Gradio's "auto"): at 50 chat readers that was 12% more server CPU an answer.
    # api_open=False: a queued event cannot be called directly (/run/predict with its index).
    blocks.queue(
        default_concurrency_limit=concurrency,
        max_size=size,
        status_update_rate=2.0,
        api_open=False,
    )
    # Every Gradio API call opens a session and Gradio keeps 10,000 of them (~30 KB each,
    # +300 MB measured under load); a conversation lives far fewer turns than this cap.
    blocks.state_session_capacity = 1000
    # The queue looks for work every 1 ms while it has none it can start (empty, or every
    # slot busy): 1,000 wake-ups a second each (the page and /embed have one), 6.6% of a core
    # for a server doing nothing. Every 10 ms: 3.3%; a freed slot may wait up to 10 ms for its
    # next job, and the chat's throughput and p95 at 50 readers did not move (two alternated
    # pairs). (Gradio has no public setting for it.)
    if hasattr(blocks._queue, "sleep_when_free"):
        blocks._queue.sleep_when_free = QUEUE_POLL_S


_RUN_PATH = re.compile(r"/run/[^/]+/?$")


def unknown_events_not_found(mounted: Any) -> None:
    """On a mounted Gradio app: /run/<name> naming no event (no index, an index past the last)
    answers 404, not Gradio's 500 with a traceback in the server's log."""
    from gradio.route_utils import FnIndexInferError
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def unknown(request: Request, error: Exception) -> JSONResponse:
        if not _RUN_PATH.search(request.url.path):
            raise error  # any other failure stays a 500 with its traceback
        return JSONResponse({"error": "not found"}, status_code=404)

    for kind in (FnIndexInferError, KeyError):
        mounted.add_exception_handler(kind, unknown)
