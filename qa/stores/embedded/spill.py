"""A writer's staging folder: every upsert goes to disk as it comes, until the commit reads it.

Documents go to a JSON-lines file, their vectors to two raw float32 files, each appended to;
the writer keeps only where each document's line and rows are. A document upserted twice keeps
its last version (the first one's bytes are simply never read). The folder is named like every
build's leftovers (`.tmp-<pid>-...`): it is removed when the writer ends, whatever happened,
and a build killed with it in place has it collected by the next one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from qa.stores.base import DocumentUpdate
from qa.stores.embedded import files
from qa.stores.embedded.lexicon import count
from qa.stores.embedded.segment import Entry


@dataclass(frozen=True)
class _Where:
    offset: int  # of its JSON line in rows.jsonl
    length: int
    chunk: int  # first row in the chunk vectors file
    chunks: int
    sentence: int  # first row in the sentence vectors file
    sentences: int
    sha256: str


class Spill:
    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        self.dim = dim
        self.dir: Path | None = None  # made at the first upsert
        self._where: dict[str, _Where] = {}
        self._handles: dict[str, IO[bytes]] = {}
        self._rows = {"chunks": 0, "sentences": 0}

    @property
    def ids(self) -> list[str]:
        return list(self._where)

    def hashes(self) -> dict[str, str]:
        return {d: w.sha256 for d, w in self._where.items()}

    def chunks(self, doc_id: str) -> int:
        return self._where[doc_id].chunks

    def sentences(self, doc_id: str) -> int:
        return self._where[doc_id].sentences

    def total_chunks(self) -> int:
        return sum(w.chunks for w in self._where.values())

    def add(self, update: DocumentUpdate, now: str) -> None:
        if self.dir is None:
            self.dir = files.tmp_name(self.folder)
            self.dir.mkdir()
            for name in ("rows", "chunks", "sentences"):
                self._handles[name] = (self.dir / name).open("xb")
        doc = update.document
        position = {chunk.id: n for n, chunk in enumerate(update.chunks)}
        line = {
            "record": {
                "id": doc.id,
                "title": doc.title,
                "source": doc.source,
                "url": doc.url,
                "revision": doc.revision,
                "groups": list(doc.groups),
                "sections": [list(section) for section in doc.sections],
                "sha256": update.sha256,
                "indexed_at": now,
                "text": doc.text,
            },
            "chunks": [[c.start, c.end] for c in update.chunks],
            "sentences": [
                [position[s.chunk_id], s.start, s.end, [list(e) for e in s.entities]]
                for s in update.sentences
            ],
            "terms": [count(t) for t in update.terms],
        }
        data = json.dumps(line, ensure_ascii=False).encode() + b"\n"
        rows = self._handles["rows"]
        self._where[doc.id] = _Where(
            rows.tell(),
            len(data),
            self._rows["chunks"],
            len(update.chunks),
            self._rows["sentences"],
            len(update.sentences),
            update.sha256,
        )
        rows.write(data)
        for name, vectors in (
            ("chunks", update.chunk_vectors),
            ("sentences", update.sentence_vectors),
        ):
            array = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
            self._handles[name].write(array.tobytes())
            self._rows[name] += len(array)

    def drop(self, doc_id: str) -> None:
        self._where.pop(doc_id, None)

    def entry(self, doc_id: str) -> Entry:
        """One spilled document, read back (its vectors are views of the spilled files)."""
        where = self._where[doc_id]
        handle = self._reader("rows")
        handle.seek(where.offset)
        line: dict[str, Any] = json.loads(handle.read(where.length))
        return Entry(
            record=line["record"],
            chunks=[(a, b) for a, b in line["chunks"]],
            sentences=[(c, a, b, tuple(tuple(e) for e in t)) for c, a, b, t in line["sentences"]],
            terms=[[(t, n) for t, n in pairs] for pairs in line["terms"]],
            chunk_vectors=self._read("chunks", where.chunk, where.chunks),
            sentence_vectors=self._read("sentences", where.sentence, where.sentences),
        )

    def _read(self, name: str, row: int, rows: int) -> np.ndarray:
        """Rows of a spilled vector file, read (not mapped: mapped pages would count in the
        writer's memory until the commit ends)."""
        handle = self._reader(name)
        handle.seek(row * self.dim * 4)
        return np.fromfile(handle, dtype=np.float32, count=rows * self.dim).reshape(rows, self.dim)

    def _reader(self, name: str) -> IO[bytes]:
        """A handle that reads what was spilled to `name` (written out first)."""
        self._handles[name].flush()
        key = f"read-{name}"
        if key not in self._handles:
            assert self.dir is not None
            self._handles[key] = (self.dir / name).open("rb")
        return self._handles[key]

    def close(self) -> None:
        """Remove the staging folder (after a commit, or a failed run alike)."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
