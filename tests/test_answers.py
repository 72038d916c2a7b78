"""The real bundled MiniLM on the real S-400 article: answers, declines and follow-ups."""

from __future__ import annotations

import pytest

from tests.conftest import ARTICLE

pytestmark = pytest.mark.slow

S400 = "Why did Turkey choose the S-400?"


def test_s400_question_cites_the_foreign_ministry_paragraph(article_kb):
    answer = article_kb.ask(S400)
    assert not answer.abstained
    assert "Foreign Ministry" in answer.passages[0].chunk.text
    assert "turned away" in answer.text and "Russia" in answer.text
    assert "[1]" in answer.text
    first = answer.passages[0]
    assert first.highlights, "the answer must be highlighted inside its passage"
    a, b = first.highlights[0]
    assert "turned away" in first.chunk.text[a:b]


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",
        "Give me a recipe for pasta carbonara.",
        "Who won the 2018 football world cup?",
        "How do I reset my password?",
    ],
)
def test_off_topic_questions_are_declined_with_passages(article_kb, question):
    answer = article_kb.ask(question)
    assert answer.abstained
    assert answer.text == "The documents do not say."
    assert answer.passages, "the nearest passages are still shown"
    assert all(not p.highlights for p in answer.passages)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Whom did Ankara blame for the failed putsch?", "Gulen"),
        ("Who does Turkey consider a terrorist organisation?", "YPG"),
        ("What was the State Department trying to sell to Ankara?", "Patriots"),
        ("How long did Ankara study air defense systems?", "decade"),
        ("What did Kaidanow say buying Patriots would do?", "strategic partnership"),
        ("Does the deal conflict with Turkey's NATO alliance?", "NATO"),
    ],
)
def test_paraphrased_questions_are_answered(article_kb, question, expected):
    answer = article_kb.ask(question)
    assert not answer.abstained, (question, answer.confidence)
    assert expected in answer.text


def test_follow_up_uses_the_conversation(article_kb):
    first = article_kb.ask("Who is Conkar?")
    history = [
        {"role": "user", "content": "Who is Conkar?"},
        {"role": "assistant", "content": first.text},
    ]
    follow_up = article_kb.ask("What did he say about the Patriots?", history)
    assert follow_up.passages[0].chunk.text.startswith("Conkar, a member")
    assert not follow_up.abstained
    assert "Conkar" in follow_up.search_query
    # Without the conversation, "he" points nowhere and Kaidanow's Patriots paragraph competes.
    alone = article_kb.ask("What did he say about the Patriots?")
    assert alone.search_query == "What did he say about the Patriots?"


def test_json_shape_and_offsets(article_kb):
    data = article_kb.ask(S400).to_dict()
    assert set(data) >= {"question", "answer", "abstained", "passages", "timings_ms"}
    assert set(data["timings_ms"]) >= {"retrieve", "answer", "total"}
    # Stored documents carry no text: offsets are checked against the file that was indexed.
    assert [d.id for d in article_kb.documents] == [ARTICLE.name]
    texts = {ARTICLE.name: ARTICLE.read_text(encoding="utf-8")}
    for rank, passage in enumerate(data["passages"], start=1):
        assert passage["rank"] == rank
        assert texts[passage["doc_id"]][passage["start"] : passage["end"]] == passage["text"]
        # The source is the path relative to what was indexed, never the server's path.
        assert passage["source"] == passage["doc_id"] == ARTICLE.name
        assert passage["chunk_id"].startswith(f"{ARTICLE.name}::")
        assert passage["url"] is None
    # A passage's chunk id names the stored chunk it shows.
    vector = article_kb.embedder.encode([S400])[0]
    fetched = article_kb.store.fetch([p["chunk_id"] for p in data["passages"]], vector)
    assert len(fetched) == len(data["passages"])
    for passage in data["passages"]:
        chunk = fetched[passage["chunk_id"]].chunk
        assert (chunk.doc_id, chunk.start, chunk.end, chunk.text) == (
            passage["doc_id"],
            passage["start"],
            passage["end"],
            passage["text"],
        )
        for a, b in passage["highlights"]:
            assert 0 <= a < b <= len(passage["text"])
    scores = [p["score"] for p in data["passages"]]
    assert scores == sorted(scores, reverse=True)
