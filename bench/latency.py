"""Ask latency on both stores: `KnowledgeBase.ask` against one raw query embedding.

Every question is asked of the embedded knowledge base and of the PostgreSQL one, and embedded
alone with `embedder.encode([question])` (the one model call an answer cannot avoid), the three
in a rotating order, after a warm-up. The goals are ratios of percentiles (ask / encode), so a
busy machine slows both sides alike. Then cProfile shows where `ask` spends its time per store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import (
    ARTICLE_DIR,
    STORE_NAMES,
    STORES,
    Bench,
    fmt_ms,
    log,
    pct,
    spread,
    squad_articles,
    squad_questions,
    table,
)

NAME = "latency"
ARTICLE = "S-400 article (default KB)"
SQUAD = "SQuAD (3 articles)"
GOALS = {"embedded": 1.15, "postgres": 2.0}  # ask / one query embedding, p50 and p95
GOAL_TEXT = {"embedded": "about 1.1x (at most 1.15x)", "postgres": "at most 2x"}

ARTICLE_QUESTIONS = [
    "Who is Conkar?",
    "What did the State Department try to sell Turkey?",
    "What air defense system does Turkey want to buy from Russia?",
    "What did the US offer in exchange for the S-400s?",
    "How long did Ankara study air defense systems?",
    "Who proposed the S-400 to Turkey?",
    "Who is Kaidanow?",
    "What did Kaidanow say about buying Patriots?",
    "Which militia does the US support in Syria?",
    "Whom does Ankara blame for the 2016 coup attempt?",
    "When was the coup attempt in Turkey?",
    "Which group does Turkey classify as terrorist?",
    "Is the question of buying the S-400s closed?",
    "What is Turkey's priority according to Conkar?",
    "Does the purchase conflict with Turkey's relations with NATO?",
    "Which news agency did Conkar speak to?",
    "What concerns did the State Department express about the purchase?",
    "Why has Turkey's relationship with the US been strained?",
    "Who does Washington refuse to extradite?",
    "What happened when Turkey asked the US for an air defense system?",
    "Which commission is Conkar a member of?",
    "In which assembly does Conkar represent Turkey?",
    "What impact would buying Patriots have on the partnership between Washington and Ankara?",
    "How many S-400 batteries did Turkey order?",
    "What is the capital of France?",
]


def squad_documents() -> list[Any]:
    from qa.types import Document

    return [
        Document(id=f"{a.title}.txt", title=a.title, source=f"{a.title}.txt", text=a.text)
        for a in squad_articles()
    ]


def run(bench: Bench) -> dict[str, Any]:
    from qa.indexing.build import index_documents
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings

    embedder, settings = bench.embedder, Settings()
    article: dict[str, Any] = {}
    squad: dict[str, Any] = {}
    specs = []
    for kind in STORES:
        spec = bench.spec(kind, "s400")
        specs.append(spec)
        article[kind] = KnowledgeBase.build(
            [ARTICLE_DIR], spec, embedder=embedder, settings=settings, rebuild=True
        )
        spec = bench.spec(kind, "squad")
        specs.append(spec)
        kb = KnowledgeBase(open_store(spec), embedder, settings)
        index_documents(
            kb.store, squad_documents(), embedder, settings, rebuild=True, progress=False
        )
        squad[kind] = kb
    questions = squad_questions()
    squad_qs = spread(questions, 60) if bench.quick else questions
    article_qs = ARTICLE_QUESTIONS * (1 if bench.quick else 4)
    log(f"latency: {len(article_qs)} article and {len(squad_qs)} SQuAD questions, both stores")
    result = {
        "corpora": {
            ARTICLE: ask_vs_encode(article, embedder, article_qs),
            SQUAD: ask_vs_encode(squad, embedder, squad_qs),
        },
        "profile": {
            kind: ask_profile(squad[kind], spread(squad_qs, 30 if bench.quick else 100))
            for kind in STORES
        },
    }
    for kb in [*article.values(), *squad.values()]:
        kb.close()
    for spec in specs:
        bench.discard(spec)
    for kind in STORES:
        a = result["corpora"][ARTICLE]["stores"][kind]
        log(f"latency: {kind}: ask/encode p50 {a['ratio_p50']:.2f}x, p95 {a['ratio_p95']:.2f}x")
    return result


def open_store(spec: str) -> Any:
    from qa.stores import open_store as open_

    return open_(spec)


def ask_vs_encode(kbs: dict[str, Any], embedder: Any, questions: list[str]) -> dict[str, Any]:
    """Each question: one encode and one ask per store, in a rotating order, after warm-up."""
    for q in questions[:10]:
        embedder.encode([q])
        for kb in kbs.values():
            kb.ask(q)
    steps = ["encode", *kbs]
    ms: dict[str, list[float]] = {step: [] for step in steps}
    answer_ms: dict[str, list[float]] = {kind: [] for kind in kbs}
    for n, q in enumerate(questions):
        k = n % len(steps)
        for step in steps[k:] + steps[:k]:
            began = time.perf_counter()
            if step == "encode":
                embedder.encode([q])
            else:
                answer = kbs[step].ask(q)
                answer_ms[step].append(answer.timings_ms["answer"])
            ms[step].append((time.perf_counter() - began) * 1000)
    encode = ms["encode"]
    stores = {}
    for kind, kb in kbs.items():
        ask = ms[kind]
        stores[kind] = {
            "chunks": kb.store.counts()["chunks"],
            "ask_p50": pct(ask, 50),
            "ask_p95": pct(ask, 95),
            "answer_p50": pct(answer_ms[kind], 50),
            "beyond_encode_p50": pct([a - e for a, e in zip(ask, encode, strict=True)], 50),
            "ratio_p50": pct(ask, 50) / pct(encode, 50),
            "ratio_p95": pct(ask, 95) / pct(encode, 95),
            "paired_ratio_p50": pct([a / e for a, e in zip(ask, encode, strict=True)], 50),
        }
    return {
        "questions": len(questions),
        "encode_p50": pct(encode, 50),
        "encode_p95": pct(encode, 95),
        "stores": stores,
    }


def ask_profile(kb: Any, questions: list[str], top: int = 10) -> list[tuple[str, float]]:
    """Where ask() spends its time: cumulative ms per question of `qa` functions."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for q in questions:
        kb.ask(q)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows: dict[str, float] = {}
    for (file, _, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        parts = Path(file).parts
        if "qa" in parts and not name.startswith("<"):
            label = ".".join((*parts[parts.index("qa") + 1 : -1], Path(file).stem, name))
            rows[label] = max(rows.get(label, 0.0), entry[3] * 1000 / len(questions))
    return sorted(rows.items(), key=lambda r: -r[1])[:top]


# ----- report -------------------------------------------------------------------------------
def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = []
    for kind in STORES:
        a = data["corpora"][ARTICLE]["stores"][kind]
        for p in ("p50", "p95"):
            value = a[f"ratio_{p}"]
            rows.append(
                (
                    f"{STORE_NAMES[kind]}: ask {p} / one query embedding {p} (S-400 article)",
                    f"{value:.3f}x",
                    GOAL_TEXT[kind],
                    value <= GOALS[kind],
                )
            )
    return rows


def findings(data: dict[str, Any]) -> list[str]:
    a = data["corpora"][ARTICLE]
    emb, pg = a["stores"]["embedded"], a["stores"]["postgres"]
    return [
        f"- **Ask** on the S-400 article adds {emb['beyond_encode_p50']:.1f} ms (p50) to the "
        f"one query embedding it needs ({a['encode_p50']:.1f} ms) with the embedded store, "
        f"{pg['beyond_encode_p50']:.1f} ms with PostgreSQL (its searches are SQL round trips "
        "over loopback)."
    ]


def render(data: dict[str, Any]) -> list[str]:
    out = [
        "## Ask latency, both stores (in process, after warm-up)",
        "",
        "Each question is asked with `kb.ask` of the embedded knowledge base and of the "
        "PostgreSQL one, and embedded alone with `embedder.encode([question])`, the three in a "
        "rotating order; the ratios divide each store's ask percentile by the encode "
        "percentile of the same questions. The answer step is what `ask` does after retrieval.",
        "",
    ]
    rows = []
    for corpus, c in data["corpora"].items():
        for kind, s in c["stores"].items():
            rows.append(
                [
                    corpus,
                    STORE_NAMES[kind],
                    s["chunks"],
                    c["questions"],
                    fmt_ms(s["ask_p50"]),
                    fmt_ms(s["ask_p95"]),
                    fmt_ms(c["encode_p50"]),
                    fmt_ms(c["encode_p95"]),
                    fmt_ms(s["beyond_encode_p50"]),
                    fmt_ms(s["answer_p50"]),
                    f"**{s['ratio_p50']:.2f}x**",
                    f"**{s['ratio_p95']:.2f}x**",
                    f"{s['paired_ratio_p50']:.2f}x",
                ]
            )
    header = ["questions", "store", "KB chunks", "n", "ask p50", "ask p95", "encode p50"]
    header += ["encode p95", "ask - encode p50", "answer step p50", "ratio p50", "ratio p95"]
    out += table([*header, "per-question ratio p50"], rows)
    out += [
        "",
        "Where `ask` spends its time (cProfile, SQuAD questions, cumulative ms per question of "
        "`qa` functions; the model runs inside `embedding.encode`; cProfile inflates "
        "pure-Python code):",
        "",
    ]
    profiles = data["profile"]
    depth = max(len(p) for p in profiles.values())
    rows = []
    for i in range(depth):
        row = []
        for kind in STORES:
            entries = profiles[kind]
            row += [f"`{entries[i][0]}`", f"{entries[i][1]:.2f}"] if i < len(entries) else ["", ""]
        rows.append(row)
    header = []
    for kind in STORES:
        header += [f"{STORE_NAMES[kind]}: function", "ms/question"]
    out += table(header, rows)
    return out
