"""The wiki parts of the `qa` command: dumps and exports in `qa index`, and `qa sync mediawiki`."""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any

from qa.indexing.sources.access import AccessMap
from qa.settings import Settings, SettingsError

GROUPS_ENV = "QA_ACCESS_GROUPS"
USER_ENV, PASSWORD_ENV = "QA_WIKI_USER", "QA_WIKI_PASSWORD"


def add_index_flags(index: argparse.ArgumentParser) -> None:
    index.add_argument(
        "--base-url",
        help="page URLs: for a MediaWiki dump, the prefix of its pages' URLs (default: from the "
        "dump's <base>); for folders, the URL their relative paths are appended to",
    )
    index.add_argument(
        "--strip-suffix",
        action="store_true",
        help="with --base-url on folders: drop .md/.html from page URLs (index.md -> the folder)",
    )
    index.add_argument(
        "--namespaces",
        help="MediaWiki dumps: namespaces to index, numbers or names ('0,Help', 'all'; "
        "default: the main namespace)",
    )
    _groups_flag(index)


def _groups_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--groups",
        metavar="FILE",
        help=f"TOML file mapping namespaces / folders to access groups (env {GROUPS_ENV}; "
        "see README 'Access groups')",
    )


def add_sync_command(
    commands: Any,
    store_flag: Callable[[argparse.ArgumentParser], None],
    *,
    run: Callable[[argparse.Namespace], int],
) -> None:
    sync = commands.add_parser("sync", help="keep a knowledge base in sync with a live wiki")
    kinds = sync.add_subparsers(dest="kind", required=True)
    wiki = kinds.add_parser(
        "mediawiki",
        help="sync with a MediaWiki through its API: only what changed since the last run",
        description="The first run reads every page; later runs read the recent changes "
        "(edits, new pages, moves, deletions) since the last one. Safe to run from cron: a run "
        "that stops half-way leaves the knowledge base as it was.",
    )
    wiki.add_argument(
        "api", metavar="API_URL", help="the wiki's api.php, e.g. https://wiki.example.org/w/api.php"
    )
    wiki.add_argument("--out", help="folder of the embedded knowledge base to write")
    store_flag(wiki)
    wiki.add_argument(
        "--user",
        help=f"bot user for a private wiki, 'Name@bot' from Special:BotPasswords (env {USER_ENV}); "
        f"the password comes from env {PASSWORD_ENV} or --password-file",
    )
    wiki.add_argument("--password-file", help="file holding the bot password (first line)")
    wiki.add_argument(
        "--namespaces",
        help="namespaces to index, numbers or names ('0,Help', 'all'); default: the main "
        "namespace, or what the last sync used",
    )
    _groups_flag(wiki)
    wiki.add_argument("--base-url", help="prefix of page URLs (default: from the wiki itself)")
    wiki.add_argument("--full", action="store_true", help="read every page, not recent changes")
    wiki.add_argument(
        "--rebuild",
        action="store_true",
        help="start the knowledge base afresh (another model or chunking)",
    )
    wiki.add_argument("--model", help="sentence-transformers model name or local folder")
    wiki.add_argument("--quiet", action="store_true", help="no progress bars")
    wiki.set_defaults(run=run)


def run_index(args: argparse.Namespace, out: str, settings: Settings) -> int:
    """`qa index PATH...` with dumps, exports, page URLs and access groups."""
    from qa import knowledge  # its get_embedder, as KnowledgeBase.build (tests swap in a fake)
    from qa.indexing.build import index_documents
    from qa.indexing.documents import Skipped, path_text
    from qa.indexing.sources.exports import file_documents
    from qa.indexing.sources.mediawiki_dump import dump_documents, is_dump
    from qa.stores import open_store

    access = _access(args.groups)
    dumps = [p for p in args.paths if is_dump(p) and os.path.isfile(p)]
    files = [p for p in args.paths if p not in dumps]
    for path in args.paths:
        if str(path).startswith(("http://", "https://")):
            raise SettingsError(f"to index a live wiki, run: qa sync mediawiki {path} --out KB")
    if args.namespaces and not dumps:
        raise SettingsError("--namespaces applies to MediaWiki dumps (.xml); none was given")
    skipped: list[Skipped] = []
    streams: list[Iterable] = []
    if files:
        documents, skipped = file_documents(
            files, base_url=args.base_url, strip_suffix=args.strip_suffix, access=access
        )
        streams.append(documents)
    for dump in dumps:
        streams.append(
            dump_documents(
                dump,
                namespaces=args.namespaces,
                base_url=args.base_url,
                access=access,
                skipped=skipped,
                progress=not args.quiet,
            )
        )
    embedder = knowledge.get_embedder(settings.model)
    store = open_store(out, approximate_above=settings.approximate_above)
    report = index_documents(
        store,
        itertools.chain.from_iterable(streams),
        embedder,
        settings,
        keep_missing=args.keep_missing,
        rebuild=args.rebuild,
        sources=[path_text(p) for p in args.paths],
        skipped=skipped,
        progress=not args.quiet,
    )
    print(report.summary())
    return 0


def run_sync(args: argparse.Namespace, out: str, settings: Settings) -> int:
    """`qa sync mediawiki API_URL --out KB`."""
    from qa import knowledge
    from qa.indexing.sources.mediawiki_live import WikiClient
    from qa.indexing.sources.sync import sync_mediawiki
    from qa.stores import open_store

    access = _access(args.groups) if (args.groups or os.environ.get(GROUPS_ENV)) else None
    user = args.user or os.environ.get(USER_ENV) or None
    password = _password(args.password_file) if user else None
    store = open_store(out, approximate_above=settings.approximate_above)
    embedder = knowledge.get_embedder(settings.model)
    with WikiClient(args.api) as client:
        if user:
            assert password is not None
            client.login(user, password)
        report = sync_mediawiki(
            store,
            client,
            embedder,
            settings,
            namespaces=args.namespaces,
            access=access,
            base_url=args.base_url,
            full=args.full,
            rebuild=args.rebuild,
            progress=not args.quiet,
        )
    print(report.summary())
    return 0


def _access(path: str | None) -> AccessMap:
    return AccessMap.load(path or os.environ.get(GROUPS_ENV) or None)


def _password(file: str | None) -> str:
    if file:
        try:
            with open(file, encoding="utf-8") as handle:
                password = handle.readline().rstrip("\r\n")
        except OSError as error:
            raise SettingsError(f"--password-file {file}: {error.strerror or error}") from None
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise SettingsError(f"--user needs a password: set {PASSWORD_ENV} or give --password-file")
    return password
