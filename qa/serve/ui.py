"""The chat pages (Gradio): the full app at / and the compact one a wiki embeds at /embed.

A `gr.Blocks` with a `gr.Chatbot`, not `gr.ChatInterface`: in Gradio 6.31 the latter reads
localStorage without a guard and never finishes loading inside a cross-site iframe.
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from qa.errors import USER_ERRORS
from qa.serve.edge import client_of
from qa.serve.guards import AskGate, Refused
from qa.serve.live import LiveKnowledgeBase, NotReadyError
from qa.serve.render import answer_html, documents_html, inert

TITLE = "Ask the documents"
# Earlier turns kept per conversation (user + assistant messages); older ones are dropped.
MAX_TURNS = 40


def message_text(message: Any) -> str:
    """A chat message as plain text: Gradio may hand over a string or a list of parts."""
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        return message_text(message.get("text", message.get("content", "")))
    if isinstance(message, list | tuple):
        return " ".join(message_text(part) for part in message)
    return ""


def respond(
    live: LiveKnowledgeBase,
    gate: AskGate,
    client: str,
    message: Any,
    history: list[dict[str, str]],
) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    """One chat turn: (messages to show, new history, text left in the box).

    `history` (kept server-side in a gr.State) holds the plain question and answer of each
    turn, which is what follow-ups need, plus the HTML the chat shows for it.
    """
    question = message_text(message)
    history = list(history or [])
    if not question.strip():
        return _shown(history), history, ""
    try:
        with gate.admit(client, question):
            result = live.current().ask(question, history)
    except Refused as error:
        raise gr.Error(error.message) from None
    except NotReadyError as error:
        raise gr.Error(str(error)) from None
    except USER_ERRORS as error:
        raise gr.Error(str(error)) from None
    history += [
        {"role": "user", "content": result.question, "html": inert(result.question)},
        {"role": "assistant", "content": result.text, "html": answer_html(result)},
    ]
    history = history[-MAX_TURNS:]
    return _shown(history), history, ""


def _shown(history: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": turn["role"], "content": turn["html"]} for turn in history]


def ask_api(
    live: LiveKnowledgeBase,
    gate: AskGate,
    client: str,
    question: Any,
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The answer as JSON (the Gradio API's "ask" endpoint), errors as gr.Error."""
    try:
        text = question if isinstance(question, str) else ""
        with gate.admit(client, text):
            return live.current().ask(question, history).to_dict()
    except Refused as error:
        raise gr.Error(error.message) from None
    except NotReadyError as error:
        raise gr.Error(str(error)) from None
    except USER_ERRORS as error:
        raise gr.Error(str(error)) from None


def documents_line(live: LiveKnowledgeBase) -> str:
    try:
        return documents_html(live.current().documents)
    except NotReadyError as error:
        return f'<p class="qa-docs">{inert(str(error))}</p>'


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: the default fetches Google Fonts."""
    system = [
        "ui-sans-serif",
        "system-ui",
        "Segoe UI",
        "Roboto",
        "Helvetica",
        "Arial",
        "sans-serif",
    ]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)


def build_blocks(
    live: LiveKnowledgeBase,
    gate: AskGate,
    *,
    examples: tuple[str, ...],
    compact: bool = False,
    api: bool = True,
) -> gr.Blocks:
    """The chat page; `compact` is the embed: no big header, a shorter chat.

    Handlers are plain functions (not partials) so that Gradio hands them the request, whose
    client the edge middleware named: the chat and the API go through the same gate as REST.
    """

    def submit(
        message: Any, history: list[dict[str, str]], request: gr.Request
    ) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
        return respond(live, gate, client_of(request.headers), message, history)

    def example(question: str) -> Any:
        def ask_example(
            history: list[dict[str, str]], request: gr.Request
        ) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
            return respond(live, gate, client_of(request.headers), question, history)

        return ask_example

    with gr.Blocks(title=TITLE, fill_height=compact) as demo:
        if not compact:
            gr.Markdown(f"# {TITLE}", elem_classes="qa-title")
        docs = gr.HTML(elem_classes="qa-docs-box")
        chatbot = gr.Chatbot(
            show_label=False,
            height=340 if compact else 540,
            sanitize_html=True,  # our HTML is already inert; this is the second lock
            latex_delimiters=[],
            feedback_options=None,
            buttons=["copy"],
            placeholder=None if compact else "Answers come with the passages they rest on.",
            elem_id="qa-chat",
        )
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
        history = gr.State([])
        if examples:
            with gr.Row(elem_classes="qa-examples"):
                for question in examples[: 3 if compact else len(examples)]:
                    gr.Button(question, size="sm").click(
                        example(question),
                        inputs=[history],
                        outputs=[chatbot, history, box],
                        api_visibility="private",
                    )
        box.submit(
            submit,
            inputs=[box, history],
            outputs=[chatbot, history, box],
            api_visibility="private",
        )
        clear.click(
            lambda: ([], [], ""),
            outputs=[chatbot, history, box],
            queue=False,
            api_visibility="private",
        )
        # The chat's own trash icon must forget the conversation too.
        chatbot.clear(lambda: [], outputs=history, queue=False, api_visibility="private")
        demo.load(
            functools.partial(documents_line, live),
            outputs=docs,
            queue=False,
            api_visibility="private",
        )
        if api:

            def ask(
                question: str,
                history: list[dict[str, str]] | None = None,
                request: gr.Request = None,  # type: ignore[assignment]
            ) -> dict[str, Any]:
                """Answer a question from the documents: the same JSON as POST /api/ask."""
                client = client_of(request.headers) if request is not None else "?"
                return ask_api(live, gate, client, question, history)

            gr.api(ask, api_name="ask")
    return demo
