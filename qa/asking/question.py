"""Raw input to a search query: validate the question, fold in the conversation for follow-ups."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qa import lexical

# Words that point back into the conversation: "he", "that deal", "there"...
_POINTING = frozenset(
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
    """A question that leans on what was said before: it points back ("he", "there"), or
    names nothing of its own. One that names its subject ("Who is Gulen?") stands alone."""
    words = set(lexical.words(question))
    if words & _POINTING:
        return True
    return not names(question) and len(lexical.terms(question)) <= 1


@dataclass(frozen=True)
class Resolved:
    """A question read in its conversation."""

    search: str  # what retrieval looks for: a follow-up with the question it follows
    question: str  # what the answer must answer: pronouns replaced by what they point to
    follow_up: bool


def resolve(question: str, history: Sequence[dict[str, str]], max_chars: int) -> Resolved:
    """Read a question in its conversation.

    The conversation's subject is the question that last named its own: a follow-up is searched
    together with that question, and its "he"/"it" is replaced by that question's name, so the
    answer is chosen by what the new question asks. A question that names its own subject
    starts a new topic and is never mixed with history.
    """
    if not is_follow_up(question):
        return Resolved(question, question, False)
    anchor = None
    for turn in history:  # oldest first: the last question that named its subject wins
        if turn["role"] != "user":
            continue
        try:
            text, _ = clean_question(turn["content"], max_chars)
        except QuestionError:  # a turn of only spaces or control characters says nothing
            continue
        if not is_follow_up(text):
            anchor = text
    if anchor is None:
        return Resolved(question, question, False)
    return Resolved(f"{anchor} {question}", _substitute(question, anchor), True)


def search_query(question: str, history: Sequence[dict[str, str]], max_chars: int) -> str:
    """What retrieval should look for: a follow-up borrows the question it follows."""
    return resolve(question, history, max_chars).search


# A capitalised word inside a sentence, a word with a digit or an inner capital (S-400, NATO).
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][\w'’-]*|\b\w*\d\w*(?:-\w+)*|\b[A-Z]{2,}\b")
_PERSONAL = {"he", "she", "him", "her", "they", "them"}
_POSSESSIVE = {"his", "hers", "its", "their", "theirs"}


def names(text: str) -> list[str]:
    """The names a question mentions, in order: runs of capitalised words ("Fethullah Gulen")."""
    found: list[str] = []
    last_end = -2
    for m in _NAME.finditer(text):
        word = m.group().rstrip("'’s") if m.group().endswith(("'s", "’s")) else m.group()
        if found and m.start() == last_end + 1:
            found[-1] += " " + word
        elif word.lower() not in lexical.STOPWORDS:
            found.append(word)
        last_end = m.end()
    return found


def _substitute(question: str, anchor: str) -> str:
    """The question with its pronouns replaced by the anchor's first name ("he" -> "Conkar"),
    or with the anchor's terms added when it names nothing or points with "it"/"that"."""
    found = names(anchor)
    if not found:
        return f"{question} ({anchor})"

    def swap(match: re.Match[str]) -> str:
        word = match.group().lower()
        if word in _PERSONAL:
            return found[0]
        if word in _POSSESSIVE:
            return f"{found[0]}'s"
        return match.group()

    swapped = re.sub(r"\b[A-Za-z]+\b", swap, question)
    if swapped == question:
        return f"{question} ({' '.join(found)})"
    return swapped
