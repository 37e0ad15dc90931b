"""Dead letters: what the node keeps when it gives up on an event in a binding.

A :class:`DeadLetter` holds the event (or its raw bytes, if they never decoded), the
final error envelope, the history of attempts, and every replay made of it.
Stores implement :class:`DeadLetterStore`; the memory store is here, the JetStream
store in :mod:`crosswire.jetstream`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from ._envelope import Event
from ._errorinfo import ErrorInfo

__all__ = ["AttemptRecord", "DeadLetter", "DeadLetterStore", "MemoryDeadLetterStore", "ReplayRecord"]


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One failed attempt: its number, when it ended (unix seconds), and why."""

    number: int
    at: float
    error: ErrorInfo


class ReplayRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One replay of a dead letter: when, and the id of the event it published."""

    at: float
    event_id: str


class DeadLetter(msgspec.Struct, kw_only=True):
    """An event a binding gave up on. ``id`` is unique per (binding, event).

    A message that never decoded keeps its ``raw`` body and, where the transport has
    them, its ``headers`` (on NATS, whatever CloudEvents attributes they carried)."""

    id: str
    binding: str
    event: Event[Any] | None
    raw: bytes | None = None
    headers: dict[str, str] | None = None
    error: ErrorInfo
    attempts: list[AttemptRecord] = []
    dead_at: float = msgspec.field(default_factory=time.time)
    replays: list[ReplayRecord] = []

    @property
    def event_type(self) -> str | None:
        return self.event.type if self.event is not None else None


def dead_letter_id(binding: str, event_id: str) -> str:
    """Deterministic: the same event dead-lettered twice in a binding is one letter."""
    return f"{binding}:{event_id}"


class DeadLetterStore(Protocol):
    """Where dead letters are kept. ``put`` must be durable before it returns on
    durable stores: the delivery is terminated only after it."""

    async def put(self, letter: DeadLetter) -> None:
        """Store (or replace, by ``id``) a dead letter."""
        ...

    async def get(self, letter_id: str) -> DeadLetter | None: ...

    async def list(self, *, binding: str | None = None, type: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        """Dead letters, oldest first, optionally filtered by binding and event type."""
        ...

    async def purge(self, letter_ids: Sequence[str] | None = None) -> int:
        """Delete the given letters (all when ``None``); returns how many were deleted."""
        ...


class MemoryDeadLetterStore:
    """Dead letters in a dict, for tests and single-process pipelines."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}

    async def put(self, letter: DeadLetter) -> None:
        self._letters[letter.id] = letter

    async def get(self, letter_id: str) -> DeadLetter | None:
        return self._letters.get(letter_id)

    async def list(self, *, binding: str | None = None, type: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        out = [
            letter
            for letter in sorted(self._letters.values(), key=lambda d: d.dead_at)
            if (binding is None or letter.binding == binding) and (type is None or letter.event_type == type)
        ]
        return out[:limit]

    async def purge(self, letter_ids: Sequence[str] | None = None) -> int:
        if letter_ids is None:
            n = len(self._letters)
            self._letters.clear()
            return n
        return sum(self._letters.pop(i, None) is not None for i in letter_ids)
