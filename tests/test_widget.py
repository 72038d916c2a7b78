"""The widget's routes, readers' groups, feedback (and its abuse), examples and offline docs,
against a real app served by uvicorn over a real knowledge base of two documents: one open to
everyone, one to the "hr" group only."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from typing import Any

import httpx
import pytest

from tests.webserver import running_app

pytestmark = pytest.mark.slow

HR = {"X-QA-User": "alice", "X-QA-Groups": "hr,staff"}
STAFF = {"X-QA-User": "bob", "X-QA-Groups": "staff"}


@pytest.fixture(scope="module")
def kb(tmp_path_factory, real_embedder):
    from tests.groups_kb import build

    return build(tmp_path_factory.mktemp("groups-kb"), real_embedder)


def serve(kb: Any, tmp_path_factory: Any, **web: Any) -> Any:
    from qa.serve.live import LiveKnowledgeBase
    from qa.serve.web import create_app
    from qa.serve.webconfig import WebSettings

    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    settings = WebSettings(rate_limit=10_000, **web)
    return running_app(create_app(LiveKnowledgeBase.of(kb), settings, kb.settings))


@pytest.fixture(scope="module")
def signed(kb, tmp_path_factory):
    """Behind a proxy that names the reader and their groups."""
    with serve(
        kb, tmp_path_factory, auth_header="X-QA-User", groups_header="X-QA-Groups",
        trusted_proxies=("127.0.0.1",),
    ) as port:  # fmt: skip
        yield f"http://127.0.0.1:{port}"


def _ask(url: str, question: str, headers: dict[str, str], path: str = "/api/ask") -> Any:
    return httpx.post(f"{url}{path}", json={"question": question}, headers=headers, timeout=30)


def test_each_reader_is_answered_from_their_documents_only(signed):
    hr = _ask(signed, "When are salaries paid?", HR).json()
    assert hr["passages"][0]["doc_id"] == "salaries.md" and not hr["abstained"]
    staff = _ask(signed, "When are salaries paid?", STAFF).json()
    assert all(p["doc_id"] != "salaries.md" for p in staff["passages"])
    widget = _ask(signed, "When are salaries paid?", STAFF, "/widget/ask").json()
    assert "payroll" not in widget["html"] and "Salaries" not in widget["html"]
    seen = httpx.get(f"{signed}/widget/hello", headers=STAFF).json()
    assert "Holidays" in seen["documents"] and "Salaries" not in seen["documents"]
    assert "Salaries" in httpx.get(f"{signed}/widget/hello", headers=HR).json()["documents"]


def test_the_gradio_api_carries_the_groups_too(signed):
    from gradio_client import Client

    for headers, sees in ((HR, True), (STAFF, False)):
        client = Client(signed + "/", headers=headers, verbose=False)
        answer = client.predict("When are salaries paid?", None, api_name="/ask")
        assert any(p["doc_id"] == "salaries.md" for p in answer["passages"]) is sees


def test_without_identity_the_widget_asks_to_sign_in(signed):
    hello = httpx.get(f"{signed}/widget/hello").json()
    assert hello["sign_in"] is True and hello["documents"] == "" and hello["examples"] == []
    refused = _ask(signed, "When are salaries paid?", {}, "/widget/ask")
    assert refused.status_code == 401 and refused.json()["sign_in"] is True
    page = httpx.get(f"{signed}/widget/")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )


def test_identity_headers_from_an_untrusted_peer_are_ignored(kb, tmp_path_factory):
    with serve(
        kb, tmp_path_factory, auth_header="X-QA-User", groups_header="X-QA-Groups",
        trusted_proxies=("10.9.9.9",),
    ) as port:  # fmt: skip
        refused = _ask(f"http://127.0.0.1:{port}", "When are salaries paid?", HR)
        assert refused.status_code == 401


def test_examples_come_from_the_served_knowledge_base(kb, tmp_path_factory):
    from qa.serve.webconfig import DEFAULT_EXAMPLES

    with serve(kb, tmp_path_factory) as port:
        examples = httpx.get(f"http://127.0.0.1:{port}/widget/hello").json()["examples"]
    assert examples and not set(examples) & set(DEFAULT_EXAMPLES)
    assert all("Salaries" not in e for e in examples)  # never names a restricted document
    assert all(not kb.ask(e, groups=[]).abstained for e in examples)
    with serve(kb, tmp_path_factory, examples=("How many days of holiday?",)) as port:
        hello = httpx.get(f"http://127.0.0.1:{port}/widget/hello").json()
    assert hello["examples"] == ["How many days of holiday?"]


# ----- the wiki page the widget sits on -------------------------------------------------------
def _on_page(url: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    body = {"question": "When are salaries paid?", **body}
    return httpx.post(f"{url}/widget/ask", json=body, headers=headers, timeout=30)


def test_the_widget_keeps_to_its_page_within_the_readers_groups(signed):
    on_salaries = _on_page(signed, HR, page="Salaries", scope="only").json()
    assert "payroll" in on_salaries["html"]
    on_holidays = _on_page(signed, HR, page="holidays", scope="only").json()  # titles: any case
    assert "payroll" not in on_holidays["html"] and "Holidays" in on_holidays["html"]
    # Naming a page the reader may not read gives nothing of it, in any scope.
    for scope in ("only", "prefer", "namespace"):
        staff = _on_page(signed, STAFF, page="Salaries", scope=scope).json()
        assert "payroll" not in staff["html"] and "Salaries" not in staff["html"], scope


@pytest.mark.parametrize(
    "body",
    [
        {"page": "Holidays", "scope": "everything"},
        {"page": "x" * 2049},
        {"page": 7},
        {"page": ["Holidays"]},
        {"page": "Holidays", "scope": None},
    ],
)
def test_a_bad_page_or_scope_is_refused(signed, body):
    reply = _on_page(signed, HR, **body)
    assert reply.status_code == 422, reply.text
    assert "payroll" not in reply.text


def test_a_hostile_page_name_is_only_a_name(signed):
    for page in ("<script>alert(1)</script>", "../../etc/passwd", "Salaries\u0000", " ", "%00"):
        reply = _on_page(signed, STAFF, page=page, scope="only")
        assert reply.status_code == 200, reply.text
        assert "<script>alert" not in reply.text and "payroll" not in reply.text


def test_docs_and_redoc_work_offline(kb, tmp_path_factory):
    with serve(kb, tmp_path_factory) as port:
        url = f"http://127.0.0.1:{port}"
        for page in ("/docs", "/redoc"):
            html = httpx.get(url + page).text
            assert "cdn" not in html.lower() and "fonts.googleapis" not in html
            for asset in __import__("re").findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html):
                assert httpx.get(url + asset).status_code == 200, asset


# ----- feedback ----------------------------------------------------------------------------------
def _answer(url: str, headers: dict[str, str]) -> dict[str, Any]:
    reply = _ask(url, "How many days of holiday do employees get?", headers, "/widget/ask")
    assert reply.status_code == 200, reply.text
    return reply.json()


def _feedback(url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/widget/feedback", json=body, headers=headers, timeout=30)


def test_feedback_is_kept_with_question_answer_passages_user_and_time(signed, kb):
    before = len(kb.store.feedback())
    answer = _answer(signed, STAFF)
    assert _feedback(signed, {"token": answer["feedback"], "rating": -1}, STAFF).status_code == 200
    comment = {"token": answer["feedback"], "rating": -1, "comment": "Say how to book it."}
    assert _feedback(signed, comment, STAFF).status_code == 200
    kept = kb.store.feedback()[before:]
    assert len(kept) == 2 and kept[0].user == "bob" and kept[0].at == kept[1].at != ""
    assert kept[0].question == "How many days of holiday do employees get?"
    assert kept[0].passage_ids and kept[0].passage_ids[0].startswith("holidays.md::")
    assert kept[1].comment == "Say how to book it."


def test_feedback_abuse_is_harmless(signed, kb):
    answer = _answer(signed, STAFF)
    token = answer["feedback"]
    before = len(kb.store.feedback())
    payload, signature = token.split(".")
    forged = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["p"] = ["salaries.md::0", "../../etc/passwd"]
    import base64

    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    cases = [
        ({"token": f"{forged_payload}.{signature}", "rating": 1}, STAFF, 403),  # forged passages
        ({"token": token, "rating": 1}, HR, 403),  # another reader's answer
        ({"token": "x.y", "rating": 1}, STAFF, 403),
        ({"token": token, "rating": 5}, STAFF, 422),
        ({"token": token, "rating": 1, "comment": "x" * 1001}, STAFF, 422),  # oversized
        ({"token": token, "rating": 1, "extra": 1}, STAFF, 422),
        ({"token": token, "rating": 1}, {}, 401),
    ]
    for body, headers, status in cases:
        assert _feedback(signed, body, headers).status_code == status, body
    huge = {"token": token, "rating": 1, "comment": "x" * 100_000}
    assert _feedback(signed, huge, STAFF).status_code == 413
    assert len(kb.store.feedback()) == before  # nothing of the above was kept
    # One answer takes a few verdicts (a change of mind, a comment), then no more.
    statuses = [
        _feedback(signed, {"token": token, "rating": 1}, STAFF).status_code for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    # A flood from one reader is cut at 30 a minute, whatever the answers.
    flooder = {"X-QA-User": "mallory", "X-QA-Groups": ""}
    tokens = [_answer(signed, flooder)["feedback"] for _ in range(36)]
    began = time.monotonic()
    replies = [_feedback(signed, {"token": t, "rating": -1}, flooder) for t in tokens]
    refilled = math.ceil((time.monotonic() - began) * 30 / 60)  # the bucket refills as it goes
    codes = [r.status_code for r in replies]
    assert 30 <= codes.count(200) <= 30 + refilled and codes[-1] == 429


def test_feedback_export_writes_csv_and_json(signed, kb, tmp_path):
    from qa.cli import main

    answer = _answer(signed, STAFF)
    _feedback(signed, {"token": answer["feedback"], "rating": -1}, STAFF)
    _feedback(
        signed, {"token": answer["feedback"], "rating": -1, "comment": "=HYPERLINK(1)"}, STAFF
    )
    assert (
        main(["feedback", "export", "--out", str(tmp_path / "f.csv"), "--index", kb.location]) == 0
    )
    with (tmp_path / "f.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["comment"] == "'=HYPERLINK(1)" and rows[-1]["user"] == "bob"
    assert rows[-1]["documents"] == "holidays.md" and rows[-1]["rating"] == "-1"
    assert len([r for r in rows if r["at"] == rows[-1]["at"] and r["user"] == "bob"]) == 1  # folded
    out = tmp_path / "f.json"
    assert main(["feedback", "export", "--out", str(out), "--index", kb.location]) == 0
    data = json.loads(out.read_text())
    assert data[-1]["passage_ids"][0].startswith("holidays.md::") and data[-1]["rating"] == -1
    assert main(["feedback", "export", "--out", str(tmp_path / "no" / "f.csv")]) == 2


def test_a_whole_passage_answer_is_not_shown_twice():
    from qa.serve.render import answer_html
    from qa.types import Answer, Chunk, Passage

    text = "Salaries are paid on the 25th."
    passage = Passage(Chunk("s::0", "s", text, 0, len(text)), 1.0, "S", "s", ((0, len(text)),))
    html = answer_html(Answer("q", text + " [1]", False, (passage,), 0.9, {}))
    assert html.count("Salaries are paid") == 1


def test_a_groups_header_needs_trusted_proxies():
    from qa.serve.webconfig import WebSettings
    from qa.settings import SettingsError

    with pytest.raises(SettingsError, match="trusted_proxies"):
        WebSettings(groups_header="X-QA-Groups")
