"""Dead letters, first class: list, show, replay, purge — the same from Python and the CLI.

Replay republishes the dead event as a new event ``<id>.r<n>`` aimed at the binding
that gave up on it (extension ``replayto``; other bindings acknowledge it without
running), with the original idempotency key. It is:

- **idempotent** — a letter whose last replay came after it was dead-lettered is not
  replayed again (the replay is in flight or succeeded); the replay id is
  deterministic, so a retried publish is stored once;
- **capped** — at most ``max_replays`` replays per letter, and ``limit`` letters per call;
- **recorded** — each replay is appended to the letter's ``replays``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from ._deadletter import DeadLetter, DeadLetterStore, ReplayRecord
from ._envelope import Event

__all__ = ["DeadLetters", "ReplayResult"]

REPLAY_TARGET = "replayto"
TRUNCATED = "cwtruncated"
"""Extension of a dead-lettered event whose data was cut to fit the store (its original size)."""
REPLAY_OF = "replayof"


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    replayed: list[str]
    """Letter ids replayed by this call."""
    skipped: dict[str, str]
    """Letter id -> why it was not replayed."""


class DeadLetters:
    """The node's dead letters: a store plus replay."""

    def __init__(
        self,
        store: DeadLetterStore,
        publish: Callable[[Sequence[Event[Any]]], Awaitable[None]],
        *,
        max_replays: int = 5,
    ) -> None:
        self.store = store
        self._publish = publish
        self.max_replays = max_replays

    async def list(self, *, binding: str | None = None, type: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        return await self.store.list(binding=binding, type=type, limit=limit)

    async def get(self, letter_id: str) -> DeadLetter | None:
        return await self.store.get(letter_id)

    async def purge(self, letter_ids: Sequence[str] | None = None) -> int:
        return await self.store.purge(letter_ids)

    async def replay(
        self,
        letter_id: str | None = None,
        *,
        binding: str | None = None,
        type: str | None = None,
        all: bool = False,
        limit: int = 100,
    ) -> ReplayResult:
        """Replay one letter by id, or every letter matching ``binding``/``type``
        (``all=True`` with no filter replays everything), at most ``limit`` per call.

        :raises ValueError: no letter id, filter or ``all`` was given.
        """
        if letter_id is not None:
            letter = await self.store.get(letter_id)
            letters = [letter] if letter is not None else []
            skipped = {} if letter is not None else {letter_id: "no such dead letter"}
        elif binding is not None or type is not None or all:
            letters = await self.store.list(binding=binding, type=type, limit=100_000)
            skipped = {}
        else:
            raise ValueError("replay needs a letter id, a binding/type filter, or all=True")
        replayed: list[str] = []
        for letter in letters:
            if len(replayed) >= limit:
                skipped[letter.id] = f"over the limit of {limit} per call"
                continue
            why = self._why_not(letter)
            if why is not None:
                skipped[letter.id] = why
                continue
            assert letter.event is not None
            n = len(letter.replays) + 1
            original = str(letter.event.extensions.get(REPLAY_OF, letter.event.id))
            event = msgspec.structs.replace(
                letter.event,
                id=f"{original}.r{n}"[:256],
                attempt=1,
                idempotencykey=letter.event.dedup_key,
                extensions={**letter.event.extensions, REPLAY_TARGET: letter.binding, REPLAY_OF: original},
            )
            # Record first, then publish: the replayed event may die again before a later
            # write could land, and the node's new letter must carry this replay with it.
            record = ReplayRecord(at=time.time(), event_id=event.id)
            letter.replays.append(record)
            await self.store.put(letter)
            try:
                await self._publish([event])
            except BaseException:
                letter.replays.remove(record)
                await self.store.put(letter)
                raise
            replayed.append(letter.id)
        return ReplayResult(replayed=replayed, skipped=skipped)

    def _why_not(self, letter: DeadLetter) -> str | None:
        if letter.event is None:
            return "the event never decoded; there is nothing to replay"
        if TRUNCATED in letter.event.extensions:
            return (
                f"the letter keeps only part of the event's data (it had {letter.event.extensions[TRUNCATED]} "
                "bytes, too large to store whole); replaying it would hand the handler different data"
            )
        if letter.replays and letter.replays[-1].at >= letter.dead_at:
            return f"already replayed as {letter.replays[-1].event_id}"
        if len(letter.replays) >= self.max_replays:
            return f"replayed {len(letter.replays)} times already (max {self.max_replays})"
        return None
