"""`python -m tests.fake_qa index ...`: the real `qa` command with FakeEmbedder in place of MiniLM.

For fault tests that run (and kill) many builds, where the model does not matter and loading
torch for each one would dominate the test time.
"""

from __future__ import annotations

import sys

import qa.knowledge
from qa.cli import main
from tests.fakes import FakeEmbedder

if __name__ == "__main__":
    qa.knowledge.get_embedder = lambda model="": FakeEmbedder()  # type: ignore[assignment]
    sys.exit(main())
