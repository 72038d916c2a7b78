"""The chat pages (Gradio): the full app at / and the compact one at /embed.

A `gr.Blocks` with a `gr.Chatbot`, not `gr.ChatInterface`: in Gradio 6.31 the latter reads
localStorage without a guard and never finishes loading inside a cross-site iframe. Refusals and
"still loading" are shown on the page in words (never a toast), the question stays in the box,
and a question asked while the knowledge base loads waits for it.

The conversation lives in the reader's page, not in the server: the chat shown and a hidden
history (each turn's plain text, and a signed feedback token per answer) are sent with every
question and come back with the new turn. So any replica behind a load balancer answers the
next question, with its follow-ups, when the one that answered the last has died; and a like
is recorded from the signed token (QA_FEEDBACK_SECRET shared by the replicas), never from what
the page claims was answered. Both are bounded in bytes: the oldest turns go first.

A question is one request (`queue=False`: the page posts it to /gradio_api/run/predict and the
reply comes in the response), guarded by the same gate as REST; Gradio's queue keeps the rest.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import gradio as gr

from qa.errors import USER_ERRORS
from qa.serve.examples import Examples
from qa.serve.feedback import (
    MAX_TOKEN_CHARS,
    FeedbackDesk,
    FeedbackIn,
    FeedbackRefused,
    answered,
)
from qa.serve.guards import AskGate, Refused
from qa.serve.live import LiveKnowledgeBase, NotReadyError
from qa.serve.readers import Reader, Readers, ask_async, visible
from qa.serve.render import answer_html, documents_html, inert
from qa.types import Feedback

TITLE = "Ask the documents"
# Earlier turns kept per conversation (user + assistant messages); older ones are dropped.
MAX_TURNS = 40
# What the page sends back with each question, in UTF-8 bytes of JSON: the chat shown and the
# hidden history. With a question of QA_MAX_QUESTION_CHARS both fit the default request body
# limit (QA_MAX_BODY_BYTES, 64 KB); beyond them the oldest turns are dropped.
SHOWN_BUDGET = 36_000
HISTORY_BUDGET = 16_000
MAX_CONTENT_CHARS = 4_000  # one turn's plain text kept for follow-ups
MAX_EXAMPLES = 4
WAIT_FOR_LOAD_S = 30.0  # a question asked while the knowledge base loads waits this long
# The chat's feedback menu: thumbs, plus two reasons kept as the verdict's comment.
FEEDBACK = ("Like", "Dislike", "Wrong passages", "Incomplete answer")
THANKS = "Thanks: your verdict is kept for the people who look after these documents."
Turns = list[dict[str, Any]]


def message_text(message: Any) -> str:
    """A chat message as plain text: Gradio may hand over a string or a list of parts."""
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        return message_text(message.get("text", message.get("content", "")))
    if isinstance(message, list | tuple):
        return " ".join(message_text(part) for part in message)
    return ""


def status_html(text: str) -> str:
    return f'<p class="qa-status" role="status">{inert(text)}</p>' if text else ""


async def wait_ready(live: LiveKnowledgeBase, seconds: float = WAIT_FOR_LOAD_S) -> None:
    """Return once the knowledge base is loaded; NotReadyError if it failed or took too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            live.current()
            return
        except NotReadyError:
            if live.status().get("failed") or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def respond(
    live: LiveKnowledgeBase,
    gate: AskGate,
    desk: FeedbackDesk,
    reader: Reader | None,
    message: Any,
    shown: Any,
    history: Any,
) -> tuple[Turns, Turns, str, str]:
    """One chat turn: (messages to show, new history, text left in the box, status line).

    `shown` (the chat's messages) and `history` (each turn's plain text; a feedback token per
    answer) come from the page: whatever replica answers, the conversation goes on.
    """
    question = message_text(message)
    shown, history = clean_shown(shown), clean_history(history)
    if not question.strip():
        return shown, history, "", ""
    try:
        if reader is None:
            raise Refused(401, "sign in first")
        asked = [{"role": t["role"], "content": t["content"]} for t in history]
        ready = functools.partial(wait_ready, live)
        result = await ask_async(live, gate, reader, question, asked, ready=ready)
    except Refused as error:
        return shown, history, question, status_html(error.message)
    except NotReadyError:
        note = "The assistant is unavailable right now; your question is kept: ask again soon."
        return shown, history, question, status_html(note)
    except USER_ERRORS as error:
        return shown, history, question, status_html(str(error))
    token = desk.token(answered(result, reader.user))
    history += [
        {"role": "user", "content": result.question[:MAX_CONTENT_CHARS]},
        {"role": "assistant", "content": result.text[:MAX_CONTENT_CHARS], "token": token},
    ]
    shown += [
        {"role": "user", "content": inert(result.question)},
        {"role": "assistant", "content": answer_html(result)},
    ]
    return _within(shown, SHOWN_BUDGET), _within(history, HISTORY_BUDGET), "", ""


