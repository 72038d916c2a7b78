"""Run the web app: `python app.py [--host H] [--port P] [--index DIR | --store URL]`.

The same as `qa serve`: chat at http://127.0.0.1:7860/, the wiki embed at /embed, the REST API
at /api/ask (docs at /docs). Settings come from QA_* environment variables (QA_HOST, QA_PORT,
QA_INDEX, QA_STORE, QA_ALLOWED_ORIGINS, ...); flags override them.
"""

from __future__ import annotations

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
