"""The domain errors a user can cause and fix; the edges (CLI, UI, API) turn them into messages."""

from __future__ import annotations

from qa.documents import DocumentError
from qa.embedding import EmbeddingError
from qa.indexing import NoDocumentsError
from qa.question import QuestionError
from qa.settings import SettingsError
from qa.store import StoreError

USER_ERRORS: tuple[type[Exception], ...] = (
    DocumentError,
    EmbeddingError,
    NoDocumentsError,
    QuestionError,
    SettingsError,
    StoreError,
)
