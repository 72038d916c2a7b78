"""A knowledge base of two documents: one open to everyone, one to the "hr" group only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HOLIDAYS = (
    "The office is closed on public holidays. Every employee has 25 days of paid holiday a "
    "year, booked through the staff portal at least two weeks ahead."
)
SALARIES = "Salaries are paid on the 25th of each month by bank transfer from the payroll office."


def build(folder: Path, embedder: Any) -> Any:
    from qa.indexing.build import index_documents
    from qa.knowledge import KnowledgeBase
    from qa.settings import Settings
    from qa.stores import open_store
    from qa.types import Document

    docs = [
        Document(id="holidays.md", title="Holidays", source="holidays.md", text=HOLIDAYS),
        Document(
            id="salaries.md", title="Salaries", source="salaries.md", text=SALARIES, groups=("hr",)
        ),
    ]
    store = open_store(folder)
    index_documents(store, docs, embedder, Settings(), progress=False)
    store.close()
    return KnowledgeBase.load(folder, embedder=embedder)
