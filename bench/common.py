"""What every part of the benchmark shares: paths, timing helpers, machine facts, the stores
under test (an embedded folder and a PostgreSQL schema), the raw-results file and RESULTS.md.

Module-level imports are stdlib only, so the worker processes the benchmark starts begin clean.
Every ratio the report gives pairs a measurement with a baseline taken moments apart in the same
run, alternating which goes first; absolute times are shown, never used as goals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first; qa and tests live here
    sys.path.insert(1, str(REPO))

ARTICLE_DIR = REPO / "index" / "docs"  # the default knowledge base's source: the S-400 article
SQUAD = REPO / "tests" / "data" / "squad2-dev-3-articles.json"
RESULTS = HERE / "RESULTS.md"
RAW = HERE / "results.json"  # every section's raw numbers, so `--only` can re-render the rest
PLOT = HERE / "latency_vs_size.png"
MARKER = "<!-- load test -->"  # bench/load_test.py owns this marker and everything below it
STORES = ("embedded", "postgres")
STORE_NAMES = {"embedded": "embedded", "postgres": "PostgreSQL"}
DIM = 384


# ----- small helpers ------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def median(values: Sequence[float]) -> float:
    return pct(values, 50)


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """n items taken evenly across the list (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call takes, and what it returned."""
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def alternating(cases: dict[str, Callable[[int], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each case per round; the order rotates every round, so no case always runs
    first (on a colder cache) or last (after a neighbour's burst)."""
    names = list(cases)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for n in range(rounds):
        k = n % len(names)
        for name in names[k:] + names[:k]:
            seconds[name].append(timed(lambda name=name, n=n: cases[name](n))[0])
    return seconds


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: a child started by fork+exec inherits the
    parent's high-water mark there, while /proc's VmHWM starts afresh with the new program."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def fmt_size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def fmt_ms(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f} ms"


def fmt_mb(value: float) -> str:
    return (
        "-"
        if value != value
        else (f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB")
    )


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def run_child(args: list[str], timeout: float = 4 * 3600) -> dict[str, Any]:
    """Run a worker that prints one JSON object as its last stdout line; return it. Its stderr
    (progress lines) passes through."""
    done = subprocess.run(
        args,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed with exit code {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ----- inputs -------------------------------------------------------------------------------
def squad_articles() -> list[Any]:
    from qa.eval.evaluate import load_squad

    return list(load_squad(SQUAD))


def squad_paragraphs() -> list[str]:
    return [p for article in squad_articles() for p in article.text.split("\n\n")]


def squad_questions() -> list[str]:
    return [q.text for article in squad_articles() for q in article.questions]


# ----- the stores under test ----------------------------------------------------------------
def with_schema(url: str, schema: str) -> str:
    """The database URL naming a schema (the PostgreSQL store keeps one knowledge base each)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def without_schema(url: str) -> tuple[str, str | None]:
    """(the URL libpq accepts, the schema it named)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


@dataclass
class Bench:
    """One run's shared state: where stores go, the PostgreSQL server, the model."""

    quick: bool
    tmp: Path
    pg_url: str  # the server, without a schema
    schema_prefix: str = "bench"

    def spec(self, kind: str, name: str) -> str:
        """Where the store `name` of this kind lives: a folder, or a URL naming a schema."""
        if kind == "embedded":
            return str(self.tmp / name)
        return with_schema(self.pg_url, f"{self.schema_prefix}_{name}")

    def discard(self, spec: str) -> None:
        """Remove a store this run made: its folder, or its schema (and all in it)."""
        import shutil

        if spec.startswith(("postgresql://", "postgres://")):
            drop_schema(spec)
        else:
            shutil.rmtree(spec, ignore_errors=True)

    @property
    def embedder(self) -> Any:
        from qa.embedding import get_embedder

        return get_embedder().load()


def drop_schema(spec: str) -> None:
    import psycopg
    from psycopg import sql

    url, schema = without_schema(spec)
    if schema:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def database_mb(spec: str) -> float:
    """pg_database_size of the database a store URL names, in MB."""
    import psycopg

    url, _ = without_schema(spec)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return float(row[0]) / 2**20 if row else float("nan")


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(without_schema(url)[0], autocommit=True) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        vector = conn.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return f"PostgreSQL {server[0] if server else '?'}, pgvector {vector[0] if vector else '-'}"


@contextlib.contextmanager
def postgres_server(given: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """(URL, how it was obtained): the server given with --store, or a fresh local one started
    by tests/pgserver.py for this run and stopped at the end."""
    if given:
        yield without_schema(given)[0], "given with --store"
        return
    from tests.pgserver import postgres

    with postgres(workdir) as url:
        yield url, "started for this run by tests/pgserver.py (pg0: PostgreSQL + pgvector)"


# ----- machine ------------------------------------------------------------------------------
LIBRARIES = (
    "torch",
    "sentence-transformers",
    "transformers",
    "faiss-cpu",
    "bm25s",
    "numpy",
    "psycopg",
    "pgvector",
    "pysbd",
    "psutil",
)


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    libs = {}
    for name in LIBRARIES:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = "-"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "qa"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "libraries": libs,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit + (" (qa/ has uncommitted changes)" if dirty else ""),
    }


# ----- raw results and RESULTS.md ------------------------------------------------------------
def load_raw() -> dict[str, Any]:
    if RAW.exists():
        with contextlib.suppress(ValueError):
            return dict(json.loads(RAW.read_text(encoding="utf-8")))
    return {}


def save_raw(raw: dict[str, Any]) -> None:
    RAW.write_text(json.dumps(raw, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_results(text: str) -> None:
    """Write RESULTS.md above the load-test marker, keeping the marker and all that follows."""
    tail = "\n"
    if RESULTS.exists():
        old = RESULTS.read_text(encoding="utf-8")
        if MARKER in old:
            tail = old.split(MARKER, 1)[1]
    RESULTS.write_text(f"{text.rstrip()}\n\n{MARKER}{tail}", encoding="utf-8")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines
