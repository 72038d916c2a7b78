"""Keep a knowledge base in sync with a live MediaWiki: only changed pages are re-embedded.

The first run (or one whose namespaces, access groups or page URLs differ from the last) lists
every page; later runs read the recent changes since the last run: edits and new pages are
re-embedded, deleted pages removed, moved pages renamed (a page keeps its id when moved). All
of a run's changes and the new position commit together, so a run stopped at any point leaves
the previous consistent knowledge base, and the next run starts from where that one stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from qa.embedding import Embedder
from qa.indexing import helper
from qa.indexing.build import Batch, document_hash, embed_batch, store_info
from qa.indexing.documents import DocumentError, Skipped
from qa.indexing.sources.access import AccessMap
from qa.indexing.sources.mediawiki import Site, SourceError, page_document
from qa.indexing.sources.mediawiki_live import WikiClient, page_content
from qa.settings import Settings
from qa.stores.base import Store, StoreError, StoreInfo
from qa.types import Document, DocumentInfo

log = logging.getLogger("qa")

# MediaWiki keeps recent changes for 90 days ($wgRCMaxAge); a position older than this may
# have lost changes, so the run lists every page instead.
RECENT_CHANGES_DAYS = 80
# Each run re-reads this many seconds before where the last one stopped: MediaWiki writes a
# change's entry after the edit itself (a deferred update), so an entry can appear with a time
# the last run had already passed. Pages read twice are unchanged and not re-embedded.
OVERLAP_SECONDS = 120


@dataclass
class SyncReport:
    location: str
    full: bool  # every page was listed (first run, changed settings, or --full)
    changes: int  # recent-change entries read
    embedded: int = 0  # pages whose vectors were computed in this run
    reused: int = 0  # pages read but unchanged
    removed: int = 0  # pages deleted (or moved out of the namespaces, or now redirects)
    renamed: int = 0  # pages moved to a new title
    skipped: list[Skipped] = field(default_factory=list)
    position: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        kind = "full sync" if self.full else f"{self.changes} recent change(s)"
        return (
            f"synced {self.location} ({kind}): embedded {self.embedded}, unchanged "
            f"{self.reused}, removed {self.removed}, renamed {self.renamed}, skipped "
            f"{len(self.skipped)} page(s) in {self.seconds:.1f}s; next sync starts at "
            f"{self.position}"
        )


def state_key(site: Site) -> str:
    return f"mediawiki:{site.wiki_id}"


def sync_mediawiki(
    store: Store,
    client: WikiClient,
    embedder: Embedder,
    settings: Settings,
    *,
    namespaces: str | None = None,
    access: AccessMap | None = None,
    base_url: str | None = None,
    full: bool = False,
    rebuild: bool = False,
    progress: bool = True,
) -> SyncReport:
    """Bring `store` in line with the wiki behind `client` (see the module docstring)."""
    began = time.perf_counter()
    site, now = client.site(base_url)
    key = state_key(site)
    existing = None if rebuild else _existing_info(store)
    # A cheap check first; the full one (weights fingerprint) needs the model loaded.
    if existing and "model" in settings.configured and existing.model_id != settings.model:
        raise StoreError(
            f"{store.location}: it was built with model {existing.model_id!r}, but the "
            f"configured model is {settings.model!r}; run the sync again with --rebuild"
        )
    previous = (store.state(key) if existing is not None else None) or {}
    before = previous.get("config") or {}
    # What the last run was told is kept: leaving out --groups must not open restricted pages.
    if access is None:
        access = AccessMap.from_json(before.get("access") or {}) if before else AccessMap()
    chosen = sorted(site.namespace_ids(namespaces) if namespaces or not before
                    else before.get("namespaces") or [0])  # fmt: skip
    config = {
        "api": client.api_url,
        "namespaces": chosen,
        "access": access.to_json(),
        "article_url": site.article_url,
    }
    since = str(previous.get("position") or "")
    full = full or rebuild or config != before or _too_old(since)
    stored = {d.id: d for d in store.documents() if site.owns(d.id)} if existing else {}
    report = SyncReport(store.location, full, 0, skipped=[])
    gone: set[str] = set()  # filled while the changed pages stream, read once all are seen
    wanted = None
    if full:
        documents: Iterable[Document] = _all_pages(client, site, chosen, access, report, progress)
        position = now
    else:
        changes = list(client.recent_changes(_earlier(since, OVERLAP_SECONDS)))
        report.changes = len(changes)
        position = max([since, *(str(c.get("timestamp", "")) for c in changes)])
        documents = list(_changed(client, site, chosen, access, changes, stored, report, gone))
        hashes = {doc_id: info.sha256 for doc_id, info in stored.items()}
        if all(hashes.get(d.id) == document_hash(d) for d in documents):
            wanted = existing  # nothing to embed: the model need not even load
            if not (set(gone) & set(stored)) and position == since:
                report.reused, report.position = len(documents), position
                report.seconds = time.perf_counter() - began
                return report  # nothing changed: no commit (an embedded store rewrites files)
    if wanted is None:
        wanted = store_info(embedder, settings)
        if existing is not None and (problem := existing.mismatch(wanted)):
            raise StoreError(f"{store.location}: {problem}; run the sync again with --rebuild")
    _apply(store, wanted, embedder, settings, stored, documents, full, gone, report, rebuild,
           progress, state=(key, {"config": config, "position": position}))  # fmt: skip
    report.position = position
    report.seconds = time.perf_counter() - began
    return report


def _existing_info(store: Store) -> StoreInfo | None:
    try:
        return store.info()
    except StoreError as error:
        raise StoreError(f"{error}; or replace it: run the sync again with --rebuild") from None


def _earlier(stamp: str, seconds: int) -> str:
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return then.strftime("%Y-%m-%dT%H:%M:%SZ")


def _too_old(since: str) -> bool:
    if not since:
        return True
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return True
    return datetime.now(UTC) - then > timedelta(days=RECENT_CHANGES_DAYS)


def _all_pages(
    client: WikiClient,
    site: Site,
    chosen: list[int],
    access: AccessMap,
    report: SyncReport,
    progress: bool,
) -> Iterator[Document]:
    from tqdm import tqdm

    with tqdm(desc="reading pages", unit="page", disable=not progress) as bar:
        for namespace in chosen:
            for page in client.all_pages(namespace):
                bar.update(1)
                document = _document(site, page, chosen, access, report)
                if document is not None:
                    yield document


def _document(
    site: Site, page: dict[str, Any], chosen: list[int], access: AccessMap, report: SyncReport
) -> Document | None:
    """The page as a document, or None when it is not one (gone, redirect, other namespace)."""
    if page.get("missing") or page.get("invalid") or page.get("redirect"):
        return None
    if page.get("ns") not in chosen or not page.get("pageid"):
        return None
    revision, model, wikitext = page_content(page)
    if wikitext is None or model not in (None, "wikitext"):
        return None
    try:
        return page_document(
            site,
            page_id=int(page["pageid"]),
            namespace=int(page["ns"]),
            title=str(page.get("title", "")),
            revision=revision,
            wikitext=wikitext,
            access=access,
        )
    except DocumentError as error:
        report.skipped.append(Skipped(f"page {page.get('title')!r}", str(error)))
        log.warning("%s", report.skipped[-1])
        return None


def _changed(
    client: WikiClient,
    site: Site,
    chosen: list[int],
    access: AccessMap,
    changes: list[dict[str, Any]],
    stored: dict[str, DocumentInfo],
    report: SyncReport,
    gone: set[str],
) -> Iterator[Document]:
    """The changed pages as they are now; the ids of pages that are no documents go to `gone`."""
    ids: set[int] = set()
    titles: set[str] = set()
    for change in changes:
        if change.get("ns") not in chosen and change.get("logtype") != "move":
            continue  # a page we do not index (a move may bring one in: it is kept)
        if int(change.get("pageid") or 0) > 0:
            ids.add(int(change["pageid"]))
        if change.get("type") == "log" and change.get("title"):
            titles.add(str(change["title"]))  # deletions have no page id left to ask for
        target = (change.get("logparams") or {}).get("target_title")
        if change.get("logtype") == "move" and isinstance(target, str):
            titles.add(target)
    by_title = {d.title: d.id for d in stored.values()}
    yielded: set[str] = set()
    for page in client.pages(ids=ids, titles=titles):
        doc_id = site.doc_id(page["pageid"]) if page.get("pageid") else None
        document = _document(site, page, chosen, access, report)
        title_owner = by_title.get(str(page.get("title")))
        if title_owner is not None and title_owner != doc_id:
            # The title now belongs to another page: the stored one was deleted (its id may
            # not be in the change list) or moved (then it is among the pages seen, and kept).
            gone.add(title_owner)
        if document is not None:
            if document.id in yielded:  # asked for by id and by title
                continue
            yielded.add(document.id)
            old = stored.get(document.id)
            if old is not None and old.title != document.title:
                report.renamed += 1
            yield document
            continue
        if doc_id is not None and doc_id in stored:
            gone.add(doc_id)
        elif page.get("missing") and page.get("title") in by_title:
            gone.add(by_title[str(page["title"])])


def _apply(
    store: Store,
    wanted: StoreInfo,
    embedder: Embedder,
    settings: Settings,
    stored: dict[str, DocumentInfo],
    documents: Iterable[Document],
    full: bool,
    gone: set[str],
    report: SyncReport,
    rebuild: bool,
    progress: bool,
    *,
    state: tuple[str, dict[str, Any]],
) -> None:
    """Upsert the changed documents, delete the gone ones, keep the position: one commit."""
    from tqdm import tqdm

    hashes = {doc_id: info.sha256 for doc_id, info in stored.items()}
    seen: set[str] = set()
    batch = Batch()
    bar = tqdm(desc="embedding", unit="sentence", total=0, disable=not progress)
    sources = [f"mediawiki {state[1]['config']['api']}"]
    with (
        bar,
        store.writer(wanted, sources=sources, progress=progress, reset=rebuild) as writer,
        helper.sharing(),  # exits first: the helper process is gone before the lock is
    ):
        for document in documents:
            if document.id in seen:
                continue
            seen.add(document.id)
            digest = document_hash(document)
            if hashes.get(document.id) == digest:
                report.reused += 1
                continue
            if batch.add(document, digest):
                _flush(writer, batch.take(), embedder, settings, bar, report)
        _flush(writer, batch.take(), embedder, settings, bar, report)
        for doc_id in sorted((set(stored) if full else gone) - seen):
            writer.delete(doc_id)
            report.removed += 1
        writer.set_state(*state)
    if not full and not report.changes:
        log.info("no change since %s", state[1]["position"])


def _flush(writer: Any, batch: list[tuple[Document, str]], embedder: Embedder,
           settings: Settings, bar: Any, report: SyncReport) -> None:  # fmt: skip
    if not batch:
        return
    for update in embed_batch(batch, embedder, settings, bar):
        writer.upsert(update)
    report.embedded += len(batch)


__all__ = ["SourceError", "SyncReport", "state_key", "sync_mediawiki"]
