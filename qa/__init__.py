"""qa: offline, evidence-first question answering over your documents.

`from qa import KnowledgeBase` is all a program needs; heavy libraries load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Answer", "KnowledgeBase", "Passage", "QuestionError", "Settings", "StoreError"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from qa.asking.question import QuestionError
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings
    from qa.stores.base import StoreError
    from qa.types import Answer, Passage

_HOMES = {
    "KnowledgeBase": "qa.knowledge",
    "Answer": "qa.types",
    "Passage": "qa.types",
    "QuestionError": "qa.asking.question",
    "Settings": "qa.settings",
    "StoreError": "qa.stores.base",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import qa` stays cheap (no torch, no faiss until a model is needed).
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
