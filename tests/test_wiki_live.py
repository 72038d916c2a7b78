"""`qa sync mediawiki` against a real MediaWiki (Debian's package, php -S) and the real model.

Pages are created, edited, moved and deleted through the wiki's own API; after each change a
sync runs and the answers are checked. The wiki is private (reading needs a login), and one
namespace is restricted to a group: a reader outside it never sees those pages.
"""

from __future__ import annotations

import time

import httpx
import pytest

from qa.cli import main
from qa.indexing.sources import sync as sync_module
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.mediawiki import SourceError
from qa.indexing.sources.mediawiki_live import WikiClient
from qa.indexing.sources.sync import state_key, sync_mediawiki
from qa.knowledge import KnowledgeBase
from qa.settings import Settings
from qa.stores import open_store
from tests.wikiserver import Wiki, mediawiki

pytestmark = pytest.mark.slow

LIGHTHOUSE = """The '''Harbour Point lighthouse''' guards the cape.<ref>Coast survey, 1990.</ref>

== History ==
The Harbour Point lighthouse was built in 1887 by the engineer [[Martha Quill]].
{{Infobox lighthouse|height=31 m}}

== Café & keepers ==
Its keepers brewed coffee for passing fishermen every winter morning.

== Notes ==
The lamp burned paraffin.

== Notes ==
A second notes section, as wikis have.
"""
VOLCANO = "Mount Ember is a dormant volcano whose last eruption buried the village of Ashby."
PAYROLL = "Salaries are paid on the last Friday of each month by the finance office."
ACCESS = AccessMap.from_json({"namespaces": {"Staff": ["staff"]}})


@pytest.fixture(scope="module")
def wiki(tmp_path_factory):
    with mediawiki(tmp_path_factory.mktemp("wiki")) as served:
        yield served


def changes(wiki: Wiki) -> int:
    """The id of the wiki's newest recent-change entry (entries land after the edit; a
    deletion removes the page's own entries, so counting them would not do)."""
    with WikiClient(wiki.api) as client:
        client.login(wiki.bot_user, wiki.bot_password)
        return max((int(c["rcid"]) for c in client.recent_changes("2000-01-01T00:00:00Z")),
                   default=0)  # fmt: skip


def settle(wiki: Wiki, before: int, expected: int) -> None:
    """Wait until the wiki has logged `expected` more changes than `before`."""
    deadline = time.monotonic() + 20
    while changes(wiki) < before + expected:
        assert time.monotonic() < deadline, "the wiki never logged the change"
        time.sleep(0.1)


def run_sync(wiki: Wiki, kb, embedder, **options):
    store = open_store(kb)
    options.setdefault("access", ACCESS)
    with WikiClient(wiki.api) as client:
        client.login(wiki.bot_user, wiki.bot_password)
        return sync_mediawiki(store, client, embedder, Settings(), progress=False, **options)


def ask(kb, embedder, question: str, groups=("staff",)):
    base = KnowledgeBase.load(kb, embedder=embedder)
    try:
        return base.ask(question, groups=list(groups))
    finally:
        base.close()


def titles(answer) -> set[str]:
    return {p.title for p in answer.passages}


def test_private_wiki_needs_a_login(wiki):
    with WikiClient(wiki.api) as client, pytest.raises(SourceError, match="log in"):
        client.site()
    with WikiClient(wiki.api) as client, pytest.raises(SourceError, match="cannot log in"):
        client.login("Admin@qa", "0" * 32)


