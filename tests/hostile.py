"""What the hostile-input tests share: hypothesis settings, any character, and the check that
an answer is well formed (or a one-line QuestionError) with passages that are exact slices."""

from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from qa.asking.question import QuestionError, clean_question, validate_history
from qa.knowledge import KnowledgeBase
from qa.types import Answer

# No example database: tests write nothing outside tmp_path.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())


def stored_texts(kb: KnowledgeBase) -> dict[str, str]:
    """Each document's text as the (embedded) store keeps it: what the chunk offsets point into.

    The store protocol hands out chunks and document metadata, not whole texts, so this reads
    the embedded store's snapshot.
    """
    snapshot = kb.store.snapshot
    texts = {d.id: snapshot.texts[n] for n, d in enumerate(snapshot.documents)}
    assert set(texts) == {d.id for d in kb.documents}
    return texts


def check_answer(kb: KnowledgeBase, texts: dict[str, str], question, history=None) -> Answer | None:
    """Ask; the result must be a well-formed Answer, or a QuestionError with a one-line reason,
    and the error only when the question itself or the history's shape is at fault.

    `texts` are the documents' texts (see `stored_texts`): every passage must be an exact
    slice of its document.
    """
    try:
        clean_question(question, kb.settings.max_question_chars)
        validate_history(history)
        acceptable = True
    except QuestionError:
        acceptable = False
    try:
        answer = kb.ask(question, history)
    except QuestionError as error:
        assert str(error) and "\n" not in str(error)
        assert not acceptable, f"a fine question was refused: {error}"
        return None
    assert isinstance(answer, Answer)
    # What the web API sends must encode: strict JSON (no NaN) and valid UTF-8.
    sent = answer.to_dict()
    json.dumps(sent, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert 0.0 <= answer.confidence <= 1.0
    assert 0 < len(answer.question) <= kb.settings.max_question_chars
    assert answer.text
    assert all(math.isfinite(p.score) for p in answer.passages)
    documents = {d.id: d for d in kb.documents}
    for passage, shown in zip(answer.passages, sent["passages"], strict=True):
        chunk = passage.chunk
        assert texts[chunk.doc_id][chunk.start : chunk.end] == chunk.text
        assert chunk.id.startswith(f"{chunk.doc_id}::") and shown["chunk_id"] == chunk.id
        # A reader is shown where a passage comes from, never a path on the server.
        assert passage.source == documents[chunk.doc_id].source == shown["source"]
        assert not os.path.isabs(passage.source)
        assert "url" in shown
        for start, end in passage.highlights:
            assert 0 <= start < end <= len(chunk.text)
    return answer
