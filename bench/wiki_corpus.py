"""Wiki benchmark inputs: generated wikitext and dumps, and the code child processes run.

Used by bench/wiki_bench.py; each child prints one JSON line of figures.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent

WORDS = (
    "harbour lighthouse keeper engine valve pressure turbine survey river bridge council "
    "budget archive ledger winter summer northern southern copper iron timber granite canal "
    "railway station signal crew captain engineer village market festival school library "
    "museum garden orchard quarry mill furnace boiler compass chart tide storm beacon"
).split()


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(10, 18))]
    return f"The {' '.join(words)} was recorded in {1800 + (n % 220)}."


def page_wikitext(rng: random.Random, n: int) -> str:
    lead = " ".join(sentence(rng, n + k) for k in range(2))
    body = " ".join(sentence(rng, n + k + 7) for k in range(2))
    return (
        f"{{{{Infobox place|name=Place {n}}}}}\n'''Place {n}''' is a [[harbour]] town. {lead}"
        f"<ref>Survey {n}.</ref>\n\n== History ==\n{body} See [[Place {n + 1}|the next one]].\n\n"
        f"[[Category:Places]]\n"
    )


def write_dump(path: Path, pages: Iterable[tuple[str, str]], dbname: str = "bench") -> None:
    """A dump written page by page: the writer holds one page at a time, whatever the count."""
    with open(path, "w", encoding="utf-8") as out:
        head = dump_xml([("\0", "")], dbname).partition("<page>")[0]
        out.write(head)
        for n, (title, text) in enumerate(pages, start=1):
            out.write(_page_xml(n, title, text))
        out.write("\n</mediawiki>")


def _page_xml(n: int, title: str, text: str) -> str:
    return (
        f"<page><title>{escape(title)}</title><ns>0</ns><id>{n}</id><revision><id>{n}</id>"
        "<timestamp>2026-01-01T00:00:00Z</timestamp><contributor><username>Bench"
        "</username><id>1</id></contributor><model>wikitext</model><format>text/x-wiki"
        f'</format><text xml:space="preserve">{escape(text)}</text></revision></page>'
    )


PARSE = """
import json, os, resource, sys, time
from qa.indexing.sources.mediawiki_dump import dump_documents
marks, began, cpu0 = {{}}, time.perf_counter(), sum(os.times()[:2])
for n, doc in enumerate(dump_documents({dump!r}, progress=False), 1):
    if n in (100, 1000, 10000, 100000):
        marks[n] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({{"pages": n, "seconds": time.perf_counter() - began,
                  "cpu": sum(os.times()[:2]) - cpu0, "peak_rss_mb_after_pages": marks}}))
"""


RATIO = """
import json, os, statistics, time
import torch
from qa.embedding import get_embedder
from qa.indexing.build import chunk_budget, index_documents
from qa.indexing.chunking import chunk_document
from qa.indexing.sources.mediawiki_dump import dump_documents
from qa.settings import Settings
from qa.stores import open_store
settings = Settings()
embedder = get_embedder().load()
embedder.encode(["warm up"])
from qa.indexing import tagging
tagging.tag(["Warm up the tagger, so its load is not timed."])
texts = []
for doc in dump_documents({dump!r}, progress=False):
    chunks, spans = chunk_document(doc, embedder.count_tokens, chunk_budget(embedder, settings),
                                   settings.chunk_overlap_sentences)
    texts.extend(doc.text[a:b] for s in spans for a, b in s)
unique = list(dict.fromkeys(texts))
raw, build = [], []
for n in range({rounds}):  # alternated, so load from other processes hits both alike
    torch.set_num_threads(os.cpu_count())  # as model.encode runs in a fresh process
    t = time.perf_counter()
    embedder.model.encode(unique, batch_size=settings.batch_size)
    raw.append(time.perf_counter() - t)
    t = time.perf_counter()
    index_documents(open_store({kb!r} + str(n)), dump_documents({dump!r}, progress=False),
                    embedder, settings, progress=False)
    build.append(time.perf_counter() - t)
print(json.dumps({{"raw": raw, "build": build, "sentences": len(unique),
                  "ratio": statistics.median(raw) / statistics.median(build)}}))
"""

FAKE_STREAM = """
import json, os, resource, time
import qa.knowledge
from tests.fakes import FakeEmbedder
from qa.indexing import tagging
tagging.tag(["Warm up the tagger once."])
fake = FakeEmbedder(dim=384, max_tokens=256)
qa.knowledge.get_embedder = lambda model="": fake
from qa.cli import main
import qa.stores.embedded.commit as store_commit
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
marks = {{}}
commit = store_commit.save
def save(*args, **kwargs):  # peak RSS while streaming, then through the store's commit
    marks["streaming_peak_rss_mb"] = rss()
    try:
        return commit(*args, **kwargs)
    finally:
        marks["commit_peak_rss_mb"] = rss()
store_commit.save = save
base = rss()
t = time.perf_counter()
code = main(["index", {dump!r}, "--out", {kb!r}, "--quiet"])
print(json.dumps({{"code": code, "seconds": time.perf_counter() - t, "baseline_rss_mb": base,
                  "peak_rss_mb": rss(), **marks}}))
