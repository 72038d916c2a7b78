"""Readers' thumbs up/down (and a short comment) on answers, kept in the knowledge base's store.

An answer the widget shows comes with a signed token holding what was answered (question,
answer, passage ids, reader, time). A verdict names that token, a rating and a comment only,
so nobody can file feedback on an answer they were not given, name passages that were not
shown, or speak for another reader. A token is good for a day and a few verdicts (a reader may
change their mind or add a comment); the export folds verdicts on one answer into one row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from qa.types import Answer, Feedback

MAX_COMMENT_CHARS = 1000
MAX_TOKEN_CHARS = 16_000
TOKEN_TTL_S = 24 * 3600
USES_PER_TOKEN = 3


class FeedbackIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    rating: int = Field(ge=-1, le=1, description="1: helpful, -1: not helpful")
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)


class FeedbackRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Answered:
    """What a token vouches for: one answer given to one reader."""

    question: str
    answer: str
    passage_ids: tuple[str, ...]
    user: str | None
    at: str  # ISO time the answer was given


def answered(result: Answer, user: str | None) -> Answered:
    return Answered(
        question=result.question,
        answer=result.text,
        passage_ids=tuple(p.chunk.id for p in result.passages),
        user=user,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


MIN_SECRET_CHARS = 32


def check_secret(secret: str) -> str:
    """A shared QA_FEEDBACK_SECRET must be a real key: long, and not the example's placeholder
    (anyone who knows the key can sign verdicts on answers never given)."""
    if secret and (len(secret) < MIN_SECRET_CHARS or "change-me" in secret.lower()):
        from qa.settings import SettingsError

        raise SettingsError(
            f"QA_FEEDBACK_SECRET must be a random key of at least {MIN_SECRET_CHARS} characters "
            '(python -c "import secrets; print(secrets.token_hex(32))"), the same in every replica'
        )
    return secret


class FeedbackDesk:
    """Signs answers and turns verdicts on them into `Feedback` records.

    Replicas behind one load balancer must share `secret` (QA_FEEDBACK_SECRET): a verdict may
    reach another replica than the one that signed the answer. Empty: a key of this process."""

    def __init__(self, secret: str = "") -> None:
        self._key = (check_secret(secret) or secrets.token_hex(32)).encode()
        self._uses: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        # A token's nonce: unique, not secret (the signature is what cannot be forged). A
        # counter after this process's random prefix, not a random draw per answer: each draw
        # is a system call that lets go of the GIL, and under load the answering thread then
        # queues to get it back (5.6% of a busy chat server's samples, py-spy).
        self._prefix, self._count = secrets.token_hex(6), itertools.count()  # count(): atomic

    def token(self, what: Answered) -> str:
        body = json.dumps(
            {
                "q": what.question,
                "a": what.answer,
                "p": list(what.passage_ids),
                "u": what.user,
                "t": what.at,
                "e": int(time.time()) + TOKEN_TTL_S,
                "n": f"{self._prefix}{next(self._count):x}",  # equal answers: two tokens
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def verdict(self, given: FeedbackIn, user: str | None) -> Feedback:
        """The record to store, or FeedbackRefused (403 forged/expired/other reader, 429 reused)."""
        if given.rating not in (1, -1):
            raise FeedbackRefused(422, "rating: must be 1 (helpful) or -1 (not helpful)")
        payload, _, signature = given.token.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise FeedbackRefused(403, "this answer's feedback token is not valid; ask again")
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if fields["e"] < time.time():
            raise FeedbackRefused(403, "feedback on this answer has expired; ask again")
        if fields["u"] != user:
            raise FeedbackRefused(403, "this answer was given to another reader")
        self._use(signature)
        return Feedback(
            question=fields["q"],
            answer=fields["a"],
            passage_ids=tuple(fields["p"]),
            rating=given.rating,
            comment=given.comment.strip(),
            user=user,
            at=fields["t"],
        )

    def _use(self, signature: str, keep: int = 100_000) -> None:
        with self._lock:
            count = self._uses.pop(signature, 0) + 1
            if count > USES_PER_TOKEN:
                self._uses[signature] = count
                raise FeedbackRefused(429, "feedback on this answer is already recorded")
            self._uses[signature] = count
            while len(self._uses) > keep:
                self._uses.popitem(last=False)


def fold(records: Sequence[Feedback]) -> list[Feedback]:
    """One verdict per answer (same reader, question, answer and time): the last rating, with
    the last comment given."""
    merged: dict[tuple[str | None, str, str, str], Feedback] = {}
    for record in records:
        key = (record.user, record.question, record.answer, record.at)
        earlier = merged.get(key)
        comment = record.comment or (earlier.comment if earlier else "")
        merged[key] = Feedback(
            question=record.question,
            answer=record.answer,
            passage_ids=record.passage_ids,
            rating=record.rating,
            comment=comment,
            user=record.user,
            at=record.at,
        )
    return list(merged.values())