def test_create_edit_move_delete_restrict(wiki, tmp_path, real_embedder):
    editor = wiki.editor()
    kb = tmp_path / "kb"
    before = changes(wiki)
    editor.edit("Lighthouse keeping", LIGHTHOUSE)
    editor.edit("Mount Ember", VOLCANO)
    editor.edit("Staff:Payroll", PAYROLL)
    editor.edit("Old lighthouse", "#REDIRECT [[Lighthouse keeping]]")
    settle(wiki, before, 4)

    # First sync: every page of the chosen namespaces; redirects are not documents.
    report = run_sync(wiki, kb, real_embedder, namespaces="0,Staff")
    assert report.full and report.embedded == 4  # Main Page, lighthouse, volcano, payroll
    answer = ask(kb, real_embedder, "When was the Harbour Point lighthouse built?")
    assert "1887" in answer.text and not answer.abstained
    top = answer.passages[0]
    assert top.title == "Lighthouse keeping" and top.section == "History"
    assert top.url == wiki.api.replace("api.php", "index.php/Lighthouse_keeping#History")
    assert "Old lighthouse" not in {d.title for d in open_store(kb).documents()}
    for passage in answer.passages:  # wikitext never reaches a passage
        for mark in ("{{", "[[", "<ref", "'''", "==", "}}"):
            assert mark not in passage.chunk.text

    # The anchors are the wiki's own (its parser's section list).
    documents = {d.title: d for d in open_store(kb).documents()}
    ours = [anchor for _, _, anchor in documents["Lighthouse keeping"].sections]
    theirs = [s["anchor"] for s in editor.sections("Lighthouse keeping")]
    assert [httpx.URL("http://x/#" + a).fragment for a in ours] == theirs

    # Access follows the namespace: a reader outside "staff" never sees the payroll page.
    question = "When are salaries paid?"
    assert "Staff:Payroll" in titles(ask(kb, real_embedder, question, groups=["staff"]))
    assert "Staff:Payroll" not in titles(ask(kb, real_embedder, question, groups=["sales"]))

    # A run with no change commits nothing and loads no model; one that forgets the groups
    # file keeps the mapping the last run was given (it must not open the restricted pages).
    again = run_sync(wiki, kb, real_embedder, access=None)
    assert not again.full and again.embedded == 0 and again.removed == 0
    payroll = next(d for d in open_store(kb).documents() if d.title == "Staff:Payroll")
    assert payroll.groups == ("staff",)

    # An edit: only that page is re-embedded, and the answer follows it.
    before = changes(wiki)
    editor.edit("Lighthouse keeping", LIGHTHOUSE.replace("1887", "1902"))
    settle(wiki, before, 1)
    report = run_sync(wiki, kb, real_embedder)
    assert (report.full, report.embedded, report.removed) == (False, 1, 0)
    answer = ask(kb, real_embedder, "When was the Harbour Point lighthouse built?")
    assert "1902" in answer.text and "1887" not in answer.text

    # A move: the same document, renamed, its citations pointing at the new title.
    lighthouse_id = documents["Lighthouse keeping"].id
    before = changes(wiki)
    editor.move("Lighthouse keeping", "Harbour Point Lighthouse")
    settle(wiki, before, 1)
    report = run_sync(wiki, kb, real_embedder)
    assert report.renamed == 1 and report.removed == 0
    moved = {d.id: d for d in open_store(kb).documents()}[lighthouse_id]
    assert moved.title == "Harbour Point Lighthouse"
    answer = ask(kb, real_embedder, "When was the Harbour Point lighthouse built?")
    assert answer.passages[0].url.endswith("/Harbour_Point_Lighthouse#History")

    # A deletion: the page's passages are gone from answers at once.
    assert "Mount Ember" in titles(ask(kb, real_embedder, "Which village did Mount Ember bury?"))
    before = changes(wiki)
    editor.delete("Mount Ember")
    settle(wiki, before, 1)
    report = run_sync(wiki, kb, real_embedder)
    assert report.removed == 1
    assert "Mount Ember" not in titles(
        ask(kb, real_embedder, "Which village did Mount Ember bury?")
    )
    editor.close()


def test_an_interrupted_sync_leaves_the_knowledge_base_as_it_was(wiki, tmp_path, real_embedder,
                                                                   monkeypatch):  # fmt: skip
    editor = wiki.editor()
    kb = tmp_path / "kb"
    before = changes(wiki)
    editor.edit("Tide table", "High tide at Harbour Point is at six in the morning.")
    settle(wiki, before, 1)
    run_sync(wiki, kb, real_embedder)
    key = state_key(_site_of(wiki))
    position = open_store(kb).state(key)["position"]

    before = changes(wiki)
    editor.edit("Tide table", "High tide at Harbour Point is at nine in the evening.")
    settle(wiki, before, 1)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt("the machine went down mid-sync")

    monkeypatch.setattr(sync_module, "embed_batch", broken)
    with pytest.raises(KeyboardInterrupt):
        run_sync(wiki, kb, real_embedder)
    assert open_store(kb).state(key)["position"] == position
    assert "six" in ask(kb, real_embedder, "When is high tide at Harbour Point?").text
    monkeypatch.undo()

    report = run_sync(wiki, kb, real_embedder)  # the next run completes it
    assert report.embedded == 1
    assert "nine" in ask(kb, real_embedder, "When is high tide at Harbour Point?").text
    editor.close()


