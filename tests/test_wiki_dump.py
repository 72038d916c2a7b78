"""MediaWiki XML dumps as a source: pages, URLs, namespaces, access groups, hostile dumps."""

from __future__ import annotations

import bz2
import gzip

import pytest

from qa.cli import main
from qa.indexing.build import index_documents
from qa.indexing.documents import Skipped
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.mediawiki import MAX_PAGE_CHARS, SourceError
from qa.indexing.sources.mediawiki_dump import dump_documents
from qa.knowledge import KnowledgeBase
from qa.settings import Settings, SettingsError
from qa.stores import open_store
from tests.fakes import FakeEmbedder

SITEINFO = """<siteinfo><sitename>Test</sitename><dbname>testwiki</dbname>
<base>{base}</base><case>first-letter</case><namespaces>
<namespace key="0" case="first-letter" /><namespace key="4" case="first-letter">Project</namespace>
<namespace key="100" case="first-letter">Staff</namespace></namespaces></siteinfo>"""


def page(pid: int, title: str, text: str, ns: int = 0, extra: str = "", model="wikitext") -> str:
    from xml.sax.saxutils import escape

    return (
        f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>{pid}</id>{extra}<revision>"
        f"<id>{pid * 10}</id><timestamp>2026-01-01T00:00:00Z</timestamp><contributor>"
        f"<username>A</username><id>1</id></contributor><model>{model}</model>"
        f'<format>text/x-wiki</format><text xml:space="preserve">{escape(text)}</text>'
        "</revision></page>"
    )


def dump(*pages: str, base="https://wiki.example.org/wiki/Main_Page", head="") -> str:
    return (
        f'{head}<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">'
        + SITEINFO.format(base=base)
        + "".join(pages)
        + "</mediawiki>"
    )


PAGES = [
    page(1, "Harbour", "The '''harbour''' opened in 1850.\n== Ships ==\nTugs work there."),
    page(2, "Old harbour", "#REDIRECT [[Harbour]]", extra='<redirect title="Harbour" />'),
    page(3, "Project:Rules", "Be kind to the keepers.", ns=4),
    page(4, "Staff:Payroll", "Salaries are paid on Fridays.", ns=100),
    page(5, "Site.css", "body { color: red }", model="css"),
]


@pytest.fixture
def wiki_dump(tmp_path):
    path = tmp_path / "wiki.xml"
    path.write_text(dump(*PAGES))
    return path


def test_pages_become_documents(wiki_dump):
    docs = list(dump_documents(wiki_dump, progress=False))
    assert [d.title for d in docs] == ["Harbour"]  # main namespace only, no redirect
    (harbour,) = docs
    assert harbour.id == "testwiki:1" and harbour.revision == "10"
    assert harbour.url == "https://wiki.example.org/wiki/Harbour"
    assert harbour.text == "The harbour opened in 1850.\n\nTugs work there."
    assert harbour.sections == ((29, "Ships", "Ships"),)
    chosen = dump_documents(wiki_dump, namespaces="0,project,100", progress=False)
    assert [d.title for d in chosen] == ["Harbour", "Project:Rules", "Staff:Payroll"]
    every = dump_documents(wiki_dump, namespaces="all", base_url="http://w.test/p?title=",
                           progress=False)  # fmt: skip
    assert [d.url for d in every][-1] == "http://w.test/p?title=Staff:Payroll"
    with pytest.raises(SourceError, match="no namespace 'Nowhere'"):
        list(dump_documents(wiki_dump, namespaces="Nowhere", progress=False))


@pytest.mark.parametrize("opener", [bz2.open, gzip.open])
def test_compressed_dumps_stream(tmp_path, opener):
    suffix = ".xml.bz2" if opener is bz2.open else ".xml.gz"
    path = tmp_path / f"wiki{suffix}"
    with opener(path, "wt") as out:
        out.write(dump(*PAGES))
    assert [d.title for d in dump_documents(path, progress=False)] == ["Harbour"]


