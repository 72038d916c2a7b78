"""Damaged index files are named with the rebuild command that repairs them, and incremental
rebuilds re-embed only what changed (the embedded store, with FakeEmbedder)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.cli import main as qa_main
from qa.knowledge import KnowledgeBase
from qa.stores import StoreError
from qa.stores.base import FORMAT_VERSION
from qa.stores.embedded import vectors
from qa.stores.embedded.manifest import MANIFEST
from qa.stores.embedded.manifest import ROLES as MANIFEST_ROLES
from tests.conftest import ARTICLE
from tests.fakes import fake_embedder_everywhere, qa_env, squad_paragraphs

# ----- damaged index files ------------------------------------------------------------------


@pytest.fixture
def fake_kb(tmp_path, fake_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(ARTICLE, docs / ARTICLE.name)
    (docs / "normans.md").write_text("# Normans\n\n" + squad_paragraphs(4))
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
    fake_embedder_everywhere(monkeypatch, embedder)
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
        env=qa_env(),
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
