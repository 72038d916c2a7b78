"""Faults while an index is written or read: kill -9 mid-build, two writers, damaged files.

The kills are real: `qa index` runs as a subprocess and dies by SIGKILL, either at an exact
stage of the embedded store's save (the QA_TEST_CRASH_AT hook of qa/stores/embedded/files.py)
or at a random moment. Most runs use tests/fake_qa.py (the real command with FakeEmbedder, a
second a run instead of six); the real model runs where it matters: one crash, two builds
racing for the lock, the CLI error.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa.knowledge import KnowledgeBase
from qa.stores import StoreBusyError
from qa.stores.embedded import files, snapshot
from qa.stores.embedded.files import CRASH_ENV, DATA_PREFIXES
from qa.stores.embedded.manifest import read_manifest
from tests.conftest import ARTICLE
from tests.fakes import qa_env, squad_paragraphs

QUESTION = "Who told Sputnik Turkey that the purchase would not be met with success?"


def _qa_index(
    docs: Path, out: Path, cwd: Path, *, real: bool = False, **env: str
) -> subprocess.Popen[str]:
    """`qa index` in a subprocess; with the real model, or (the default) with FakeEmbedder."""
    command = "qa.cli" if real else "tests.fake_qa"
    return subprocess.Popen(
        [sys.executable, "-m", command, "index", str(docs), "--out", str(out), "--quiet"],
        cwd=cwd,
        env=qa_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(
    docs: Path, out: Path, cwd: Path, *, real: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    process = _qa_index(docs, out, cwd, real=real, **env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _answer(out: Path, embedder) -> dict:
    result = KnowledgeBase.load(out, embedder=embedder).ask(QUESTION).to_dict()
    return {k: result[k] for k in ("answer", "abstained", "confidence", "passages")}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp-"))


def _sources(out: Path, embedder) -> set[str]:
    """The sources of the documents in the index; relative paths, as readers are shown them."""
    return {d.source for d in KnowledgeBase.load(out, embedder=embedder).documents}


def _base_build(root: Path, real: bool) -> tuple[Path, Path]:
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    out = root / "kb"
    done = _run(docs, out, root, real=real)
    assert done.returncode == 0, done.stderr
    return docs, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A good build of the article (FakeEmbedder) and its answer, to copy and crash on top of."""
    from tests.fakes import FakeEmbedder

    docs, out = _base_build(tmp_path_factory.mktemp("faults"), real=False)
    return docs, out, _answer(out, FakeEmbedder())


@pytest.fixture(scope="module")
def built_real(article_kb, real_embedder):
    """The same with the real model: the session's article knowledge base."""
    docs = Path(read_manifest(article_kb.folder).sources[0])
    return docs, article_kb.folder, _answer(article_kb.folder, real_embedder)


def _copy_build(built, tmp_path: Path, paragraphs: int = 3) -> tuple[Path, Path]:
    """A private copy of a good build, plus a new document so the next build writes files."""
    docs, out, _ = built
    docs_copy, out_copy = tmp_path / "docs", tmp_path / "kb"
    shutil.copytree(docs, docs_copy)
    shutil.copytree(out, out_copy)
    (docs_copy / "normans.txt").write_text(squad_paragraphs(paragraphs))
    return docs_copy, out_copy


# Every data file a save writes, by the name its crash stages use (at least these six).
ROLE_FILES = [prefix.removesuffix("-") for prefix in DATA_PREFIXES]
assert {"documents", "chunks", "sentences", "chunk-vectors", "sentence-vectors", "bm25"} <= set(
    ROLE_FILES
)
STAGES = [
    *(f"writing-{role}" for role in ROLE_FILES),
    *(f"wrote-{role}" for role in ROLE_FILES),
    "writing-manifest",
    "committed",
]


def _check_crash_then_rebuild(
    built,
    tmp_path: Path,
    stage: str,
    embedder,
    real: bool,
    rebuild: bool = True,
    collected: bool = True,
) -> None:
    before = built[2]
    docs, out = _copy_build(built, tmp_path)
    killed = _run(docs, out, tmp_path, real=real, **{CRASH_ENV: stage})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    if stage == "committed":  # the manifest was renamed in: the new index is the index
        assert _sources(out, embedder) == {ARTICLE.name, "normans.txt"}
    else:  # the previous index, loadable and answering as before
        assert _sources(out, embedder) == {ARTICLE.name}
        assert _answer(out, embedder) == before
        if stage.startswith("writing-"):
            assert _leftovers(out), "the kill left no half-written file to clean up"
    if not rebuild:
        return

    again = _run(docs, out, tmp_path, real=real)
    assert again.returncode == 0, again.stderr
    # After a kill past the commit point the new index is whole: nothing is embedded again.
    embedded = "embedded 0, reused 2" if stage == "committed" else "embedded 1, reused 1"
    assert embedded in again.stdout, again.stdout
    assert _leftovers(out) == []
    assert _sources(out, embedder) == {ARTICLE.name, "normans.txt"}
    if not collected:
        return
    manifest = read_manifest(out)
    named = {entry["name"] for entry in manifest.files.values()}
    data_files = {p.name for p in out.iterdir() if p.name.startswith(DATA_PREFIXES)}
    assert data_files == named, "files of the dead build were not collected"


@pytest.mark.parametrize("stage", STAGES)
def test_kill_at_a_stage_of_the_write_keeps_the_previous_index(
    built, tmp_path, fake_embedder, stage
):
    # After a kill at "committed" the next run has nothing to change: it writes nothing, but
    # still collects the dead build's leftovers.
    _check_crash_then_rebuild(built, tmp_path, stage, fake_embedder, real=False)


