"""Follow-ups that follow: a question that points back borrows its subject from the conversation,
the answer is chosen by what the new question asks, and a question that names its own subject
starts a new topic. Conversations of three and more turns, with topic switches."""

from __future__ import annotations

import pytest

from qa.asking.question import is_follow_up, resolve


def turns(*questions: str) -> list[dict[str, str]]:
    """A conversation of user questions, each followed by an assistant reply."""
    history: list[dict[str, str]] = []
    for q in questions:
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": "..."}]
    return history


@pytest.mark.parametrize(
    ("question", "follows"),
    [
        ("What did he say about the Patriots?", True),
        ("When?", True),
        ("And why?", True),
        ("What did his party say?", True),
        ("Who is Gulen?", False),  # names its own subject, however short
        ("Who is Kaidanow?", False),
        ("Why did Turkey choose the S-400?", False),
        ("Who was the lighthouse keeper?", False),  # two terms of its own
    ],
)
def test_what_counts_as_a_follow_up(question, follows):
    assert is_follow_up(question) is follows


def test_a_follow_up_borrows_the_person_of_the_previous_turn():
    read = resolve("What did he say about the Patriots?", turns("Who is Conkar?"), 2000)
    assert read.search == "Who is Conkar? What did he say about the Patriots?"
    assert read.question == "What did Conkar say about the Patriots?"
    possessive = resolve("What is his position?", turns("Who is Conkar?"), 2000)
    assert possessive.question == "What is Conkar's position?"


def test_a_question_with_its_own_subject_is_never_mixed_with_history():
    read = resolve("Who is Gulen?", turns("What did Kaidanow say?"), 2000)
    assert read.search == "Who is Gulen?" and read.question == "Who is Gulen?"
    assert not read.follow_up


def test_three_turns_keep_the_subject_across_follow_ups():
    history = turns("Who is Conkar?", "What did he say about the Patriots?")
    read = resolve("Where does he represent Turkey?", history, 2000)
    assert read.search == "Who is Conkar? Where does he represent Turkey?"
    assert read.question == "Where does Conkar represent Turkey?"


def test_a_topic_switch_moves_the_subject():
    history = turns("Who is Conkar?", "What did he say?", "Who is Kaidanow?")
    read = resolve("What did she say about the Patriots?", history, 2000)
    assert read.search.startswith("Who is Kaidanow?")
    assert read.question == "What did Kaidanow say about the Patriots?"


def test_no_history_leaves_a_pointing_question_alone():
    read = resolve("What did he say?", [], 2000)
    assert read.search == read.question == "What did he say?"
    assert not read.follow_up


# ----- the real model on the real article -------------------------------------------------------
CONVERSATIONS = [
    # (question, what the answer must contain, what the first passage must contain)
    [
        ("Who is Conkar?", "Conkar", "Conkar"),
        ("What did he say about the Patriots?", "Patriots", "Conkar, a member"),
        ("Where does he represent Turkey?", "NATO Parliamentary Assembly", "Conkar"),
    ],
    [
        ("What did Kaidanow say?", "Kaidanow", "Kaidanow"),
        ("Who is Gulen?", "Gulen", "Gulen"),  # a new subject: the Patriots are forgotten
        ("When did Ankara blame him for a coup attempt?", "2016", "Gulen"),
    ],
    [
        ("Why did Turkey choose the S-400?", "turned away", "Foreign Ministry"),
        ("Who is Kaidanow?", "Kaidanow", "Kaidanow"),
        ("What did she say buying Patriots would do?", "strategic partnership", "Kaidanow"),
        ("Which militia does the US support in Syria?", "YPG", "YPG"),
    ],
]


@pytest.mark.slow
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: c[0][0])
def test_conversations_on_the_article(article_kb, conversation):
    history: list[dict[str, str]] = []
    for question, in_answer, in_passage in conversation:
        answer = article_kb.ask(question, history)
        assert not answer.abstained, (question, answer.confidence, answer.search_query)
        assert in_answer in answer.text, (question, answer.text)
        assert in_passage in answer.passages[0].chunk.text, (question, answer.search_query)
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.text},
        ]


@pytest.mark.slow
def test_the_answer_is_chosen_by_the_new_question(article_kb):
    """After "What did Kaidanow say?", "Who is Gulen?" is answered about Gulen, not Patriots."""
    first = article_kb.ask("What did Kaidanow say?")
    history = [
        {"role": "user", "content": "What did Kaidanow say?"},
        {"role": "assistant", "content": first.text},
    ]
    answer = article_kb.ask("Who is Gulen?", history)
    assert answer.search_query == "Who is Gulen?"
    assert "Gulen" in answer.text and "Patriots" not in answer.text
