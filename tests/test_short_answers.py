"""Short answers, answer types, typed spans at index time, declines that read, explanations."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.asking.expect import expect
from qa.eval.evaluate import f1_score, normalize, short_scores
from qa.indexing import tagging
from qa.types import Answer, Chunk, Passage, ShortAnswer
from tests.conftest import ARTICLE, REPO

needs_model = pytest.mark.skipif(not tagging.available(), reason="entity model not installed")


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who is Turkey's defence minister?", "person"),
        ("Whom did Ankara blame for the failed putsch?", "person"),
        ("When was the coup attempt in Turkey?", "date"),
        ("In what year did the Normans reach Italy?", "date"),
        ("How many S-400 units did Turkey buy?", "number"),
        ("What is the price of the Patriot system?", "money"),
        ("How much did Turkey pay for the S-400?", "money"),
        ("How long did Ankara study air defense systems?", "duration"),
        ("What percentage of the vote did he win?", "percent"),
        ("Where does Conkar represent Turkey?", "place"),
        ("What group does Turkey classify as terrorist?", "group"),
        ("Why did Turkey choose the S-400?", "explanation"),
        ("How does the system work?", "explanation"),
        ("What did Kaidanow say?", "statement"),
        ("Is the purchase closed?", "yesno"),
        ("Who is Conkar?", "definition"),
        ("What was the State Department trying to sell to Ankara?", "thing"),
    ],
)
def test_what_a_question_asks_for(question, kind):
    assert expect(question).kind == kind


def test_explanations_want_no_short_answer():
    assert not expect("Why did Turkey choose the S-400?").short
    assert expect("Who is Conkar?").subject == "Conkar"
    assert expect("What kind of activity is it?").head == "activity"
    assert expect("What is the name of the legislation passed in 1850?").head == "legislation"
    # The noun a description ends on names the kind too: "the largest city" is a place.
    assert expect("What is the largest city in all of California?").head == "city"
    assert expect("What is the largest city in all of California?").kind == "place"
    assert expect("Which of the three populated areas has the fewest people?").head == "areas"
    assert expect("What other area are the towns connected with?").head == "area"
    assert expect("What is the United States busiest commercial port?").head == "port"


def test_squad_normalisation_and_f1():
    assert normalize("The  YPG militia!") == "ypg militia"
    assert f1_score("the YPG militia", "YPG") == pytest.approx(2 / 3)
    assert short_scores("YPG", ["the YPG", "YPG militia"]) == (1.0, 1.0)
    assert short_scores(None, ["YPG"]) == (0.0, 0.0)  # no short answer (or a decline) is a miss


def _answer(short: ShortAnswer | None) -> Answer:
    sentence = "Turkey classifies the YPG militia as a terrorist group."
    text = sentence + " The US supports it in Syria."
    chunk = Chunk("a.txt::0", "a.txt", text, 0, len(text))
    passage = Passage(chunk, 1.0, "A", "a.txt", highlights=((0, len(sentence)),))
    return Answer(
        "q",
        sentence + " [1]",
        False,
        (passage,),
        0.9,
        {"retrieve": 1, "answer": 1},
        (),
        "q",
        {},
        short,
    )


def test_the_json_carries_the_short_answer_with_offsets_in_its_passage():
    data = _answer(ShortAnswer("the YPG militia", 1, 18, 33)).to_dict()
    assert data["short_answer"] == {
        "text": "the YPG militia",
        "passage_rank": 1,
        "start": 18,
        "end": 33,
    }
    passage = data["passages"][0]["text"]
    assert passage[18:33] == "the YPG militia"
    assert _answer(None).to_dict()["short_answer"] is None


def test_the_api_schema_documents_the_short_answer():
    from qa.serve.schema import AnswerOut

    schema = AnswerOut.model_json_schema()
    assert "short_answer" in schema["properties"]
    short = schema["$defs"]["ShortAnswerOut"]
    assert set(short["required"]) == {"text", "passage_rank", "start", "end"}
    for answer in (_answer(ShortAnswer("the YPG militia", 1, 18, 33)), _answer(None)):
        data = answer.to_dict()
        assert AnswerOut.model_validate(data).model_dump()["short_answer"] == data["short_answer"]


def test_the_cli_and_the_chat_show_the_short_answer_first_and_highlighted():
    from qa.cli import format_answer
    from qa.serve.render import answer_html

    result = _answer(ShortAnswer("the YPG militia", 1, 18, 33))
    shown = format_answer(result)
    assert shown.splitlines()[1] == "A: the YPG militia [1]"
    assert ">>>Turkey classifies **the YPG militia** as" in shown
    html = answer_html(result)
    assert html.index("qa-short-answer") < html.index('class="qa-text"')
    assert '<mark class="qa-hl qa-short">the YPG militia</mark>' in html
    assert '<mark class="qa-hl">Turkey classifies </mark>' in html


@needs_model
def test_sentences_are_typed_at_index_time():
    [spans] = tagging.tag(["Ankara blamed Fethullah Gulen for the July 2016 coup attempt."])
    labelled = {
        ("Ankara blamed Fethullah Gulen for the July 2016 coup attempt."[a:b], k)
        for a, b, k in spans
    }
    assert ("Fethullah Gulen", "PERSON") in labelled
    assert ("July 2016", "DATE") in labelled
    assert any(k == "NP" for _, k in labelled)


def test_without_the_entity_model_the_engine_still_answers(
    tmp_path, fake_embedder, monkeypatch, capsys
):
    from qa.knowledge import KnowledgeBase

    monkeypatch.setattr(tagging, "available", lambda: False)
    tagging._pipeline.cache_clear()
    try:
        docs = tmp_path / "docs"
        docs.mkdir()
        shutil.copy(ARTICLE, docs / ARTICLE.name)
        kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=fake_embedder)
        assert "entity model is not installed" in capsys.readouterr().err
        answer = kb.ask("Why did Turkey choose the S-400?")
        assert answer.passages and answer.short_answer is None
    finally:
        tagging._pipeline.cache_clear()


# ----- the real model on the real article -------------------------------------------------------
pytest_slow = pytest.mark.slow
S400 = json.loads((REPO / "bench" / "questions" / "s400.json").read_text())


@pytest_slow
@needs_model
@pytest.mark.parametrize(
    "question",
    [
        "What is the price of the Patriot system?",
        "Who is Turkey's defence minister?",
        "How many S-400 units did Turkey buy?",
    ],
)
def test_what_the_article_does_not_say_is_declined(article_kb, question):
    answer = article_kb.ask(question)
    assert answer.abstained, (question, answer.confidence, answer.text)
    assert answer.short_answer is None and answer.to_dict()["short_answer"] is None


@pytest_slow
@needs_model
def test_a_group_question_gets_the_group(article_kb):
    answer = article_kb.ask("What group does Turkey classify as terrorist?")
    assert not answer.abstained
    assert answer.short_answer is not None and "YPG" in answer.short_answer.text
    first = answer.passages[answer.short_answer.passage_rank - 1]
    short = answer.short_answer
    assert first.chunk.text[short.start : short.end] == short.text
    assert any(a <= short.start and short.end <= b for a, b in first.highlights)
    assert len(answer.short_answer.text.split()) <= 4


@pytest_slow
@needs_model
def test_a_statement_question_joins_the_sentences_of_the_statement(article_kb):
    answer = article_kb.ask("What did Kaidanow say?")
    assert not answer.abstained, answer.confidence
    assert "Kaidanow" in answer.text and "strategic partnership" in answer.text
    assert answer.short_answer is None
    assert 2 <= answer.text.count("[") <= 3  # each sentence keeps its citation marker


@pytest_slow
@needs_model
def test_an_explanation_has_no_short_answer(article_kb):
    answer = article_kb.ask("Why did Turkey choose the S-400?")
    assert not answer.abstained and answer.short_answer is None
    assert "turned away" in answer.text


@pytest_slow
@needs_model
@pytest.mark.parametrize(("question", "answer_has", "short_has"), S400["answerable"])
def test_the_article_answers_its_own_questions(article_kb, question, answer_has, short_has):
    answer = article_kb.ask(question)
    assert not answer.abstained, (question, answer.confidence)


@pytest_slow
@needs_model
def test_most_answers_on_the_article_hold_what_they_should(article_kb):
    """Some paraphrases pick a neighbouring sentence ("Conkar's view of the American proposals"
    gets his "priority" quote, not "would not be met with success"); most must be right."""
    missed = [
        (question, answer.text)
        for question, answer_has, _ in S400["answerable"]
        if answer_has not in (answer := article_kb.ask(question)).text
    ]
    assert len(missed) <= 0.15 * len(S400["answerable"]), missed


@pytest_slow
@needs_model
def test_most_short_answers_on_the_article_are_right(article_kb):
    """Short answers are read by rules and arithmetic, so some miss (a paraphrase the spans do
    not reach: "put the question to the US" for "ask"); most must hold the expected words."""
    wanted = [(q, short) for q, _, short in S400["answerable"] if short]
    missed = []
    for question, short in wanted:
        got = article_kb.ask(question).short_answer
        if not got or short not in got.text:
            missed.append((question, got.text if got else None))
    assert len(missed) <= 0.3 * len(wanted), missed


@pytest_slow
@needs_model
@pytest.mark.parametrize("question", S400["off_topic"])
def test_off_topic_questions_are_all_declined(article_kb, question):
    assert article_kb.ask(question).abstained


@pytest_slow
@needs_model
def test_on_topic_questions_the_article_does_not_answer_are_mostly_declined(article_kb):
    declined = [article_kb.ask(q).abstained for q in S400["unanswerable_on_topic"]]
    assert sum(declined) / len(declined) >= 0.4, declined


@pytest_slow
@needs_model
def test_a_tiny_document_of_ones_own(tmp_path, real_embedder):
    from qa.knowledge import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.txt").write_text(
        "The Gull Point lighthouse was built in 1871 on the rocks north of the harbour.\n\n"
        "Its first keeper was Thomas Avery, who kept the light for thirty-two years. "
        "He lived in the cottage beside the tower with his wife Margaret.\n\n"
        "The lamp was electrified in 1938 and the station was automated in 1979.\n"
    )
    kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=real_embedder)
    for question in ("Who kept the lighthouse?", "Who was the lighthouse keeper?"):
        answer = kb.ask(question)
        assert not answer.abstained, (question, answer.confidence)
        assert answer.short_answer and answer.short_answer.text == "Thomas Avery", question
    when = kb.ask("When was the lighthouse built?")
    assert when.short_answer and when.short_answer.text == "1871"


@pytest_slow
@needs_model
def test_a_definition_is_what_stands_beside_the_name(article_kb):
    conkar = article_kb.ask("Who is Conkar?").short_answer
    assert conkar and conkar.text.startswith("a member of the Turkish Parliament")
    # Gulen is only mentioned ("... to extradite Fethullah Gulen, whom Ankara blamed ..."): the
    # sentence answers, and no span of it is offered as what he is.
    gulen = article_kb.ask("Who is Gulen?")
    assert not gulen.abstained and "Gulen" in gulen.text and gulen.short_answer is None


def test_an_untyped_index_does_not_read_as_nothing_of_the_type(
    tmp_path, fake_embedder, monkeypatch
):
    """Built without the entity model, "who" questions are not declined for want of names."""
    from qa.knowledge import KnowledgeBase

    monkeypatch.setattr(tagging, "tag", lambda texts, batch_size=64: [[] for _ in texts])
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    kb = KnowledgeBase.build([docs], tmp_path / "kb", embedder=fake_embedder)
    signals = kb.ask("Whom did Ankara blame for the failed putsch?").signals
    assert signals["typed_absent"] == 0.0


def _scored(text: str, spans: list[tuple[str, str]]):
    """One chunk of one sentence, its spans given by their text and label (first occurrence)."""
    from qa.stores.base import ScoredChunk
    from qa.types import Sentence

    entities = tuple(sorted((text.index(s), text.index(s) + len(s), label) for s, label in spans))
    chunk = Chunk("d::0", "d", text, 0, len(text))
    sentence = Sentence("d::0.0", "d::0", 0, len(text), entities)
    return ScoredChunk(chunk, 0.5, (sentence,), (0.5,))


def _short_of(question: str, hit) -> str:
    from qa import lexical
    from qa.asking.spans import pick, scored_spans

    weights = {t: 1.0 for t in lexical.terms(question)}
    found = scored_spans([hit], [(1.0, 0, 0)], expect(question), weights, question)
    best = pick(found, (0, 0))
    assert best is not None
    return hit.chunk.text[best.start : best.end]


def test_a_how_many_question_is_answered_by_the_number_alone():
    hit = _scored(
        "From 2005 to 2014, there were two Major League Soccer teams in Los Angeles.",
        [("2005", "DATE"), ("2014", "DATE"), ("two", "CARDINAL"),
         ("two Major League Soccer teams", "NP"), ("Los Angeles", "GPE")],
    )  # fmt: skip
    assert _short_of("How many soccer teams did Los Angeles have?", hit) == "two"


def test_the_words_around_the_wh_phrase_point_at_the_answer():
    from qa.asking.spans import question_context

    before, after = question_context("California was admitted as what kind of state?", "state")
    assert before[:2] == ["as", "admitted"]  # nearest first
    assert after == []
    hit = _scored(
        "The Compromise of 1850 enabled California to be admitted to the Union as a free state.",
        [("The Compromise of 1850", "LAW"), ("California", "GPE"), ("the Union", "ORG"),
         ("a free state", "NP")],
    )  # fmt: skip
    assert _short_of("California was admitted to the Union as what kind of state?", hit) == (
        "a free state"
    )


def test_the_span_weights_file_matches_the_features():
    from qa.asking import spans

    spec = json.loads(spans.WEIGHTS_FILE.read_text())
    assert tuple(spec["features"]) == spans.SPAN_FEATURES
    assert len(spec["weights"]) == len(spans.SPAN_FEATURES)
    assert spec["span_f1_leave_one_article_out"] > 0.38  # the old hand-set scorer: 0.387


def test_a_question_that_asks_for_the_subject_is_answered_before_its_verb():
    from qa.asking.span_shape import asks_subject

    assert asks_subject("What field of computer science analyzes algorithms?", "field")
    assert asks_subject("Who commissioned the Tapestry?", "")
    assert not asks_subject("What did Kaidanow say?", "")
    assert not asks_subject("The cities are part of which state?", "state")
    hit = _scored(
        "The time and space hierarchy theorems form the basis for most separation results.",
        [("The time and space hierarchy theorems", "NP"), ("the basis", "NP"),
         ("most separation results", "NP")],
    )  # fmt: skip
    assert _short_of("What forms the basis for most separation results?", hit) == (
        "The time and space hierarchy theorems"
    )