def _site_of(wiki: Wiki):
    with WikiClient(wiki.api) as client:
        client.login(wiki.bot_user, wiki.bot_password)
        return client.site()[0]


def test_cli_sync_and_its_errors(wiki, tmp_path, capsys, monkeypatch):
    kb = str(tmp_path / "kb")
    monkeypatch.setenv("QA_WIKI_PASSWORD", wiki.bot_password)
    code = main(["sync", "mediawiki", wiki.api, "--out", kb, "--user", wiki.bot_user, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0 and "synced" in out and "full sync" in out, err
    code = main(["sync", "mediawiki", wiki.api, "--out", kb, "--user", wiki.bot_user, "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0 and "recent change" in out

    for argv, message in [
        (["sync", "mediawiki", wiki.api, "--out", kb], "readapidenied"),  # no login
        (["sync", "mediawiki", "ftp://wiki.test/api.php", "--out", kb], "http:// or https://"),
        (
            [
                "sync",
                "mediawiki",
                wiki.api.replace("api.php", "index.php"),
                "--out",
                kb,
                "--user",
                wiki.bot_user,
            ],
            "API's JSON",
        ),
        (
            [
                "sync",
                "mediawiki",
                wiki.api,
                "--out",
                kb,
                "--user",
                wiki.bot_user,
                "--namespaces",
                "Nowhere",
            ],
            "no namespace 'Nowhere'",
        ),
        (["sync", "mediawiki", wiki.api], "say where to write"),
    ]:
        code = main([*argv, "--quiet"])
        _, err = capsys.readouterr()
        assert code == 2, argv
        assert err.startswith("qa: error: ") and message in err and err.count("\n") == 1, err
    monkeypatch.delenv("QA_WIKI_PASSWORD")
    code = main(["sync", "mediawiki", wiki.api, "--out", kb, "--user", wiki.bot_user])
    assert code == 2 and "QA_WIKI_PASSWORD" in capsys.readouterr().err


def test_a_dump_then_live_sync_into_postgres(wiki, tmp_path, pg_schema_url, real_embedder):
    """A knowledge base built from the wiki's dump is kept in sync live, in PostgreSQL: the
    pages carry the same ids and text, so the first sync embeds nothing."""
    from qa.indexing.build import index_documents
    from qa.indexing.sources.mediawiki_dump import dump_documents

    editor = wiki.editor()
    before = changes(wiki)
    editor.edit("Ferry timetable", "The first ferry to Gull Island leaves at seven.")
    settle(wiki, before, 1)
    dump = tmp_path / "wiki.xml"
    dump.write_text(wiki.maintenance("dumpBackup.php", "--current", "--quiet"))
    store = open_store(pg_schema_url)
    documents = dump_documents(dump, access=ACCESS, progress=False)
    index_documents(store, documents, real_embedder, Settings(), progress=False)
    built = len(store.documents())

    report = run_sync(wiki, pg_schema_url, real_embedder)
    assert report.full and report.embedded == 0 and report.reused == built

    before = changes(wiki)
    editor.edit("Ferry timetable", "The first ferry to Gull Island leaves at eight.")
    settle(wiki, before, 1)
    report = run_sync(wiki, pg_schema_url, real_embedder)
    assert (report.full, report.embedded) == (False, 1)
    answer = ask(pg_schema_url, real_embedder, "When does the first ferry to Gull Island leave?")
    texts = [p.chunk.text for p in answer.passages if p.title == "Ferry timetable"]
    assert texts and "eight" in texts[0] and "seven" not in " ".join(texts)
    editor.close()