def test_access_groups_by_namespace_and_two_readers(wiki_dump, tmp_path):
    access = AccessMap.from_json({"namespaces": {"Staff": ["hr"]}})
    store = open_store(tmp_path / "kb")
    docs = dump_documents(wiki_dump, namespaces="all", access=access, progress=False)
    index_documents(store, docs, FakeEmbedder(), Settings(chunk_tokens=40), progress=False)
    kb = KnowledgeBase(store, FakeEmbedder(), Settings())
    question = "When are salaries paid?"
    assert "Staff:Payroll" in {p.title for p in kb.ask(question, groups=["hr"]).passages}
    assert "Staff:Payroll" not in {p.title for p in kb.ask(question, groups=["sales"]).passages}


def test_hostile_dumps(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-PASSWORD")
    # An external entity pointing at a local file: refused, never read.
    xxe = dump(
        page(1, "Leak", "Before &xxe; after"),
        head=f'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file://{secret}">]>',
    )
    for text in (xxe.replace("Before &amp;xxe;", "Before &xxe;"),):
        path = tmp_path / "xxe.xml"
        path.write_text(text)
        try:
            docs = list(dump_documents(path, progress=False))
        except SourceError as error:
            assert "not a readable MediaWiki XML dump" in str(error)
        else:
            assert all("TOPSECRET" not in d.text for d in docs)
    # Billion laughs: expat refuses the amplification.
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + "]>"
    )
    path = tmp_path / "laughs.xml"
    path.write_text(dump(page(1, "Boom", "x &i; y").replace("&amp;i;", "&i;"), head=laughs))
    with pytest.raises(SourceError):
        list(dump_documents(path, progress=False))
    # A javascript: base gives no links; an oversized page is skipped, the rest indexed.
    path = tmp_path / "odd.xml"
    big = "word " * (MAX_PAGE_CHARS // 5 + 1)
    path.write_text(dump(page(1, "Huge", big), page(2, "Fine", "Fine words."),
                         base="javascript:alert(1)//Main_Page"))  # fmt: skip
    skipped: list[Skipped] = []
    docs = list(dump_documents(path, skipped=skipped, progress=False))
    assert [(d.title, d.url) for d in docs] == [("Fine", None)]
    assert "too large" in str(skipped[0])
    # Not a dump at all.
    for name, content in (("bad.xml", "<mediawiki><page>"), ("empty.xml", ""),
                          ("nosite.xml", "<mediawiki></mediawiki>")):  # fmt: skip
        (tmp_path / name).write_text(content)
        with pytest.raises(SourceError):
            list(dump_documents(tmp_path / name, progress=False))


def test_cli_index_dump_and_errors(wiki_dump, tmp_path, capsys):
    kb = tmp_path / "kb"
    code = main(["index", str(wiki_dump), "--out", str(kb), "--quiet", "--namespaces", "0,4",
                 "--base-url", "https://intranet.example.org/w/"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and "indexed 2 document(s)" in out, err
    urls = sorted(d.url for d in open_store(kb).documents())
    assert urls == ["https://intranet.example.org/w/Harbour",
                    "https://intranet.example.org/w/Project:Rules"]  # fmt: skip
    for argv, message in [
        ([str(wiki_dump), "--base-url", "javascript:alert(1)"], "http:// or https://"),
        ([str(tmp_path / "none.xml")], "no usable document"),
        ([str(wiki_dump), "--namespaces", "Nowhere"], "no namespace"),
        ([str(tmp_path), "--namespaces", "0"], "applies to MediaWiki dumps"),
        (["https://wiki.example.org/w/api.php"], "qa sync mediawiki"),
    ]:
        code = main(["index", *argv, "--out", str(tmp_path / "kb2"), "--quiet"])
        _, err = capsys.readouterr()
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)


def test_access_map_file_errors(tmp_path):
    good = tmp_path / "access.toml"
    good.write_text('default = ["staff"]\n[namespaces]\nProject_talk = ["a"]\n102 = ["b"]\n')
    access = AccessMap.load(good)
    assert access.for_namespace(5, "Project talk") == ("a",)
    assert access.for_namespace(102, "Other") == ("b",)
    assert access.for_namespace(0, "") == ("staff",)
    for content, message in [("[namespaces\n", "not valid TOML"), ("x = 1\n", "unknown key"),
                             ('[namespaces]\nA = "hr"\n', "list of group names")]:  # fmt: skip
        good.write_text(content)
        with pytest.raises(SettingsError, match=message):
            AccessMap.load(good)
    with pytest.raises(SettingsError, match="No such file"):
        AccessMap.load(tmp_path / "missing.toml")
