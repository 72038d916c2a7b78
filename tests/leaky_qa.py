"""`python -m tests.leaky_qa serve ...`: the real `qa` command with a memory leak put in.

Every `KnowledgeBase.ask()` keeps LEAK_BYTES (200 KB) for good, in a module-level list: the
leak tests/test_load.py's memory check must catch.
"""

from __future__ import annotations

import sys
from typing import Any

import qa
from qa.cli import main

LEAK_BYTES = 200 * 1024
kept: list[bytes] = []


def leaky(ask: Any) -> Any:
    def ask_and_leak(self: Any, *args: Any, **kwargs: Any) -> Any:
        kept.append(bytes([len(kept) % 251 + 1]) * LEAK_BYTES)  # not zeros: every page touched
        return ask(self, *args, **kwargs)

    return ask_and_leak


if __name__ == "__main__":
    KB = qa.KnowledgeBase
    KB.ask = leaky(KB.ask)  # type: ignore[method-assign]
    sys.exit(main())
