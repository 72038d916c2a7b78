"""The index on disk: FAISS vectors, BM25, chunk offsets and a versioned manifest, atomically.

Every data file is named by its content hash and the manifest is renamed into place last, so
the manifest is the commit point: a build that dies half-way leaves the previous manifest and
every file it names untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from qa.types import Chunk, Document, Sentence

FORMAT = "qa-index"
FORMAT_VERSION = 2  # 2: chunk vectors are the mean of their sentence vectors
MANIFEST = "manifest.json"
LOCK = ".qa-index.lock"
DATA_PREFIXES = (
    "documents-",
    "chunks-",
    "sentences-",
    "chunk-vectors-",
    "sentence-vectors-",
    "bm25-",
)
# Test hook, for tests/test_faults.py only: with QA_TEST_CRASH_AT=<stage> set, a build kills
# itself with SIGKILL at that stage of save(), as `kill -9` or a power cut would. The stages:
# writing-<role> (half of a data file written), wrote-<role>, writing-manifest, committed.
CRASH_ENV = "QA_TEST_CRASH_AT"
# Tries of load() while builds keep committing new manifests under it.
LOAD_ATTEMPTS = 5
# The data files a manifest names, by role.
ROLES = ("documents", "chunks", "sentences", "chunk_vectors", "sentence_vectors", "bm25")


class StoreError(RuntimeError):
    """An index folder cannot be loaded or written; the message says what and how to fix it."""


class StoreBusyError(StoreError):
    """Another process is writing the same index folder."""


@dataclass
class IndexData:
    """Everything an index holds, in memory."""

    manifest: dict[str, Any]
    documents: list[Document]
    chunks: list[Chunk]
    sentences: list[Sentence]
    chunk_index: Any  # faiss.Index over chunk vectors, ids = chunk positions
    sentence_index: Any  # faiss.Index over sentence vectors, ids = sentence positions
    bm25: Any  # bm25s.BM25 over chunk terms

    @property
    def sentence_chunks(self) -> np.ndarray:
        return self._sentence_chunks

    def __post_init__(self) -> None:
        self._sentence_chunks = np.array([s.chunk for s in self.sentences], dtype=np.int64)
        # Sentences of chunk i are sentences[first[i]:first[i+1]] (they are stored in order).
        counts = np.bincount(self._sentence_chunks, minlength=len(self.chunks))
        self.first_sentence = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def rebuild_hint(manifest: dict[str, Any] | None, folder: Path) -> str:
    sources = " ".join(manifest.get("sources", [])) if manifest else ""
    return f"rebuild it with: qa index {sources or 'PATH...'} --out {folder}"


# HNSW graph degree, build beam and search beam. bench/RESULTS.md measured the search beam: at
# 100k MiniLM-like vectors, efSearch 512 kept the exact first hit 95-100% of the time where 128
# lost up to 27%, for 1.7 ms a search instead of 0.5 (at 1M, 6 ms instead of 1.7).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 512


def build_faiss(
    vectors: np.ndarray, approximate_above: int, *, progress: bool = False, name: str = "vectors"
) -> Any:
    """Exact inner-product search up to `approximate_above` vectors, HNSW beyond.

    Building the HNSW graph is the slow part of a big build (1M vectors took over 9 minutes on
    2 cores), so it goes in slices under a progress bar; a flat index is a copy.
    """
    import faiss

    dim = vectors.shape[1]
    index: Any
    if len(vectors) > approximate_above:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index
    from tqdm import tqdm

    step = 20_000
    with tqdm(
        total=len(vectors), desc=f"HNSW graph ({name})", unit="vec", disable=not progress
    ) as bar:
        for start in range(0, len(vectors), step):
            index.add(np.ascontiguousarray(vectors[start : start + step], dtype=np.float32))
            bar.update(min(step, len(vectors) - start))
    return index


def faiss_kind(index: Any) -> str:
    return type(index).__name__


def all_vectors(index: Any) -> np.ndarray:
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("faiss-cpu", "bm25s", "sentence-transformers", "transformers", "torch", "pysbd"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's build lock; a second writer fails at once with a clear message."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / LOCK).open("a+")
    except OSError as error:  # --out names a file, or a folder this user cannot write
        raise StoreError(
            f"cannot write an index to {folder} ({error.strerror or error}); "
            "give --out a folder you can write to"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusyError(
                f"another 'qa index' is writing to {folder}; wait for it to finish and try again"
            ) from None
        yield
    finally:
        handle.close()


def save(
    folder: Path,
    *,
    documents: list[Document],
    chunks: list[Chunk],
    sentences: list[Sentence],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    bm25: Any,
    manifest: dict[str, Any],
    approximate_above: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Write an index into `folder` (the caller holds the write lock); return its manifest."""
    import faiss

    doc_index = {d.id: i for i, d in enumerate(documents)}
    files: dict[str, dict[str, Any]] = {}
    files["documents"] = _write_file(
        folder,
        "documents",
        ".jsonl",
        "".join(
            json.dumps(
                {"id": d.id, "title": d.title, "source": d.source, "text": d.text},
                ensure_ascii=False,
            )
            + "\n"
            for d in documents
        ).encode(),
    )
    chunk_rows = np.array([[doc_index[c.doc_id], c.start, c.end] for c in chunks], dtype=np.int64)
    files["chunks"] = _write_file(folder, "chunks", ".npy", _npy(chunk_rows.reshape(-1, 3)))
    sentence_rows = np.array([[s.chunk, s.start, s.end] for s in sentences], dtype=np.int64)
    files["sentences"] = _write_file(
        folder, "sentences", ".npy", _npy(sentence_rows.reshape(-1, 3))
    )
    chunk_index = build_faiss(chunk_vectors, approximate_above, progress=progress, name="chunks")
    sentence_index = build_faiss(
        sentence_vectors, approximate_above, progress=progress, name="sentences"
    )
    files["chunk_vectors"] = _write_file(
        folder, "chunk-vectors", ".faiss", faiss.serialize_index(chunk_index).tobytes()
    )
    files["sentence_vectors"] = _write_file(
        folder, "sentence-vectors", ".faiss", faiss.serialize_index(sentence_index).tobytes()
    )
    files["bm25"] = _write_bm25(folder, bm25)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "counts": {"documents": len(documents), "chunks": len(chunks), "sentences": len(sentences)},
        "faiss": {"chunks": faiss_kind(chunk_index), "sentences": faiss_kind(sentence_index)},
        "libraries": library_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    tmp = folder / f".tmp-{os.getpid()}-{MANIFEST}"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    _fsync(tmp)
    _crash_point("writing-manifest")
    os.replace(tmp, folder / MANIFEST)  # the commit point
    _fsync_dir(folder)
    _crash_point("committed")
    _collect_garbage(folder, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise StoreError(
            f"no index in {folder} ({MANIFEST} is missing); build one with: "
            f"qa index PATH... --out {folder}"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StoreError(f"{path} is unreadable ({error}); {rebuild_hint(None, folder)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a qa index manifest; {rebuild_hint(None, folder)}")
    found = manifest.get("format_version")
    if found != FORMAT_VERSION:
        raise StoreError(
            f"{folder} has index format version {found}, this qa reads version {FORMAT_VERSION}; "
            + rebuild_hint(manifest, folder)
        )
    problem = _file_list_problem(manifest.get("files"))
    if problem:
        raise StoreError(f"{path} is damaged ({problem}); {rebuild_hint(manifest, folder)}")
    return manifest


def _file_list_problem(files: Any) -> str | None:
    """What is wrong with a manifest's list of data files, or None: load() trusts it after."""
    if not isinstance(files, dict):
        return "its 'files' is not an object"
    for role in ROLES:
        entry = files.get(role)
        if not isinstance(entry, dict):
            return f"no entry for the {role} file"
        name = entry.get("name")
        # A plain name inside the folder: a manifest must not point reads elsewhere.
        if not isinstance(name, str) or not name.startswith(DATA_PREFIXES) or "/" in name:
            return f"the {role} file has no valid name"
        if not isinstance(entry.get("sha256"), str):
            return f"the {role} file has no hash"
        parts = entry.get("parts")
        if role == "bm25":
            if not isinstance(parts, dict) or not all(
                isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in parts.items()
            ):
                return "the bm25 parts are not a list of hashed files"
        elif not isinstance(entry.get("bytes"), int):
            return f"the {role} file has no size"
    return None


def load(folder: Path) -> IndexData:
    """Read and verify an index folder: every file must exist and match its recorded hash."""
    for _ in range(LOAD_ATTEMPTS - 1):
        manifest = read_manifest(folder)
        try:
            return _load(folder, manifest)
        except StoreError:
            # A build that commits while we read deletes the files of the manifest we read
            # (they are its garbage): read the new manifest and try again. The same manifest
            # twice means the damage is real.
            if _files_unchanged(folder, manifest):
                raise
    return _load(folder, read_manifest(folder))


def _files_unchanged(folder: Path, manifest: dict[str, Any]) -> bool:
    try:
        return bool(read_manifest(folder)["files"] == manifest["files"])
    except StoreError:
        return True


def _load(folder: Path, manifest: dict[str, Any]) -> IndexData:
    import faiss

    for entry in manifest["files"].values():
        _verify(folder, entry, manifest)
    try:
        lines = _path(folder, manifest, "documents").read_text(encoding="utf-8").splitlines()
        raw_docs = [json.loads(line) for line in lines]
        documents = [Document(d["id"], d["title"], d["source"], d["text"]) for d in raw_docs]
        chunk_rows = np.load(_path(folder, manifest, "chunks"), allow_pickle=False)
        sentence_rows = np.load(_path(folder, manifest, "sentences"), allow_pickle=False)
        chunks = []
        for n, (d, start, end) in enumerate(chunk_rows.tolist()):
            doc = documents[d]
            chunks.append(Chunk(f"{doc.id}::{n}", doc.id, doc.text[start:end], start, end))
        sentences = [Sentence(c, a, b) for c, a, b in sentence_rows.tolist()]
        chunk_index = faiss.read_index(str(_path(folder, manifest, "chunk_vectors")))
        sentence_index = faiss.read_index(str(_path(folder, manifest, "sentence_vectors")))
        for index in (chunk_index, sentence_index):
            if hasattr(index, "hnsw"):  # the search beam is this code's choice, not the file's
                index.hnsw.efSearch = HNSW_EF_SEARCH
        bm25 = _read_bm25(_path(folder, manifest, "bm25"))
    except (OSError, ValueError, KeyError, IndexError, RuntimeError) as error:
        raise StoreError(
            f"index in {folder} is damaged ({type(error).__name__}: {error}); "
            + rebuild_hint(manifest, folder)
        ) from None
    if chunk_index.ntotal != len(chunks) or sentence_index.ntotal != len(sentences):
        raise StoreError(f"index in {folder} is inconsistent; " + rebuild_hint(manifest, folder))
    return IndexData(manifest, documents, chunks, sentences, chunk_index, sentence_index, bm25)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _path(folder: Path, manifest: dict[str, Any], role: str) -> Path:
    return folder / manifest["files"][role]["name"]


def _write_file(folder: Path, role: str, suffix: str, data: bytes) -> dict[str, Any]:
    digest = sha256_bytes(data)
    name = f"{role}-{digest[:16]}{suffix}"
    final = folder / name
    # An existing file of that name is kept only if it still holds exactly these bytes: a
    # damaged one must be replaced, or "rebuild it" could never repair the index.
    if not _holds(final, len(data), digest):
        tmp = _tmp_name(folder)
        with tmp.open("xb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            _crash_point(f"writing-{role}")
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    _crash_point(f"wrote-{role}")
    return {"name": name, "sha256": digest, "bytes": len(data)}


def _write_bm25(folder: Path, bm25: Any) -> dict[str, Any]:
    tmp = _tmp_name(folder)
    tmp.mkdir()
    bm25.save(str(tmp))
    parts = {}
    for file in sorted(tmp.iterdir()):
        _fsync(file)
        parts[file.name] = sha256_bytes(file.read_bytes())
    digest = sha256_bytes(json.dumps(parts, sort_keys=True).encode())
    name = f"bm25-{digest[:16]}"
    final = folder / name
    _crash_point("writing-bm25")
    if final.is_dir() and _holds_parts(final, parts):
        shutil.rmtree(tmp)
    else:
        # A damaged folder of that name is replaced (os.replace cannot replace a full folder).
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(tmp, final)
    _crash_point("wrote-bm25")
    return {"name": name, "sha256": digest, "parts": parts}


def _tmp_name(folder: Path) -> Path:
    """A fresh temporary name in `folder`. Created with open() or mkdir(), not mkstemp(), so
    the file gets the user's umask like the manifest (mkstemp makes it 0600, and an index
    built by one user could not be served by another)."""
    return folder / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"


def _holds(path: Path, size: int, digest: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size and _file_sha256(path) == digest
    except OSError:
        return False


def _holds_parts(folder: Path, parts: dict[str, str]) -> bool:
    try:
        names = {p.name for p in folder.iterdir()}
        return names == set(parts) and all(
            _file_sha256(folder / part) == digest for part, digest in parts.items()
        )
    except OSError:
        return False


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _read_bm25(path: Path) -> Any:
    import bm25s

    return bm25s.BM25.load(str(path))


def _verify(folder: Path, entry: dict[str, Any], manifest: dict[str, Any]) -> None:
    path = folder / entry["name"]
    hint = rebuild_hint(manifest, folder)
    if not path.exists():
        raise StoreError(f"index file {path} is missing; {hint}")
    try:
        if "parts" in entry:
            for part, digest in entry["parts"].items():
                file = path / part
                if not file.exists() or sha256_bytes(file.read_bytes()) != digest:
                    raise StoreError(f"index file {file} is missing or corrupted; {hint}")
            return
        data = path.read_bytes()
    except OSError as error:  # e.g. built by another user, with files this one cannot read
        raise StoreError(
            f"cannot read index file {error.filename or path} ({error.strerror or error})"
        ) from None
    if len(data) != entry["bytes"]:
        raise StoreError(
            f"index file {path} is truncated ({len(data)} of {entry['bytes']} bytes); {hint}"
        )
    if sha256_bytes(data) != entry["sha256"]:
        raise StoreError(f"index file {path} is corrupted (its hash does not match); {hint}")


def _crash_point(stage: str) -> None:
    if os.environ.get(CRASH_ENV) == stage:  # see CRASH_ENV: a test hook, never set in use
        os.kill(os.getpid(), signal.SIGKILL)


def _collect_garbage(folder: Path, manifest: dict[str, Any]) -> None:
    """Remove data files the new manifest no longer names, and leftovers of dead builds."""
    keep = {entry["name"] for entry in manifest["files"].values()}
    for path in folder.iterdir():
        name = path.name
        if name in keep or not (name.startswith(DATA_PREFIXES) or name.startswith(".tmp-")):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(folder)
