"""Crash-safe files for the embedded store: content-named data files, fsync, the build lock.

Every data file is named by its content hash and the manifest is renamed into place last, so
the manifest is the commit point: a build that dies half-way leaves the previous manifest and
every file it names untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qa.stores.base import StoreBusyError, StoreError

LOCK = ".qa-index.lock"
DATA_PREFIXES = (
    "documents-",
    "chunks-",
    "sentences-",
    "chunk-vectors-",
    "sentence-vectors-",
    "bm25-",
    "entities-",
)
# Test hook, for tests/test_faults.py only: with QA_TEST_CRASH_AT=<stage> set, a build kills
# itself with SIGKILL at that stage of a save, as `kill -9` or a power cut would. The stages:
# writing-<role> (half of a data file written), wrote-<role>, writing-manifest, committed.
CRASH_ENV = "QA_TEST_CRASH_AT"


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_file(folder: Path, role: str, suffix: str, data: bytes) -> dict[str, Any]:
    """Write `data` as `<role>-<hash><suffix>` (kept if already there, intact); its entry."""
    digest = sha256_bytes(data)
    name = f"{role}-{digest[:16]}{suffix}"
    final = folder / name
    # An existing file of that name is kept only if it still holds exactly these bytes: a
    # damaged one must be replaced, or "rebuild it" could never repair the index.
    if not _holds(final, len(data), digest):
        tmp = tmp_name(folder)
        with tmp.open("xb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            crash_point(f"writing-{role}")
            handle.write(data[len(data) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    crash_point(f"wrote-{role}")
    return {"name": name, "sha256": digest, "bytes": len(data)}


class Streamed:
    """A data file written piece by piece (never whole in memory), named by its hash at the end."""

    def __init__(self, folder: Path, role: str, suffix: str) -> None:
        self.folder, self.role, self.suffix = folder, role, suffix
        self.tmp = tmp_name(folder)
        self.handle = self.tmp.open("xb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> dict[str, Any]:
        """Finish the file: fsync, then rename it to its content name; its entry."""
        self.handle.flush()
        crash_point(f"writing-{self.role}")
        os.fsync(self.handle.fileno())
        self.handle.close()
        return _settle(self.folder, self.tmp, self.role, self.suffix, self.digest.hexdigest())

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


def write_path(folder: Path, role: str, suffix: str, tmp: Path) -> dict[str, Any]:
    """Name a file a library wrote at `tmp` (e.g. faiss.write_index) by its hash; its entry."""
    fsync(tmp)
    crash_point(f"writing-{role}")
    return _settle(folder, tmp, role, suffix, _file_sha256(tmp))


def _settle(folder: Path, tmp: Path, role: str, suffix: str, digest: str) -> dict[str, Any]:
    size = tmp.stat().st_size
    name = f"{role}-{digest[:16]}{suffix}"
    final = folder / name
    if _holds(final, size, digest):
        tmp.unlink()
    else:
        os.replace(tmp, final)
    crash_point(f"wrote-{role}")
    return {"name": name, "sha256": digest, "bytes": size}


def write_parts(folder: Path, save: Callable[[Path], None]) -> dict[str, Any]:
    """Save the BM25 parts as a content-named folder of files; its entry."""
    tmp = tmp_name(folder)
    tmp.mkdir()
    save(tmp)
    parts = {}
    for file in sorted(tmp.iterdir()):
        fsync(file)
        parts[file.name] = sha256_bytes(file.read_bytes())
    digest = sha256_bytes(json.dumps(parts, sort_keys=True).encode())
    name = f"bm25-{digest[:16]}"
    final = folder / name
    crash_point("writing-bm25")
    if final.is_dir() and _holds_parts(final, parts):
        shutil.rmtree(tmp)
    else:
        # A damaged folder of that name is replaced (os.replace cannot replace a full folder).
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(tmp, final)
    crash_point("wrote-bm25")
    return {"name": name, "sha256": digest, "parts": parts}


def verify(folder: Path, entry: dict[str, Any], hint: str) -> None:
    """Raise StoreError unless the file (or bm25 folder) of `entry` is there and intact."""
    path = folder / entry["name"]
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


def commit_json(folder: Path, name: str, content: dict[str, Any]) -> None:
    """Write `content` to folder/name atomically: the commit point of a build."""
    tmp = folder / f".tmp-{os.getpid()}-{name}"
    tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False))
    fsync(tmp)
    crash_point("writing-manifest")
    os.replace(tmp, folder / name)
    with contextlib.suppress(OSError):
        fsync(folder)
    crash_point("committed")


def collect_garbage(folder: Path, keep: set[str]) -> None:
    """Remove data files the new manifest no longer names, and leftovers of dead builds."""
    for path in folder.iterdir():
        name = path.name
        if name in keep or not (name.startswith(DATA_PREFIXES) or name.startswith(".tmp-")):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def tmp_name(folder: Path) -> Path:
    """A fresh temporary name in `folder`. Created with open() or mkdir(), not mkstemp(), so
    the file gets the user's umask like the manifest (mkstemp makes it 0600, and an index
    built by one user could not be served by another)."""
    return folder / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crash_point(stage: str) -> None:
    if os.environ.get(CRASH_ENV) == stage:  # see CRASH_ENV: a test hook, never set in use
        os.kill(os.getpid(), signal.SIGKILL)


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