"""


def dump_xml(pages: list[tuple[str, str]], dbname: str = "bench") -> str:
    out = [
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">',
        f"<siteinfo><sitename>Bench</sitename><dbname>{dbname}</dbname>"
        "<base>http://wiki.test/index.php/Main_Page</base><case>first-letter</case>"
        '<namespaces><namespace key="0" case="first-letter" /></namespaces></siteinfo>',
    ]
    for n, (title, text) in enumerate(pages, start=1):
        out.append(
            f"<page><title>{escape(title)}</title><ns>0</ns><id>{n}</id><revision><id>{n}</id>"
            "<timestamp>2026-01-01T00:00:00Z</timestamp><contributor><username>Bench"
            "</username><id>1</id></contributor><model>wikitext</model><format>text/x-wiki"
            f'</format><text xml:space="preserve">{escape(text)}</text></revision></page>'
        )
    out.append("</mediawiki>")
    return "\n".join(out)


def child(code: str) -> dict:
    """Run `code` in a fresh Python; it prints one JSON line; add the child's peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


RSS = "import resource; rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
# CPU seconds of the process (all threads) and of its ended children (the build's helper):
# other work on a shared machine stretches wall time, much less CPU time.
CPU = (
    "import os; _t = os.times(); cpu = _t.user + _t.system + _t.children_user + _t.children_system"
)
# Peak RSS of the process's ended children: the build's helper process (its RSS counts the
# pages it shares with the build, the model's among them).
CHILD_RSS = (
    "import resource; child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024"
)

INDEX = """
import json, time, sys
from qa.embedding import get_embedder
from qa.cli import main
get_embedder().load().encode(["warm up"])  # the model loads before the clock starts
{rss}
model_rss = rss
{cpu}
cpu0 = cpu
t = time.perf_counter()
code = main(["index", {dump!r}, "--out", {kb!r}, "--quiet"])
seconds = time.perf_counter() - t
{rss}
{cpu}
{child_rss}
print(json.dumps({{"code": code, "seconds": seconds, "cpu": cpu - cpu0, "rss_mb": rss,
                  "model_rss_mb": model_rss, "helper_rss_mb": child_rss}}))
"""

RAW = """
import json, os, time
import torch
from qa.embedding import get_embedder
from qa.indexing.build import chunk_budget, encode
from qa.indexing.chunking import chunk_document
from qa.indexing.sources.mediawiki_dump import dump_documents
from qa.settings import Settings
settings = Settings()
embedder = get_embedder().load()
embedder.encode(["warm up"])
{rss}
model_rss = rss
texts = []
for doc in dump_documents({dump!r}, progress=False):
    chunks, spans = chunk_document(doc, embedder.count_tokens, chunk_budget(embedder, settings),
                                   settings.chunk_overlap_sentences)
    texts.extend(doc.text[a:b] for s in spans for a, b in s)
unique = list(dict.fromkeys(texts))
{cpu}
cpu0 = cpu
torch.set_num_threads(os.cpu_count())  # the warm-up above left one thread, for one text
t = time.perf_counter()
embedder.model.encode(unique, batch_size=settings.batch_size)
seconds = time.perf_counter() - t
{cpu}
print(json.dumps({{"seconds": seconds, "cpu": cpu - cpu0, "sentences": len(unique),
                  "model_rss_mb": model_rss}}))
"""


# A sync's store side at scale, without a wiki: what `qa sync` does after reading the changed
# pages from the API (read the store's document list, embed the changed page, commit), on the
# knowledge base FAKE_STREAM built. The first commit edits one page, the second deletes one.
STORE_SYNC = """
import dataclasses, itertools, json, pathlib, time
import qa.knowledge
from tests.fakes import FakeEmbedder
from qa.indexing import tagging
from qa.indexing.build import document_hash, embed_batch, store_info
from qa.indexing.sources.mediawiki_dump import dump_documents
from qa.knowledge import KnowledgeBase
from qa.settings import Settings
from qa.stores import open_store
from qa.stores.embedded.manifest import read_manifest
tagging.tag(["Warm up the tagger once."])
fake = FakeEmbedder(dim=384, max_tokens=256)
settings = Settings()
kb = pathlib.Path({kb!r})
edited, deleted = itertools.islice(dump_documents({dump!r}, progress=False), {pick}, {pick} + 2)
edited = dataclasses.replace(
    edited, text=edited.text + " The keeper Zebulon rebuilt the granite quay in one winter.")
base = {{e["name"] for e in read_manifest(kb).files.values()}}

def commit(edit=None, delete=None):
    fake.encoded.clear()
    t = time.perf_counter()
    store = open_store(kb)
    stored = {{d.id: d.sha256 for d in store.documents()}}
    listed = time.perf_counter() - t
    with store.writer(store_info(fake, settings)) as writer:
        if edit is not None:
            for update in embed_batch([(edit, document_hash(edit))], fake, settings, None):
                writer.upsert(update)
        if delete is not None:
            writer.delete(delete)
    return {{"seconds": time.perf_counter() - t, "document_list_seconds": listed,
            "documents": len(stored), "sentences_embedded": len(fake.encoded),
            "pages_embedded": 1 if edit is not None else 0}}

edit = commit(edit=edited)
delete = commit(delete=deleted.id)
manifest = read_manifest(kb)
t = time.perf_counter()
kb_now = KnowledgeBase.load(kb, embedder=fake)
reopen = time.perf_counter() - t
found = kb_now.ask("Who rebuilt the granite quay?").passages
gone = kb_now.ask(deleted.title + " " + deleted.text[:200]).passages
print(json.dumps({{"edit": edit, "delete": delete, "reopen_seconds": reopen,
                  "deltas": len(getattr(manifest, "deltas", ())),
                  "dead": len(getattr(manifest, "dead", ())),
                  "base_files_kept": base == {{e["name"] for e in manifest.files.values()}},
                  "edited_page_answers": bool(found) and found[0].chunk.doc_id == edited.id,
                  "deleted_page_in_answers": any(p.chunk.doc_id == deleted.id for p in gone)}}))
"""