def test_a_run_after_a_kill_at_the_commit_collects_the_dead_files(built, tmp_path, fake_embedder):
    _check_crash_then_rebuild(built, tmp_path, "committed", fake_embedder, real=False)


@pytest.mark.slow
def test_kill_the_real_qa_index_before_its_commit(built_real, tmp_path, real_embedder):
    _check_crash_then_rebuild(
        built_real, tmp_path, "writing-manifest", real_embedder, real=True, rebuild=False
    )


@pytest.mark.parametrize("seed", range(6))
def test_kill_at_a_random_moment(built, tmp_path, fake_embedder, seed):
    """Even seeds: kill a random few ms after the build starts writing into the folder.
    Odd seeds: kill at a random moment of the whole run (imports, chunking, embedding...)."""
    before = built[2]
    docs, out = _copy_build(built, tmp_path, paragraphs=39)
    (docs / "computing.txt").write_text(squad_paragraphs(48, article=1))
    existing = set(os.listdir(out))
    rng = random.Random(seed)
    process = _qa_index(docs, out, tmp_path)
    began = time.monotonic()
    if seed % 2:
        kill_at = began + rng.uniform(0.0, 1.5)
        while process.poll() is None and time.monotonic() < kill_at:
            time.sleep(0.001)
    else:
        delay = rng.uniform(0.0, 0.03)
        while process.poll() is None and time.monotonic() < began + 120:
            if set(os.listdir(out)) - existing:
                time.sleep(delay)
                break
            time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)

    sources = _sources(out, fake_embedder)
    if sources == {ARTICLE.name}:  # killed before the commit point: the old index, intact
        assert _answer(out, fake_embedder) == before
    else:  # the build got past its commit point: the new index, whole
        assert sources == {ARTICLE.name, "normans.txt", "computing.txt"}
    again = _run(docs, out, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _leftovers(out) == []
    assert _sources(out, fake_embedder) == {ARTICLE.name, "normans.txt", "computing.txt"}


@pytest.mark.slow
def test_two_builds_at_once_one_fails_clearly_and_the_folder_stays_whole(
    built_real, tmp_path, real_embedder
):
    docs, out = _copy_build(built_real, tmp_path)
    first = _qa_index(docs, out, tmp_path, real=True)
    second = _qa_index(docs, out, tmp_path, real=True)
    results = []
    for process in (first, second):
        stdout, stderr = process.communicate(timeout=300)
        results.append((process.returncode, stdout, stderr))
    codes = sorted(code for code, _, _ in results)
    # Either one ran after the other (both 0) or, as is usual, the second found the lock held.
    assert codes in ([0, 0], [0, 2]), results
    for code, _, stderr in results:
        if code == 2:
            lines = stderr.strip().splitlines()
            assert len(lines) == 1
            assert "another 'qa index' is writing to" in lines[0]
            assert str(out) in lines[0]
    assert _sources(out, real_embedder) == {ARTICLE.name, "normans.txt"}
    assert _leftovers(out) == []


def test_a_build_while_the_lock_is_held_exits_2_and_touches_nothing(built, tmp_path):
    docs, out = _copy_build(built, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with files.write_lock(out):
        done = _run(docs, out, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"qa: error: another 'qa index' is writing to {out}; wait for it to finish and try again"
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.parametrize("out", ["a-file", "a-file/below"])
def test_an_out_folder_that_cannot_be_a_folder_exits_2(built, tmp_path, out):
    (tmp_path / "a-file").write_text("not a folder")
    done = _run(built[0], tmp_path / out, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"qa: error: cannot write an index to {tmp_path / out} "
        f"({'File exists' if out == 'a-file' else 'Not a directory'}); "
        "give --out a folder you can write to"
    ]


def test_the_lock_is_refused_inside_one_process_too(tmp_path):
    with (
        files.write_lock(tmp_path),
        pytest.raises(StoreBusyError, match="another"),
        files.write_lock(tmp_path),
    ):
        pass
    with files.write_lock(tmp_path):  # released
        pass


def test_loading_while_builds_keep_committing_never_fails(tmp_path):
    """A reader that opens the index while a build commits (and deletes the old files) must
    get one whole index, old or new, never a "damaged, rebuild it" error."""
    import threading

    from qa.settings import Settings
    from tests.fakes import FakeEmbedder

    sets = []
    for n in range(2):
        docs = tmp_path / f"docs{n}"
        docs.mkdir()
        (docs / f"part{n}.txt").write_text(squad_paragraphs(4, article=n))
        sets.append(docs)
    out = tmp_path / "kb"

    def build(docs: Path) -> None:
        KnowledgeBase.build([docs], out, settings=Settings(), embedder=FakeEmbedder())

    build(sets[0])
    stop = threading.Event()
    builds = [0]

    def keep_building() -> None:
        while not stop.is_set():
            build(sets[builds[0] % 2])
            builds[0] += 1

    writer = threading.Thread(target=keep_building)
    writer.start()
    try:
        loads = 0
        deadline = time.monotonic() + 120
        while builds[0] < 20 and time.monotonic() < deadline:
            data = snapshot.load(out)
            loads += 1
            assert {d.id for d in data.documents} in ({"part0.txt"}, {"part1.txt"})
            assert data.chunk_index.ntotal == len(data.chunks)
    finally:
        stop.set()
        writer.join()
    assert builds[0] >= 20 and loads > builds[0]
