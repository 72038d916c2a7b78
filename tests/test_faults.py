"""Faults while an index is written or read: kill -9 mid-build, two writers, damaged files.

The kills are real: `qa index` runs as a subprocess and dies by SIGKILL, either at an exact
stage of the embedded store's save (the QA_TEST_CRASH_AT hook of qa/stores/embedded/files.py)
or at a random moment. Most runs use tests/fake_qa.py (the real command with FakeEmbedder, a
second a run instead of six); the real model runs where it matters: one crash, two builds
racing for the lock, the CLI error.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qa.embedding
import qa.knowledge
from qa.cli import main as qa_main
from qa.knowledge import KnowledgeBase
from qa.stores import StoreBusyError, StoreError
from qa.stores.base import FORMAT_VERSION
from qa.stores.embedded import files, snapshot, vectors
from qa.stores.embedded.files import CRASH_ENV, DATA_PREFIXES
from qa.stores.embedded.manifest import MANIFEST, read_manifest
from qa.stores.embedded.manifest import ROLES as MANIFEST_ROLES
from tests.conftest import ARTICLE, REPO, SQUAD

QUESTION = "Who told Sputnik Turkey that the purchase would not be met with success?"


def _squad_paragraphs(n: int, article: int = 0) -> str:
    data = json.loads(SQUAD.read_text())["data"][article]
    return "\n\n".join(p["context"] for p in data["paragraphs"][:n])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def _fake_embedder_everywhere(monkeypatch, embedder) -> None:
    """What tests/fake_qa.py does, in this process: `qa` commands run through qa_main get
    `embedder` (whichever module they ask for it)."""
    monkeypatch.setattr(qa.embedding, "get_embedder", lambda model="": embedder)
    monkeypatch.setattr(qa.knowledge, "get_embedder", lambda model="": embedder)


def _qa_index(
    docs: Path, out: Path, cwd: Path, *, real: bool = False, **env: str
) -> subprocess.Popen[str]:
    """`qa index` in a subprocess; with the real model, or (the default) with FakeEmbedder."""
    command = "qa.cli" if real else "tests.fake_qa"
    return subprocess.Popen(
        [sys.executable, "-m", command, "index", str(docs), "--out", str(out), "--quiet"],
        cwd=cwd,
        env=_env(**env),
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
    (docs_copy / "normans.txt").write_text(_squad_paragraphs(paragraphs))
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
    (docs / "computing.txt").write_text(_squad_paragraphs(48, article=1))
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
        (docs / f"part{n}.txt").write_text(_squad_paragraphs(4, article=n))
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


# ----- damaged index files ------------------------------------------------------------------


@pytest.fixture
def fake_kb(tmp_path, fake_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    (docs / "normans.md").write_text("# Normans\n\n" + _squad_paragraphs(4))
    out = tmp_path / "kb"
    KnowledgeBase.build([docs], out, embedder=fake_embedder)
    return docs, out


def _files(out: Path) -> dict[str, Path]:
    manifest = json.loads((out / MANIFEST).read_text())
    return {role: out / entry["name"] for role, entry in manifest["files"].items()}


def _load_error(out: Path, embedder) -> str:
    with pytest.raises(StoreError) as caught:
        KnowledgeBase.load(out, embedder=embedder)
    message = str(caught.value)
    assert "\n" not in message
    assert f"qa index {out.parent / 'docs'} --out {out}" in message, message
    return message


def _follow_the_hint(message: str, embedder, monkeypatch) -> None:
    """Run, as `qa` (with `embedder`), the command an error message suggests: it must repair
    the index. (It now ends in --rebuild: a damaged index is replaced, not updated.)"""
    command = shlex.split(message.rsplit("rebuild it with: ", 1)[1])
    assert command[:2] == ["qa", "index"] and command[-1] == "--rebuild", message
    _fake_embedder_everywhere(monkeypatch, embedder)
    assert qa_main([*command[1:], "--quiet"]) == 0


# The manifest's roles of single files (bm25 is a folder of parts), at least these five.
ROLES = [role for role in MANIFEST_ROLES if role != "bm25"]
assert {"documents", "chunks", "sentences", "chunk_vectors", "sentence_vectors"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_a_truncated_file_is_named_with_the_rebuild_command(fake_kb, fake_embedder, role):
    _docs, out = fake_kb
    path = _files(out)[role]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = _load_error(out, fake_embedder)
    assert str(path) in message and "truncated" in message


@pytest.mark.parametrize("role", ROLES)
def test_a_corrupted_file_is_named_and_a_rebuild_repairs_it(
    fake_kb, fake_embedder, role, monkeypatch
):
    _docs, out = fake_kb
    path = _files(out)[role]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    message = _load_error(out, fake_embedder)
    assert str(path) in message and "corrupted" in message
    # The suggested command must really repair it, though the file keeps its name and size.
    _follow_the_hint(message, fake_embedder, monkeypatch)
    assert KnowledgeBase.load(out, embedder=fake_embedder).ask("Who are the Normans?").passages


def test_a_corrupted_bm25_part_is_named_and_a_rebuild_repairs_it(
    fake_kb, fake_embedder, monkeypatch
):
    _docs, out = fake_kb
    part = sorted(_files(out)["bm25"].iterdir())[0]
    data = bytearray(part.read_bytes())
    data[-1] ^= 0xFF
    part.write_bytes(bytes(data))
    message = _load_error(out, fake_embedder)
    assert str(part) in message
    _follow_the_hint(message, fake_embedder, monkeypatch)
    assert KnowledgeBase.load(out, embedder=fake_embedder).ask("Who are the Normans?").passages


@pytest.mark.parametrize("role", [*ROLES, "bm25"])
def test_a_missing_file_is_named_with_the_rebuild_command(
    fake_kb, fake_embedder, role, monkeypatch
):
    _docs, out = fake_kb
    path = _files(out)[role]
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    message = _load_error(out, fake_embedder)
    assert str(path) in message and "missing" in message
    _follow_the_hint(message, fake_embedder, monkeypatch)
    assert KnowledgeBase.load(out, embedder=fake_embedder).ask("Who are the Normans?").passages


def _edit_manifest(out: Path, edit) -> None:
    path = out / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("version", [FORMAT_VERSION - 1, FORMAT_VERSION + 1])
def test_another_format_version_is_refused_with_the_rebuild_command(
    fake_kb, fake_embedder, version
):
    _docs, out = fake_kb
    assert FORMAT_VERSION == 3
    _edit_manifest(out, lambda m: m.update(format_version=version))
    message = _load_error(out, fake_embedder)
    assert str(out) in message and f"version {version}" in message
    assert message.endswith("--rebuild")


def _mismatch_error(out: Path, embedder) -> str:
    """The error of loading a store built with another model: the rebuild command, which
    names at least the folder (and the indexed paths: the test below)."""
    with pytest.raises(StoreError) as caught:
        KnowledgeBase.load(out, embedder=embedder)
    message = str(caught.value)
    assert "\n" not in message
    assert f"--out {out} --rebuild" in message and "rebuild it with: qa index " in message
    return message


def test_another_model_is_refused_with_the_rebuild_command(fake_kb, fake_embedder):
    _docs, out = fake_kb
    _edit_manifest(out, lambda m: m["info"].update(model_id="some-other-model"))
    message = _mismatch_error(out, fake_embedder)
    assert "some-other-model" in message and fake_embedder.model_id in message


def test_other_weights_of_the_same_model_are_refused(fake_kb, fake_embedder):
    _docs, out = fake_kb
    _edit_manifest(out, lambda m: m["info"].update(fingerprint="0123456789abcdef"))
    assert "0123456789abcdef" in _mismatch_error(out, fake_embedder)


def test_a_model_mismatch_names_the_indexed_paths_in_its_rebuild_command(fake_kb, fake_embedder):
    _docs, out = fake_kb
    _edit_manifest(out, lambda m: m["info"].update(model_id="some-other-model"))
    _load_error(out, fake_embedder)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_text('{"format": "qa-ind'), id="truncated-json"),
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), id="binary"),
        pytest.param(lambda p: p.write_text("[1, 2, 3]"), id="not-an-object"),
        pytest.param(lambda p: p.write_text('{"format": "something-else"}'), id="other-format"),
    ],
)
def test_a_damaged_manifest_is_named_with_the_rebuild_command(fake_kb, fake_embedder, damage):
    _docs, out = fake_kb
    damage(out / MANIFEST)
    with pytest.raises(StoreError) as caught:
        KnowledgeBase.load(out, embedder=fake_embedder)
    message = str(caught.value)
    assert str(out / MANIFEST) in message and f"qa index PATH... --out {out}" in message


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda m: m.pop("files"), id="no-files"),
        pytest.param(lambda m: m.update(files=[1, 2]), id="files-a-list"),
        pytest.param(lambda m: m["files"].pop("chunks"), id="a-role-missing"),
        pytest.param(lambda m: m["files"]["chunks"].pop("sha256"), id="no-hash"),
        pytest.param(lambda m: m["files"]["chunks"].update(name="../../x"), id="path-escape"),
        pytest.param(lambda m: m["files"]["chunks"].update(bytes="many"), id="bad-size"),
        pytest.param(lambda m: m["files"]["bm25"].update(parts=None), id="bad-parts"),
    ],
)
def test_a_manifest_with_a_damaged_file_list_fails_as_a_store_error(fake_kb, fake_embedder, edit):
    _docs, out = fake_kb
    _edit_manifest(out, edit)
    _load_error(out, fake_embedder)


def test_data_files_get_the_same_permissions_as_the_manifest(fake_kb):
    """Data files honour the umask like the manifest does: an index built by one user can be
    served by another (temporary files from mkstemp were 0600)."""
    _docs, out = fake_kb
    mode = (out / MANIFEST).stat().st_mode & 0o777
    for path in _files(out).values():
        if path.is_dir():
            assert path.stat().st_mode & 0o777 == mode | (mode & 0o444) >> 2
            for part in path.iterdir():
                assert part.stat().st_mode & 0o777 == mode
        else:
            assert path.stat().st_mode & 0o777 == mode, path


def test_a_missing_manifest_says_how_to_build_one(tmp_path, fake_embedder):
    with pytest.raises(StoreError, match=rf"qa index PATH\.\.\. --out {tmp_path}"):
        KnowledgeBase.load(tmp_path, embedder=fake_embedder)


@pytest.mark.slow
def test_the_cli_reports_a_corrupted_index_in_one_line_and_exits_2(article_kb, tmp_path):
    out = tmp_path / "kb"
    shutil.copytree(article_kb.folder, out)
    path = _files(out)["sentence_vectors"]
    path.write_bytes(path.read_bytes()[:100])
    done = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", "Who is Conkar?", "--index", str(out)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("qa: error: ") and str(path) in lines[0]
    assert f"--out {out}" in lines[0] and "qa index " in lines[0]


# ----- incremental rebuilds -----------------------------------------------------------------


def test_unchanged_documents_are_not_re_embedded(fake_kb, fake_embedder):
    docs, out = fake_kb
    fake_embedder.encoded.clear()
    kb = KnowledgeBase.build([docs], out, embedder=fake_embedder)
    assert fake_embedder.encoded == []
    assert kb.last_build is not None
    assert (kb.last_build.embedded_documents, kb.last_build.reused_documents) == (0, 2)


def test_a_changed_document_re_embeds_only_itself(fake_kb, fake_embedder):
    docs, out = fake_kb
    before = KnowledgeBase.load(out, embedder=fake_embedder).store.snapshot
    article_chunks = [c for c in before.chunks if c.doc_id == ARTICLE.name]
    changed = docs / "normans.md"
    new_text = changed.read_text().replace("Normandy", "Normandie")
    changed.write_text(new_text)
    fake_embedder.encoded.clear()

    kb = KnowledgeBase.build([docs], out, embedder=fake_embedder)
    assert fake_embedder.encoded, "the changed document was not embedded"
    assert all(text in new_text for text in fake_embedder.encoded)
    assert kb.last_build is not None
    assert (kb.last_build.embedded_documents, kb.last_build.reused_documents) == (1, 1)
    # The reused document keeps its chunk and sentence ids, and their vectors are the old
    # ones, id for id.
    after = kb.store.snapshot
    for role, index in (("chunks", "chunk_index"), ("sentences", "sentence_index")):
        old = _vectors_by_id(before, role, index)
        new = _vectors_by_id(after, role, index)
        reused = {i for i in old if i.startswith(f"{ARTICLE.name}::")}
        assert reused == {i for i in new if i.startswith(f"{ARTICLE.name}::")}
        assert all((old[i] == new[i]).all() for i in reused)
    assert [c.id for c in after.chunks if c.doc_id == ARTICLE.name] == [
        c.id for c in article_chunks
    ]
    assert [c for c in after.chunks if c.doc_id == ARTICLE.name] == article_chunks


def _vectors_by_id(data, role: str, index: str) -> dict:
    rows = vectors.all_vectors(getattr(data, index))
    return {item.id: rows[n] for n, item in enumerate(getattr(data, role))}


def test_an_added_document_embeds_only_itself(fake_kb, fake_embedder):
    docs, out = fake_kb
    added = "The Conkar report was filed on a Tuesday. It named nobody."
    (docs / "added.txt").write_text(added)
    fake_embedder.encoded.clear()
    kb = KnowledgeBase.build([docs], out, embedder=fake_embedder)
    assert fake_embedder.encoded and all(t in added for t in fake_embedder.encoded)
    assert kb.last_build is not None and kb.last_build.reused_documents == 2
