"""Run the web app: `python app.py [--host H] [--port P] [--index DIR]` (the same as `qa serve`).

Chat at http://127.0.0.1:7860/, the wiki embed at /embed, the REST API at /api/ask (docs at
/docs). Settings come from QA_* environment variables (QA_HOST, QA_PORT, QA_INDEX,
QA_ALLOWED_ORIGINS, ...); flags override them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, env QA_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860, env QA_PORT)")
    parser.add_argument("--index", help="knowledge base folder (default: the S-400 article)")
    args = parser.parse_args(argv)

    from qa.web import serve

    serve(host=args.host, port=args.port, index=args.index)


if __name__ == "__main__":
    main()