def _size(turns: Turns) -> int:
    return len(json.dumps(turns, ensure_ascii=False).encode())


def _within(turns: Turns, budget: int) -> Turns:
    """The newest turns (questions with their answers) within MAX_TURNS and `budget` bytes."""
    turns = turns[-MAX_TURNS:]
    while turns and _size(turns) > budget:
        turns = turns[2:] if len(turns) > 1 else []
    return turns


def clean_history(history: Any) -> Turns:
    """The page's hidden history as the server needs it; anything malformed is dropped."""
    turns: Turns = []
    for turn in history if isinstance(history, list) else []:
        if not isinstance(turn, dict) or turn.get("role") not in ("user", "assistant"):
            continue
        content = turn.get("content")
        if not isinstance(content, str):
            continue
        kept: dict[str, Any] = {"role": turn["role"], "content": content[:MAX_CONTENT_CHARS]}
        if turn["role"] == "assistant" and isinstance(turn.get("token"), str):
            kept["token"] = turn["token"][:MAX_TOKEN_CHARS]
        turns.append(kept)
    return _within(turns, HISTORY_BUDGET)


def clean_shown(shown: Any) -> Turns:
    """The chat's messages as the page sent them (its own, only ever shown to it again)."""
    turns = [
        {"role": t["role"], "content": message_text(t.get("content"))}
        for t in (shown if isinstance(shown, list) else [])
        if isinstance(t, dict) and t.get("role") in ("user", "assistant")
    ]
    return _within(turns, SHOWN_BUDGET)


def verdict(
    desk: FeedbackDesk, shown: Any, history: Any, index: Any, liked: Any, user: str | None
) -> Feedback | None:
    """The feedback a like/dislike on message `index` of the chat gives, or None (not an
    answer, undone, or its token forged, expired, another reader's or used up).

    The chat and the history end with the same turn, so message `index` of the chat is the
    turn as far from the history's end. What is recorded comes from the signed token only."""
    shown, history = (shown if isinstance(shown, list) else []), clean_history(history)
    if not isinstance(index, int) or isinstance(index, bool) or liked is None:
        return None
    position = len(history) - (len(shown) - index)
    if not 0 <= index < len(shown) or not 0 <= position < len(history):
        return None
    token = history[position].get("token")
    if history[position]["role"] != "assistant" or not token:
        return None
    rating = 1 if liked is True or liked == "Like" else -1
    comment = liked if isinstance(liked, str) and liked not in ("Like", "Dislike") else ""
    try:
        return desk.verdict(FeedbackIn(token=token, rating=rating, comment=comment), user)
    except (FeedbackRefused, ValueError):
        return None


async def ask_api(
    live: LiveKnowledgeBase,
    gate: AskGate,
    reader: Reader | None,
    question: Any,
    history: Turns | None = None,
) -> dict[str, Any]:
    """The answer as JSON (the Gradio API's "ask" endpoint), errors as gr.Error (the reader's
    mistakes and refusals, never a traceback in the server's log)."""
    try:
        if reader is None:
            raise Refused(401, "sign in first")
        text = question if isinstance(question, str) else ""
        return (await ask_async(live, gate, reader, text, history)).to_dict()
    except Refused as error:
        raise gr.Error(error.message, print_exception=False) from None
    except NotReadyError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except USER_ERRORS as error:
        raise gr.Error(str(error), print_exception=False) from None


def page_state(live: LiveKnowledgeBase, examples: Examples, reader: Reader | None) -> list[Any]:
    """The documents line, the example buttons and whether to keep polling (still loading)."""
    try:
        kb = live.current()
    except NotReadyError as error:
        hidden = [gr.update(visible=False)] * MAX_EXAMPLES
        return [f'<p class="qa-docs">{inert(str(error))}</p>', *hidden, gr.Timer(active=True)]
    docs = visible(kb.documents, reader) if reader else []
    chosen = list(examples.of(kb))[:MAX_EXAMPLES]
    buttons = [
        gr.update(value=chosen[n], visible=True) if n < len(chosen) else gr.update(visible=False)
        for n in range(MAX_EXAMPLES)
    ]
    return [documents_html(docs), *buttons, gr.Timer(active=False)]


