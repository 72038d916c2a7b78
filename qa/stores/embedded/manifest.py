"""The embedded store's manifest: one typed record, written and read only here.

It names every data file with its hash, says what the index was built with (`StoreInfo`) and
holds each document's hash, so a store describes itself and loading can refuse a mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from qa.stores.base import FORMAT_VERSION, StoreError, StoreInfo
from qa.stores.embedded.files import DATA_PREFIXES

FORMAT = "qa-index"
MANIFEST = "manifest.json"
# The embedded store's own file layout, beside the format version both stores share.
# 2: segments (a base and the deltas of later commits), dead documents, BM25 as term counts.
LAYOUT = 2
# The data files a manifest names, by role.
ROLES = (
    "documents",
    "chunks",
    "sentences",
    "entities",
    "chunk_vectors",
    "sentence_vectors",
    "bm25",
)


@dataclass(frozen=True)
class Manifest:
    info: StoreInfo
    files: dict[str, dict[str, Any]]  # role -> {"name", "sha256", "bytes" | "parts"}
    documents: dict[str, str] = field(default_factory=dict)  # document id -> sha256 of its text
    counts: dict[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # the paths given to `qa index`, for the rebuild hint
    faiss: dict[str, str] = field(default_factory=dict)  # role -> FAISS index type
    libraries: dict[str, str] = field(default_factory=dict)
    created: str = ""
    state: dict[str, Any] = field(default_factory=dict)  # values writers keep (sync positions)
    # Segments committed after the base (`files`), each with the same roles, in row order.
    deltas: tuple[dict[str, dict[str, Any]], ...] = ()
    dead: tuple[int, ...] = ()  # document rows (over base then deltas) replaced or deleted

    @property
    def segments(self) -> list[dict[str, dict[str, Any]]]:
        return [self.files, *self.deltas]

    def names(self) -> set[str]:
        """Every data file (or bm25 folder) this manifest names."""
        return {entry["name"] for segment in self.segments for entry in segment.values()}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.info.format_version,
            "layout": LAYOUT,
            "info": self.info.to_dict(),
            "documents": self.documents,
            "counts": self.counts,
            "sources": list(self.sources),
            "faiss": self.faiss,
            "libraries": self.libraries,
            "created": self.created or datetime.now(UTC).isoformat(timespec="seconds"),
            "state": self.state,
            "files": self.files,
            "deltas": list(self.deltas),
            "dead": list(self.dead),
        }


def rebuild_hint(folder: Path, sources: tuple[str, ...] = ()) -> str:
    return f"rebuild it with: qa index {' '.join(sources) or 'PATH...'} --out {folder} --rebuild"


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, checked for format and a sane file list; StoreError if not."""
    path = folder / MANIFEST
    if not path.exists():
        raise StoreError(
            f"no index in {folder} ({MANIFEST} is missing); build one with: "
            f"qa index PATH... --out {folder}"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StoreError(f"{path} is unreadable ({error}); {rebuild_hint(folder)}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise StoreError(f"{path} is not a qa index manifest; {rebuild_hint(folder)}")
    sources = tuple(str(s) for s in raw.get("sources", []) if isinstance(s, str))
    found = raw.get("format_version")
    if found != FORMAT_VERSION:
        raise StoreError(
            f"{folder} has index format version {found}, this qa reads version "
            f"{FORMAT_VERSION}; {rebuild_hint(folder, sources)}"
        )
    if raw.get("layout") != LAYOUT:
        raise StoreError(
            f"{folder} has index file layout {raw.get('layout', 1)}, this qa reads layout "
            f"{LAYOUT}; {rebuild_hint(folder, sources)}"
        )
    deltas = raw.get("deltas", [])
    dead = raw.get("dead", [])
    problem = _file_list_problem(raw.get("files"))
    if not isinstance(deltas, list) or not isinstance(dead, list):
        problem = problem or "its 'deltas' or 'dead' is not a list"
    else:
        problem = problem or next(filter(None, map(_file_list_problem, deltas)), None)
        if not all(isinstance(d, int) and d >= 0 for d in dead):
            problem = problem or "its 'dead' is not a list of rows"
    if problem:
        raise StoreError(f"{path} is damaged ({problem}); {rebuild_hint(folder, sources)}")
    try:
        return Manifest(
            info=StoreInfo.from_dict(raw.get("info")),
            files=raw["files"],
            documents={str(k): str(v) for k, v in dict(raw.get("documents", {})).items()},
            counts={str(k): int(v) for k, v in dict(raw.get("counts", {})).items()},
            sources=sources,
            faiss=dict(raw.get("faiss", {})),
            libraries=dict(raw.get("libraries", {})),
            created=str(raw.get("created", "")),
            state=dict(raw.get("state") or {}),
            deltas=tuple(deltas),
            dead=tuple(dead),
        )
    except (StoreError, TypeError, ValueError) as error:
        raise StoreError(f"{path} is damaged ({error}); {rebuild_hint(folder, sources)}") from None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("faiss-cpu", "bm25s", "sentence-transformers", "transformers", "torch", "pysbd"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _file_list_problem(files: Any) -> str | None:
    """What is wrong with a manifest's list of data files, or None: loading trusts it after."""
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
