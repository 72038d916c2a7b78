"""The domain errors a user can cause and fix; the edges (CLI, UI, API) turn them into messages."""

from __future__ import annotations

from qa.asking.question import QuestionError
from qa.embedding import EmbeddingError
from qa.indexing.build import NoDocumentsError
from qa.indexing.documents import DocumentError
from qa.settings import SettingsError
from qa.stores.base import StoreError

USER_ERRORS: tuple[type[Exception], ...] = (
    DocumentError,
    EmbeddingError,
    NoDocumentsError,
    QuestionError,
    SettingsError,
    StoreError,
)
