"""Raw input to a search query: validate the question, fold in the conversation for follow-ups."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from qa import lexical

# Words that point back into the conversation: "he", "that deal", "there"...
_ANAPHORA = frozenset(
    "he she it they him her them his hers its their theirs this these those there then "
    "latter former".split()
)


class QuestionError(ValueError):
    """The question cannot be asked (empty, not text); the message says why."""


def clean_question(question: Any, max_chars: int) -> tuple[str, list[str]]:
    """The question with control characters removed and NFC-normalised, plus notices."""
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, not {type(question).__name__}")
    notices = []
    text = unicodedata.normalize("NFC", question)
    # Control and format characters (and lone surrogates) carry no words; whitespace folds.
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise QuestionError("the question is empty; type a question about the documents")
    if len(text) > max_chars:
        text = text[:max_chars].rstrip()
        notices.append(f"the question was cut to its first {max_chars} characters")
    return text, notices


def validate_history(history: Any) -> list[dict[str, str]]:
    """History as a list of {"role": "user"|"assistant", "content": str}; bad turns raise."""
    if history is None:
        return []
    if not isinstance(history, Sequence) or isinstance(history, str | bytes):
        raise QuestionError("history must be a list of {role, content} messages")
    turns = []
    for n, turn in enumerate(history):
        if not isinstance(turn, dict):
            raise QuestionError(f"history[{n}] must be an object with role and content")
        role, content = turn.get("role"), turn.get("content")
        if role not in ("user", "assistant"):
            raise QuestionError(f"history[{n}].role ({role!r}) must be 'user' or 'assistant'")
        if not isinstance(content, str):
            raise QuestionError(f"history[{n}].content must be text")
        turns.append({"role": role, "content": content})
    return turns


def is_follow_up(question: str) -> bool:
    """A question that leans on what was said before: it points back, or names almost nothing."""
    words = set(lexical.words(question))
    return bool(words & _ANAPHORA) or len(lexical.terms(question)) <= 1


def search_query(question: str, history: Sequence[dict[str, str]], max_chars: int) -> str:
    """What retrieval should look for: a follow-up borrows the previous user question."""
    if not is_follow_up(question):
        return question
    for turn in reversed(history):
        if turn["role"] != "user":
            continue
        try:
            context, _ = clean_question(turn["content"], max_chars)
        except QuestionError:  # a turn of only spaces or control characters: look further back
            continue
        return f"{context} {question}"
    return question
