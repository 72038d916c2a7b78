"""The REST API's request and answer, as pydantic models: validation and the OpenAPI docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Turn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    question: str = Field(
        min_length=1, pattern=r"\S", description="The question, in plain text (not blank)."
    )
    history: list[Turn] = Field(
        default_factory=list, description="Earlier turns, oldest first, for follow-up questions."
    )


class PassageOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    rank: int
    doc_id: str
    chunk_id: str = Field(description="Stable id: '<doc_id>::<n>'.")
    title: str
    source: str = Field(description="The path relative to what was indexed, or the page.")
    url: str | None = Field(description="The page (and #section) a reader can open, if any.")
    section: str | None = Field(default=None, description="The heading the passage sits under.")
    start: int = Field(description="Offset of the passage in its document.")
    end: int
    text: str
    score: float
    highlights: list[list[int]] = Field(description="Answer spans, [start, end) in `text`.")


class ShortAnswerOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(description="The span that answers: a name, a date, a number, a phrase.")
    passage_rank: int = Field(description="The `rank` of the passage it lies in (1-based).")
    start: int = Field(description="Offset of the span in that passage's `text`.")
    end: int = Field(description="End offset (exclusive) of the span in that passage's `text`.")


class AnswerOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # the engine may add fields; they pass through
    question: str
    answer: str = Field(description="The answer with [n] citations, or a decline.")
    short_answer: ShortAnswerOut | None = Field(
        default=None,
        description="The shortest span that answers the question; null for a decline, an "
        "explanation, a yes/no question, or when no span of the evidence answers it.",
    )
    abstained: bool
    confidence: float
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    notices: list[str]
    search_query: str
