"""Wiki sources, measured: dump indexing speed and memory, sync cost, answer quality.

    python bench/wiki_bench.py [--pages 10000] [--out bench/RESULTS_WIKI.json]

Everything large is built in a temporary folder and removed: a generated wiki of N pages is
imported into a real MediaWiki (Debian's package, as in the tests), exported again with
dumpBackup.php, indexed from that dump in a child process (its peak RSS is read from the
kernel), then synced live; one page is edited and one deleted, and each sync is timed. Last,
the SQuAD articles become a dump (one page per article, one section per paragraph) and are
evaluated like `qa eval` evaluates the plain-text files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from wiki_corpus import (
    CHILD_RSS,
    CPU,
    FAKE_STREAM,
    INDEX,
    PARSE,
    RATIO,
    RAW,
    REPO,
    RSS,
    STORE_SYNC,
    child,
    dump_xml,
    page_wikitext,
    write_dump,
)

sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def bench_ratio(pages: int, rounds: int, tmp: Path) -> dict:
    """Dump indexing against raw model.encode of the same sentences, alternated in one process."""
    rng = random.Random(13)
    dump = tmp / "ratio.xml"
    write_dump(dump, ((f"Hamlet {n}", page_wikitext(rng, n)) for n in range(pages)))
    result = child(RATIO.format(dump=str(dump), kb=str(tmp / "ratio-kb"), rounds=rounds))
    median = sorted(result["build"])[len(result["build"]) // 2]
    return {
        "pages": pages,
        "sentences": result["sentences"],
        "raw_encode_seconds": [round(x, 1) for x in result["raw"]],
        "index_seconds": [round(x, 1) for x in result["build"]],
        "pages_per_second": round(pages / median, 2),
        "ratio_to_raw_encode": round(result["ratio"], 3),
    }


def bench_fake_stream(pages: int, tmp: Path) -> dict:
    """`qa index` of a dump of `pages` pages with a 384-d fake embedder (no model time): the
    memory the pipeline itself holds above its imports while it streams."""
    rng = random.Random(17)
    dump = tmp / "fake.xml"
    write_dump(dump, ((f"Town {n}", page_wikitext(rng, n)) for n in range(pages)))
    result = child(FAKE_STREAM.format(dump=str(dump), kb=str(tmp / "fake-kb")))
    return {
        "pages": pages,
        "dump_mb": round(dump.stat().st_size / 2**20, 1),
        "seconds": round(result["seconds"], 1),
        "baseline_rss_mb": round(result["baseline_rss_mb"]),
        "peak_rss_mb": round(result["peak_rss_mb"]),
        "above_baseline_mb": round(result["peak_rss_mb"] - result["baseline_rss_mb"]),
        # The peak until the store's commit began (every page read, embedded and spilled),
        # and through the commit (the rest of the peak, if any: reopening the index after).
        **{k: round(result[k]) for k in ("streaming_peak_rss_mb", "commit_peak_rss_mb")},
    }


def bench_store_sync(pages: int, tmp: Path) -> dict:
    """A one-page edit and a one-page delete committed to the knowledge base of `pages` pages
    that bench_fake_stream built (built here if that stage did not run): the store's share of
    a sync, without a wiki (bench_sync_at_scale times the whole sync through MediaWiki)."""
    dump, kb = tmp / "fake.xml", tmp / "fake-kb"
    if not (kb / "manifest.json").exists():
        bench_fake_stream(pages, tmp)
    code = STORE_SYNC.format(dump=str(dump), kb=str(kb), pick=min(4242, pages - 2))
    return {"pages": pages, **child(code)}


def bench_sync_at_scale(pages: int, tmp: Path) -> dict:
    """A live wiki of `pages` pages synced with a 384-d fake embedder (so 10,000 pages fit in a
    run); then one page is edited and one deleted and each sync is timed. The real model's
    share of a one-page sync is its few sentences (tens of milliseconds)."""
    import qa.knowledge
    from qa.indexing.sources.mediawiki_live import WikiClient
    from qa.indexing.sources.sync import sync_mediawiki
    from qa.settings import Settings
    from qa.stores import open_store
    from tests.fakes import FakeEmbedder
    from tests.wikiserver import mediawiki

    tmp.mkdir(parents=True, exist_ok=True)
    rng = random.Random(19)
    generated = tmp / "scale.xml"
    write_dump(generated, ((f"Parish {n}", page_wikitext(rng, n)) for n in range(pages)))
    fake = FakeEmbedder(dim=384, max_tokens=256)
    qa.knowledge.get_embedder = lambda model="": fake  # type: ignore[assignment]
    results: dict = {"pages": pages}
    with mediawiki(tmp / "wiki", private=False) as wiki:
        began = time.perf_counter()
        wiki.maintenance("importDump.php", "--no-updates", str(generated), timeout=3600)
        results["import_seconds"] = round(time.perf_counter() - began, 1)
        kb = tmp / "kb"

        def sync() -> tuple[float, object]:
            began = time.perf_counter()
            with WikiClient(wiki.api) as client:
                report = sync_mediawiki(open_store(kb), client, fake, Settings(), progress=False)
            return time.perf_counter() - began, report

        seconds, report = sync()
        results["full_sync"] = {"seconds": round(seconds, 1), "embedded": report.embedded}
        seconds, report = sync()
        results["sync_no_change"] = {"seconds": round(seconds, 2), "embedded": report.embedded}
        editor = wiki.editor()
        editor.edit("Parish 4242", page_wikitext(random.Random(2), 9999) + "\nA new sentence.")
        time.sleep(1.5)
        fake.encoded.clear()
        seconds, report = sync()
        results["sync_after_one_edit"] = {"seconds": round(seconds, 2),
                                          "embedded": report.embedded,
                                          "sentences_embedded": len(fake.encoded)}  # fmt: skip
        editor.delete("Parish 4243")
        time.sleep(1.5)
        seconds, report = sync()
        results["sync_after_one_delete"] = {"seconds": round(seconds, 2),
                                            "removed": report.removed}  # fmt: skip
        editor.close()
    return results


def bench_parse_stream(pages: int, tmp: Path) -> dict:
    """Read and convert a dump of `pages` pages, no model: memory after 100, 1k, 10k pages."""
    rng = random.Random(5)
    dump = tmp / "parse.xml"
    write_dump(dump, ((f"Village {n}", page_wikitext(rng, n)) for n in range(pages)))
    result = child(PARSE.format(dump=str(dump)))
    result["dump_mb"] = round(dump.stat().st_size / 2**20, 1)
    result["pages_per_cpu_second"] = round(result["pages"] / result["cpu"])
    dump.unlink()
    return result


def bench_dump_and_sync(pages: int, tmp: Path) -> dict:
    from qa.embedding import get_embedder
    from qa.indexing.sources.mediawiki_live import WikiClient
    from qa.indexing.sources.sync import sync_mediawiki
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings
    from qa.stores import open_store
    from tests.wikiserver import mediawiki

    rng = random.Random(7)
    tmp.mkdir(parents=True, exist_ok=True)
    generated = tmp / "generated.xml"
    generated.write_text(dump_xml([(f"Place {n}", page_wikitext(rng, n)) for n in range(pages)]))
    results: dict = {"pages": pages}
    with mediawiki(tmp / "wiki", private=False) as wiki:
        began = time.perf_counter()
        wiki.maintenance("importDump.php", "--no-updates", str(generated), timeout=3600)
        results["import_seconds"] = round(time.perf_counter() - began, 1)
        dump = tmp / "wiki.xml"
        dump.write_text(wiki.maintenance("dumpBackup.php", "--current", "--quiet"))
        results["dump_mb"] = round(dump.stat().st_size / 2**20, 1)
        kb = tmp / "kb"
        index = child(
            INDEX.format(dump=str(dump), kb=str(kb), rss=RSS, cpu=CPU, child_rss=CHILD_RSS)
        )
        raw = child(RAW.format(dump=str(dump), rss=RSS, cpu=CPU))
        documents = len(open_store(kb).documents())
        results.update(
            documents=documents,
            index_seconds=round(index["seconds"], 1),
            pages_per_second=round(documents / index["seconds"], 1),
            peak_rss_mb=round(index["rss_mb"]),
            model_rss_mb=round(index["model_rss_mb"]),
            index_cpu_seconds=round(index["cpu"], 1),
            raw_encode_seconds=round(raw["seconds"], 1),
            raw_encode_cpu_seconds=round(raw["cpu"], 1),
            sentences=raw["sentences"],
            ratio_to_raw_encode_wall=round(raw["seconds"] / index["seconds"], 3),
            ratio_to_raw_encode_cpu=round(raw["cpu"] / index["cpu"], 3),
        )
        embedder = get_embedder().load()

        def sync() -> tuple[float, object]:
            began = time.perf_counter()
            with WikiClient(wiki.api) as client:
                report = sync_mediawiki(open_store(kb), client, embedder, Settings(),
                                        progress=False)  # fmt: skip
            return time.perf_counter() - began, report

        seconds, report = sync()  # the dump's pages are the wiki's: nothing to re-embed
        results["first_sync"] = {"seconds": round(seconds, 1), "embedded": report.embedded,
                                 "unchanged": report.reused}  # fmt: skip
        editor = wiki.editor()
        editor.edit("Place 42", page_wikitext(random.Random(1), 4242) + "\nA new sentence.")
        time.sleep(1.5)
        seconds, report = sync()
        results["sync_after_one_edit"] = {"seconds": round(seconds, 2),
                                          "embedded": report.embedded}  # fmt: skip
        editor.delete("Place 43")
        time.sleep(1.5)
        seconds, report = sync()
        kb_now = KnowledgeBase.load(kb, embedder=embedder)
        answer = kb_now.ask("Place 43 harbour town")
        results["sync_after_one_delete"] = {
            "seconds": round(seconds, 2),
            "removed": report.removed,
            "deleted_page_in_answers": any(p.title == "Place 43" for p in answer.passages),
        }
        editor.close()
    return results


def bench_stream_memory(pages: int, tmp: Path) -> dict:
    """Index a generated dump of `pages` pages in a child process: time and peak RSS."""
    rng = random.Random(11)
    dump = tmp / "big.xml"
    dump.write_text(dump_xml([(f"Town {n}", page_wikitext(rng, n)) for n in range(pages)]))
    kb = tmp / "big-kb"
    index = child(INDEX.format(dump=str(dump), kb=str(kb), rss=RSS, cpu=CPU, child_rss=CHILD_RSS))
    return {
        "pages": pages,
        "dump_mb": round(dump.stat().st_size / 2**20, 1),
        "index_seconds": round(index["seconds"], 1),
        "index_cpu_seconds": round(index["cpu"], 1),
        "pages_per_second": round(pages / index["seconds"], 1),
        "model_rss_mb": round(index["model_rss_mb"]),
        "peak_rss_mb": round(index["rss_mb"]),
        "helper_peak_rss_mb": round(index["helper_rss_mb"]),
    }


def bench_squad(tmp: Path) -> dict:
    from qa.embedding import get_embedder
    from qa.eval import evaluate
    from qa.indexing.build import index_documents
    from qa.indexing.sources.mediawiki_dump import dump_documents
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings
    from qa.stores import open_store

    settings = Settings().with_overrides(top_k=10)
    embedder = get_embedder().load()
    plain = evaluate.run(evaluate.SQUAD if hasattr(evaluate, "SQUAD") else
                         REPO / "tests/data/squad2-dev-3-articles.json", Settings(),
                         embedder)["hybrid"][0]["overall"]  # fmt: skip
    raw = json.loads((REPO / "tests/data/squad2-dev-3-articles.json").read_text())
    outcomes = []
    for n, (entry, article) in enumerate(
        zip(
            raw["data"],
            evaluate.load_squad(REPO / "tests/data/squad2-dev-3-articles.json"),
            strict=True,
        )
    ):
        paragraphs = [p["context"] for p in entry["paragraphs"]]
        wikitext = "\n\n".join(f"== Paragraph {i + 1} ==\n{p}" for i, p in enumerate(paragraphs))
        dump = tmp / f"squad{n}.xml"
        dump.write_text(dump_xml([(article.title.replace("_", " "), wikitext)]))
        store = open_store(tmp / f"squad{n}")
        index_documents(store, dump_documents(dump, progress=False), embedder, settings,
                        progress=False)  # fmt: skip
        document = store.documents()[0]
        (page,) = dump_documents(dump, progress=False)
        starts = [s[0] for s in document.sections]
        # Gold spans, moved from the plain text's offsets to the page's: paragraph by paragraph.
        plain_starts, at = [], 0
        for p in paragraphs:
            plain_starts.append(at)
            at += len(p) + 2
        moved = []
        for q in article.questions:
            spans = []
            for a, b in q.spans:
                i = max(k for k, s in enumerate(plain_starts) if s <= a)
                local = page.text.find(article.text[a:b], starts[i])
                spans.append((local, local + b - a) if local >= 0 else (-1, -1))
            moved.append(evaluate.Question(q.id, q.text, tuple(spans), q.answers))
        kb = KnowledgeBase(store, embedder, settings)
        outcomes += evaluate.evaluate_article(
            kb, evaluate.Article(article.title, page.text, tuple(moved))
        )
    wiki = evaluate.summarize(outcomes)
    keys = ("hit@1", "hit@3", "answer_hit")
    return {"plain": {k: plain[k] for k in keys}, "wiki_dump": {k: wiki[k] for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1_000, help="pages of the live wiki")
    parser.add_argument("--stream-pages", type=int, default=10_000, help="pages of the big dump")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS_WIKI.json"))
    parser.add_argument("--skip-squad", action="store_true")
    parser.add_argument("--parse-pages", type=int, default=100_000, help="pages, no model")
    parser.add_argument("--parse-only", action="store_true", help="only the no-model stage")
    parser.add_argument("--ratio-pages", type=int, default=200, help="pages, alternated runs")
    parser.add_argument("--rounds", type=int, default=5, help="alternated runs of each")
    parser.add_argument("--fake-stream-pages", type=int, default=10_000, help="fake-model pages")
    parser.add_argument(
        "--store-sync-pages", type=int, default=10_000, help="one-page commits, no wiki"
    )
    parser.add_argument("--stages-only", action="store_true", help="stop before the live wiki")
    parser.add_argument("--sync-pages", type=int, default=10_000, help="fake-model live wiki")
    args = parser.parse_args()
    results = {"cpu_cores": os.cpu_count()}
    results["load_average_at_start"] = os.getloadavg()[0]

    def save() -> None:  # after every stage, so a long run's first figures are kept
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2), flush=True)

    with tempfile.TemporaryDirectory(prefix="qa-wiki-bench-") as tmp:
        if args.parse_pages:
            results["parse_stream"] = bench_parse_stream(args.parse_pages, Path(tmp))
            save()
        if args.parse_only:
            return
        if args.ratio_pages:
            results["ratio"] = bench_ratio(args.ratio_pages, args.rounds, Path(tmp))
            save()
        if args.fake_stream_pages:
            results["fake_stream"] = bench_fake_stream(args.fake_stream_pages, Path(tmp))
            save()
        if args.store_sync_pages:
            results["store_sync"] = bench_store_sync(args.store_sync_pages, Path(tmp))
            save()
        if args.sync_pages:
            results["sync_at_scale"] = bench_sync_at_scale(args.sync_pages, Path(tmp) / "scale")
            save()
        if args.stages_only:
            return
        results["dump_and_sync"] = bench_dump_and_sync(args.pages, Path(tmp) / "live")
        save()
        if not args.skip_squad:
            results["squad"] = bench_squad(Path(tmp))
            save()
        if args.stream_pages:
            results["stream"] = bench_stream_memory(args.stream_pages, Path(tmp))
        results["load_average_at_end"] = os.getloadavg()[0]
        save()


if __name__ == "__main__":
    main()
