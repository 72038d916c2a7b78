"""`qa feedback export`: readers' verdicts on answers, out of the store, for whoever tunes it.

One row per verdict (a reader who changed their mind or added a comment counts once), with the
passages the answer showed and their documents, so that "which documents give unhelpful
answers" is one sort away. A summary on stderr names the documents most often voted down.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from qa.settings import SettingsError
from qa.types import Feedback

FORMATS = ("csv", "json")
COLUMNS = ("at", "user", "rating", "question", "answer", "comment", "passage_ids", "documents")


def add_feedback_command(
    commands: Any,
    store_flag: Callable[[argparse.ArgumentParser], None],
    *,
    run: Callable[[argparse.Namespace], int],
) -> None:
    feedback = commands.add_parser("feedback", help="readers' thumbs up/down on answers")
    actions = feedback.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="write every verdict to a CSV or JSON file")
    export.add_argument("--out", required=True, help="file to write ('-' for standard output)")
    export.add_argument("--format", choices=FORMATS, help="default: from --out's extension, csv")
    export.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    store_flag(export)
    export.set_defaults(run=run)


def document_of(chunk_id: str) -> str:
    """ "<doc id>::<n>" -> "<doc id>"."""
    return chunk_id.rsplit("::", 1)[0]


def rows(records: Sequence[Feedback]) -> list[dict[str, Any]]:
    from qa.serve.feedback import fold

    out = []
    for record in fold(records):
        documents = list(dict.fromkeys(document_of(p) for p in record.passage_ids))
        out.append(
            {
                "at": record.at,
                "user": record.user or "",
                "rating": record.rating,
                "question": record.question,
                "answer": record.answer,
                "comment": record.comment,
                "passage_ids": list(record.passage_ids),
                "documents": documents,
            }
        )
    return out


def write(found: list[dict[str, Any]], out: str, form: str) -> None:
    if out == "-":
        _write(found, sys.stdout, form)
        return
    with Path(out).open("w", encoding="utf-8", newline="") as handle:
        _write(found, handle, form)


def _write(found: list[dict[str, Any]], handle: TextIO, form: str) -> None:
    if form == "json":
        json.dump(found, handle, ensure_ascii=False, indent=2)
        handle.write("\n")
        return
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    for row in found:
        flat = {k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()}
        writer.writerow({k: _cell(v) for k, v in flat.items()})


def _cell(value: Any) -> Any:
    """Text a spreadsheet will not run as a formula (a comment starting with '=')."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def summary(found: list[dict[str, Any]]) -> str:
    up = sum(1 for row in found if row["rating"] > 0)
    down = Counter(doc for row in found if row["rating"] < 0 for doc in row["documents"][:1])
    line = f"qa feedback: {len(found)} verdicts, {up} helpful, {len(found) - up} not helpful"
    if down:
        worst = ", ".join(f"{doc} ({n})" for doc, n in down.most_common(5))
        line += f"; first passage of unhelpful answers from: {worst}"
    return line


def run_export(args: argparse.Namespace, spec: str | None) -> int:
    from qa.settings import DEFAULT_INDEX_DIR
    from qa.stores import StoreError, open_store

    form = args.format or ("json" if str(args.out).lower().endswith(".json") else "csv")
    if args.out != "-" and not Path(args.out).parent.is_dir():
        raise SettingsError(f"--out: no such folder: {Path(args.out).parent}")
    store = open_store(spec or DEFAULT_INDEX_DIR)  # the store alone: no model to load
    try:
        if store.info() is None:
            raise StoreError(f"no knowledge base in {store.location}")
        found = rows(store.feedback())
    finally:
        store.close()
    write(found, args.out, form)
    print(summary(found), file=sys.stderr)
    return 0