def build_blocks(
    live: LiveKnowledgeBase,
    gate: AskGate,
    *,
    readers: Readers | None = None,
    examples: Examples | None = None,
    compact: bool = False,
    api: bool = True,
    desk: FeedbackDesk | None = None,
) -> gr.Blocks:
    """The chat page; `compact` is the embed: no big header, a shorter chat.

    Handlers are plain functions (not partials) so that Gradio hands them the request, whose
    client and reader the edge and the proxy named: the chat and the API go through the same
    gate and the same access groups as REST.
    """
    readers = readers or Readers()
    examples = examples or Examples()
    desk = desk or FeedbackDesk()

    def reader_of(request: gr.Request | None) -> Reader | None:
        if request is None:
            return None
        peer = request.client.host if request.client else ""
        return readers.of(request.headers, peer)

    async def submit(
        message: Any, shown: Any, history: Any, request: gr.Request
    ) -> tuple[Any, ...]:
        return await respond(live, gate, desk, reader_of(request), message, shown, history)

    def refresh(request: gr.Request) -> list[Any]:
        return page_state(live, examples, reader_of(request))

    def liked(shown: Any, history: Any, data: gr.LikeData, request: gr.Request) -> str:
        reader = reader_of(request)
        user = reader.user if reader else None
        record = verdict(desk, shown, history, data.index, data.liked, user)
        if record is None or reader is None:
            return ""
        try:
            live.current().store.add_feedback(record)
        except Exception:  # not loaded, or the store refused: the reader is told, not shown why
            return status_html("Your verdict could not be kept right now; try again later.")
        return status_html(
            "Thanks: your verdict is kept for the people who look after these documents."
        )

    # Questions skip the queue (see the module's docstring; bench/RESULTS.md for the cost).
    private: dict[str, Any] = {"api_visibility": "private"}
    answering: dict[str, Any] = {**private, "queue": False}
    with gr.Blocks(title=TITLE, fill_height=compact) as demo:
        if not compact:
            gr.Markdown(f"# {TITLE}", elem_classes="qa-title")
        docs = gr.HTML(elem_classes="qa-docs-box")
        chatbot = gr.Chatbot(
            show_label=False,
            height=340 if compact else 540,
            autoscroll=False,  # the page script shows the new question, not the reply's end
            sanitize_html=True,  # our HTML is already inert; this is the second lock
            latex_delimiters=[],
            feedback_options=FEEDBACK,
            buttons=["copy"],
            placeholder=None if compact else "Answers come with the passages they rest on.",
            elem_id="qa-chat",
        )
        status = gr.HTML(elem_classes="qa-status-box")
        with gr.Row(equal_height=True):
            box = gr.Textbox(
                placeholder="Ask a question about the documents",
                show_label=False,
                max_length=gate.max_question_chars,
                submit_btn="Ask",
                autofocus=not compact,
                scale=8,
                elem_id="qa-question",
            )
            clear = gr.Button("Clear", scale=1, min_width=80, elem_id="qa-clear")
        # Client-side: sent with every question, so any replica can answer the next one.
        history = gr.JSON([], visible="hidden", elem_id="qa-history")
        with gr.Row(elem_classes="qa-examples"):
            buttons = [gr.Button("", size="sm", visible=False) for _ in range(MAX_EXAMPLES)]
        shown = [chatbot, history, box, status]
        for button in buttons:
            button.click(submit, inputs=[button, chatbot, history], outputs=shown, **answering)
        box.submit(submit, inputs=[box, chatbot, history], outputs=shown, **answering)
        clear.click(lambda: ([], [], "", ""), outputs=shown, **private)
        # The chat's own trash icon must forget the conversation too.
        chatbot.clear(lambda: [], outputs=history, **private)
        chatbot.like(liked, inputs=[chatbot, history], outputs=status, **private)
        # Until the knowledge base is loaded the page asks again every 2 s, then stops.
        timer = gr.Timer(2.0, active=False)
        state = [docs, *buttons, timer]
        demo.load(refresh, outputs=state, **private)
        timer.tick(refresh, outputs=state, **private)
        if api:

            async def ask(
                question: str,
                history: Turns | None = None,
                request: gr.Request = None,  # type: ignore[assignment]
            ) -> dict[str, Any]:
                """Answer a question from the documents: the same JSON as POST /api/ask."""
                return await ask_api(live, gate, reader_of(request), question, history)

            gr.api(ask, api_name="ask", queue=False)  # POST /gradio_api/run/ask
    return demo


# Runs on each chat page: after a reply, the new question (then its answer) is put in view;
# earlier turns stay above it. (The chat's own autoscroll would show the reply's end.)
REVEAL_JS = """
() => {
  let last = null;
  const reveal = () => {
    const chat = document.querySelector('#qa-chat');
    if (!chat) return;
    const replies = chat.querySelectorAll('.qa-reply');
    const reply = replies[replies.length - 1];
    if (!reply || reply === last) return;
    last = reply;
    const before = (q) => q.compareDocumentPosition(reply) & Node.DOCUMENT_POSITION_FOLLOWING;
    const questions = [...chat.querySelectorAll('.user-row')].filter(before);
    (questions[questions.length - 1] || reply).scrollIntoView({block: 'start'});
  };
  new MutationObserver(reveal).observe(document.body, {childList: true, subtree: true});
}
"""
