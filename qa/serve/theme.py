"""Colours of the chat pages and the wiki widget, light and dark, in one place.

Every text colour here is checked against the background it sits on (at least 4.5:1, WCAG AA)
by `tests/test_widget_browser.py` from the colours the browser computes. The chat pages follow
Gradio's own light/dark switch (its `.dark` class); the widget takes `light`, `dark` or `auto`
(the reader's system setting) from the page that embeds it.
"""

from __future__ import annotations

import gradio as gr

# name -> (light, dark). Pairs that meet: fg/muted/link/warn on bg and card; hl-fg on hl-bg;
# warn on warn-bg; accent-fg on accent.
PALETTE: dict[str, tuple[str, str]] = {
    "bg": ("#ffffff", "#111827"),
    "card": ("#f9fafb", "#1f2937"),
    "question": ("#eef2ff", "#1e293b"),
    "border": ("#d1d5db", "#4b5563"),
    "fg": ("#1f2937", "#e5e7eb"),
    "muted": ("#4b5563", "#a3acb9"),
    "link": ("#1d4ed8", "#93c5fd"),
    "warn": ("#92400e", "#fcd34d"),
    "warn-bg": ("#fef3c7", "#451a03"),
    "hl-bg": ("#fde68a", "#78350f"),
    "hl-fg": ("#1f2937", "#fde68a"),
    "accent": ("#1d4ed8", "#1d4ed8"),
    "accent-fg": ("#ffffff", "#ffffff"),
}


def variables(selector: str, dark: bool) -> str:
    """`selector { --qa-name: colour; ... }` for one theme."""
    pairs = "; ".join(f"--qa-{name}: {colours[dark]}" for name, colours in PALETTE.items())
    return f"{selector} {{ {pairs}; color-scheme: {'dark' if dark else 'light'}; }}\n"


def widget_variables() -> str:
    """The widget's themes: html[data-theme=light|dark|auto]."""
    return (
        variables(":root, html[data-theme='light']", dark=False)
        + variables("html[data-theme='dark']", dark=True)
        + "@media (prefers-color-scheme: dark) {\n"
        + variables("html[data-theme='auto']", dark=True)
        + "}\n"
    )


def page_variables() -> str:
    """The chat pages' themes: Gradio puts `.dark` on the page when it is dark."""
    return variables(":root, .gradio-container", dark=False) + variables(
        ".dark, .dark .gradio-container", dark=True
    )


# Gradio's own chrome (placeholders, secondary text, example buttons) in the same contrast.
PAGE_CSS = """
#qa-chat .md.chatbot { opacity: 1 !important; }
.gradio-container textarea::placeholder { color: var(--qa-muted) !important; opacity: 1; }
.qa-examples button { color: var(--qa-fg) !important; }
.qa-status { color: var(--qa-warn); margin: .2em 0 !important; }
"""


def gradio_theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts (the default fetches Google Fonts) and
    secondary text dark enough to read in both themes."""
    system = ["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    theme = gr.themes.Default(font=[*system, "sans-serif"], font_mono=mono)
    return theme.set(
        body_text_color_subdued=PALETTE["muted"][0],
        body_text_color_subdued_dark=PALETTE["muted"][1],
        input_placeholder_color=PALETTE["muted"][0],
        input_placeholder_color_dark=PALETTE["muted"][1],
    )
