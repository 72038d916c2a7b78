"""The `qa` command: index files, ask questions, serve the web app. Errors exit with code 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from collections.abc import Sequence

from qa import cli_feedback, cli_wiki
from qa.settings import RETRIEVAL_MODES, Settings, SettingsError, offline_defaults
from qa.types import Answer

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    offline_defaults()
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="qa: warning: %(message)s")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        from qa.errors import USER_ERRORS

        if isinstance(error, USER_ERRORS):
            print(f"qa: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa", description="Offline, evidence-first question answering over your documents."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser(
        "index", help="make a knowledge base hold exactly the documents under PATHs"
    )
    index.add_argument(
        "paths",
        nargs="+",
        help=".txt, .md, .html, .pdf files or folders; MediaWiki XML dumps (.xml, .xml.gz, .bz2)",
    )
    index.add_argument("--out", help="folder of the embedded knowledge base to write")
    _store_flag(index)
    index.add_argument(
        "--keep-missing",
        action="store_true",
        help="only add and update: keep documents that are no longer under the PATHs",
    )
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="replace a knowledge base built with another model, chunking or format",
    )
    index.add_argument("--model", help="sentence-transformers model name or local folder")
    index.add_argument("--chunk-tokens", type=int, help="most tokens in a chunk (default 254)")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    cli_wiki.add_index_flags(index)
    index.set_defaults(run=_index)

    ask = commands.add_parser("ask", help="ask a question")
    ask.add_argument("question")
    ask.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    _store_flag(ask)
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument("--top-k", type=int, help="passages to show (default 3)")
    ask.add_argument("--retrieval", choices=RETRIEVAL_MODES, help="ranking signals")
    ask.add_argument(
        "--history", help='JSON list of earlier turns: [{"role": "user", "content": "..."}]'
    )
    ask.set_defaults(run=_ask)

    evaluate = commands.add_parser("eval", help="measure answers on SQuAD v2.0-format JSON")
    evaluate.add_argument("file", help="SQuAD v2.0 JSON; each article becomes its own corpus")
    evaluate.add_argument(
        "--retrieval",
        default="hybrid",
        help=f"ranking mode(s), comma-separated, or 'all' ({', '.join(RETRIEVAL_MODES)})",
    )
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--out", help="write one JSON line per question to this file")
    evaluate.add_argument("--plot", help="draw score distributions and hit@k to this PNG")
    evaluate.add_argument("--floors", help="JSON of minimum figures; exit 1 if one is missed")
    evaluate.add_argument(
        "--approximate",
        action="store_true",
        help="search with the approximate (HNSW) index at any size, to see what it costs",
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _store_flag(evaluate, "a PostgreSQL database to run in (one schema per article, dropped)")
    evaluate.set_defaults(run=_eval)

    serve = commands.add_parser("serve", help="run the web app (chat, wiki embed, REST API)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, env QA_HOST)")
    serve.add_argument("--port", type=int, help="port (default 7860, env QA_PORT)")
    serve.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    _store_flag(serve)
    serve.set_defaults(run=_serve)

    cli_wiki.add_sync_command(commands, _store_flag, run=_sync)
    cli_feedback.add_feedback_command(
        commands, _store_flag, run=lambda a: cli_feedback.run_export(a, store_spec(a, "--index"))
    )
    return parser


def _store_flag(parser: argparse.ArgumentParser, text: str = "") -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help=text
        or "a PostgreSQL knowledge base: postgresql://user:pw@host/db[?schema=NAME] (env QA_STORE)",
    )


def store_spec(args: argparse.Namespace, folder_flag: str | None) -> str | None:
    """The knowledge base a command names: --store URL, the folder flag, QA_STORE, or None."""
    import os

    from qa.stores import is_url

    url = args.store or None
    folder = getattr(args, folder_flag.lstrip("-"), None) if folder_flag else None
    if url and folder:
        raise SettingsError(f"give either --store or {folder_flag}, not both")
    if url and not is_url(url):
        raise SettingsError(
            f"--store ({url!r}) takes a postgresql:// URL"
            + (f"; name a folder with {folder_flag}" if folder_flag else "")
        )
    if url or folder:
        return str(url or folder)
    env = os.environ.get("QA_STORE", "").strip()
    if env and not is_url(env):
        raise SettingsError(f"QA_STORE ({env!r}) must be a postgresql:// URL")
    return env or None


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        model=getattr(args, "model", None),
        chunk_tokens=getattr(args, "chunk_tokens", None),
        top_k=getattr(args, "top_k", None),
        retrieval=getattr(args, "retrieval", None),
    )


def _index(args: argparse.Namespace) -> int:
    out = store_spec(args, "--out")
    if out is None:
        raise SettingsError("say where to write: --out FOLDER or --store postgresql://...")
    return cli_wiki.run_index(args, out, _settings(args))


def _sync(args: argparse.Namespace) -> int:
    out = store_spec(args, "--out")
    if out is None:
        raise SettingsError("say where to write: --out FOLDER or --store postgresql://...")
    return cli_wiki.run_sync(args, out, _settings(args))


def _ask(args: argparse.Namespace) -> int:
    from qa.knowledge import KnowledgeBase

    history = None
    if args.history:
        try:
            history = json.loads(args.history)
        except ValueError as error:
            raise SettingsError(f"--history is not valid JSON ({error})") from None
    kb = KnowledgeBase.load(store_spec(args, "--index"), settings=_settings(args))
    result = kb.ask(args.question, history)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_answer(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qa.eval import evaluate

    modes = RETRIEVAL_MODES if args.retrieval == "all" else tuple(args.retrieval.split(","))
    for mode in modes:
        if mode not in RETRIEVAL_MODES:
            raise SettingsError(
                f"--retrieval ({mode!r}) must be one of {', '.join(RETRIEVAL_MODES)}"
            )
    if not Path(args.file).is_file():
        raise SettingsError(f"no such file: {args.file}")
    floors = json.loads(Path(args.floors).read_text()) if args.floors else None
    settings = Settings.from_env()  # --retrieval here names modes to compare, not one setting
    if args.approximate:
        settings = settings.with_overrides(approximate_above=1)
    try:
        results = evaluate.run(
            args.file,
            settings,
            modes=modes,
            progress=not args.quiet,
            store=store_spec(args, None),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise SettingsError(f"{args.file} is not usable SQuAD v2.0 JSON ({error})") from None
    if args.json:
        print(json.dumps({mode: report for mode, (report, _) in results.items()}, indent=2))
    else:
        for mode, (report, _) in results.items():
            search = "approximate (HNSW)" if args.approximate else "exact"
            print(f"\nretrieval: {mode}, {search} search\n{evaluate.table(report)}")
    main_mode = "hybrid" if "hybrid" in results else modes[0]
    if args.out:
        evaluate.write_outcomes(results[main_mode][1], args.out)
    if args.plot:
        from qa.eval.plot import plot

        plot({m: o for m, (_, o) in results.items()}, settings.abstain_threshold, args.plot)
    if floors:
        failures = evaluate.check_floors(results[main_mode][0], floors)
        for failure in failures:
            print(f"qa eval: {failure}", file=sys.stderr)
        if failures:
            return 1
        print(f"qa eval: every figure meets its floor in {args.floors}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from qa.serve.web import serve

    return serve(host=args.host, port=args.port, index=store_spec(args, "--index"))


def format_answer(result: Answer, width: int = 100) -> str:
    """The answer for a terminal: the short answer first, then the sentences it rests on, then
    each passage with the sentences marked >>> <<< and the short answer marked ** **."""
    lines = [f"Q: {result.question}"]
    lines += [f"({notice})" for notice in result.notices]
    short = result.short_answer
    if result.abstained:
        lines.append(f"A (declined): {result.text}")
    elif short:
        lines.append(f"A: {short.text} [{short.passage_rank}]")
        lines.append(textwrap.indent(textwrap.fill(result.text, width - 3), "   "))
    else:
        lines.append(f"A: {result.text}")
    lines.append(f"   confidence {result.confidence:.2f}")
    if result.abstained:
        lines.append("\nNearest passages (they do not answer it):")
    else:
        lines.append("\nEvidence:")
    for rank, p in enumerate(result.passages, start=1):
        section = f" > {p.section}" if p.section and p.section != p.title else ""
        lines.append(
            f"[{rank}] {_line(p.title)}{_line(section)} ({_line(p.source)}, chars "
            f"{p.chunk.start}-{p.chunk.end}) score {p.score:.3f}"
        )
        if p.url:  # the page (and section) a reader can open
            lines.append(f"    {_line(p.url)}")
        # At one offset, marks listed first end up innermost: ">>>**short**<<<".
        marks = [(b, "<<<") for _, b in p.highlights]
        if short and short.passage_rank == rank:
            marks += [(short.start, "**"), (short.end, "**")]
        marks += [(a, ">>>") for a, _ in p.highlights]
        marked = p.chunk.text
        for at, mark in sorted(marks, key=lambda m: m[0], reverse=True):
            marked = marked[:at] + mark + marked[at:]
        lines.append(textwrap.indent(textwrap.fill(marked, width - 4), "    "))
        if p.highlights:
            spans = ", ".join(f"{a}-{b}" for a, b in p.highlights)
            lines.append(f"    answer at passage chars {spans}")
        if short and short.passage_rank == rank:
            lines.append(f"    short answer at passage chars {short.start}-{short.end}")
    lines.append(
        "   ({retrieve:.0f} ms retrieve, {answer:.0f} ms answer)".format(**result.timings_ms)
    )
    return "\n".join(lines)


def _line(text: str) -> str:
    """Text from a document as one line with no terminal control sequences in it."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


if __name__ == "__main__":
    sys.exit(main())
