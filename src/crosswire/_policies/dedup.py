"""Deduplication: the idempotency-store protocol and its bounded in-memory store.

The dedup middleware keys on ``event.dedup_key`` (idempotency key, else id) scoped by
binding. A key moves ``absent → running(lease) → done(ttl)``; a failed attempt
releases it (``running → absent``) so the retry runs again. A claim whose lease ran
out (its node died) can be taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol

import msgspec

from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ConfigurationError
from .._types import OK, Attempt, Handler, Outcome

__all__ = [
    "Claim",
    "Dedup",
    "Deduplicating",
    "IdempotencyStore",
    "IdempotencyStoreStatistics",
    "MemoryIdempotencyStore",
]


class Claim(enum.Enum):
    """Result of :meth:`IdempotencyStore.claim`."""

    NEW = "new"
    """The caller owns the key now and must run the handler, then complete or release."""
    DONE = "done"
    """Already handled successfully within the TTL: ack without running."""
    BUSY = "busy"
    """Another attempt holds a live lease on the key: wait, then claim again."""


# The members bound once: on Python 3.11 reading ``Claim.NEW`` is a lookup through the
# enum's metaclass (~0.1 µs), and the in-process path reads one per claim.
_NEW, _DONE, _BUSY = Claim.NEW, Claim.DONE, Claim.BUSY


class IdempotencyStore(Protocol):
    """Atomic claims on keys. Implementations must be safe under concurrent claims
    from many tasks (and, for distributed stores, many nodes)."""

    async def claim(self, key: str, *, lease: float) -> Claim:
        """Take ``key`` for ``lease`` seconds if it is absent or its lease expired."""
        ...

    async def complete(self, key: str) -> None:
        """Mark ``key`` done; it stays done for the store's TTL."""
        ...

    async def release(self, key: str) -> None:
        """Give ``key`` up after a failed attempt, so a retry can claim it."""
        ...


class MemoryIdempotencyStore:
    """A bounded, TTL'd store for one process.

    ``max_keys`` bounds memory: the least recently written entries are evicted first,
    a sixteenth of ``max_keys`` at a time once it is reached (an evicted *done* key can
    run again — size it above the events handled per ``ttl``).
    Not thread-safe; use from one event loop.
    """

    def __init__(self, *, ttl: float = 3600.0, max_keys: int = 100_000) -> None:
        if ttl <= 0 or max_keys <= 0:
            raise ConfigurationError("ttl and max_keys must be positive")
        self.ttl = ttl
        self.max_keys = max_keys
        # key -> when it expires (time.monotonic(), always > 0): a running claim's lease
        # end, or, negated, a done key's. One float per key: no tuple to allocate, or for
        # the garbage collector to track. Least recently written first: a dict keeps the
        # order of insertion, so a write that must move a key to the end removes it first.
        self._entries: dict[str, float] = {}

    async def claim(self, key: str, *, lease: float) -> Claim:
        return self.claim_now(key, lease=lease)

    async def complete(self, key: str) -> None:
        self.complete_now(key)

    async def release(self, key: str) -> None:
        self.release_now(key)

    # The same operations without a coroutine each: the dedup layer calls these on
    # its hot path when the store is this one.

    def claim_now(self, key: str, lease: float) -> Claim:
        now = time.monotonic()
        entries = self._entries
        expires = entries.get(key)
        if expires is not None:
            if expires < 0:
                if -expires > now:
                    return _DONE
            elif expires > now:
                return _BUSY
            del entries[key]  # expired: claimed anew, so written last
        entries[key] = now + lease  # newest last: eviction takes the oldest first
        if len(entries) > self.max_keys:
            self._evict()
        return _NEW

    def complete_now(self, key: str) -> None:
        entries = self._entries
        entries.pop(key, None)
        entries[key] = -(time.monotonic() + self.ttl)
        if len(entries) > self.max_keys:
            self._evict()

    def release_now(self, key: str) -> None:
        expires = self._entries.get(key)
        if expires is not None and expires > 0:  # a running claim, not a done key
            del self._entries[key]

    def _evict(self) -> None:
        """Drop the oldest entries: the excess, and a sixteenth of ``max_keys`` more.

        A dict finds its first entry by skipping the slots its removals left at the
        front, so taking one entry at a time from a churning store would cost a scan
        each; one pass for many keys makes it a few steps per write."""
        entries = self._entries
        excess = len(entries) - self.max_keys + self.max_keys // 16
        for key in list(itertools.islice(entries, excess)):
            del entries[key]

    def statistics(self) -> IdempotencyStoreStatistics:
        return IdempotencyStoreStatistics(keys=len(self._entries), max_keys=self.max_keys)


class IdempotencyStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    keys: int
    max_keys: int


class Dedup(msgspec.Struct, frozen=True, kw_only=True):
    """The dedup policy: run each (binding, dedup key) to success at most once.

    A key already done is acknowledged without running the handler; a concurrent
    duplicate waits until the first attempt completes (then it is skipped) or fails
    (then it runs). ``lease`` bounds how long a crashed holder blocks the key (``None``:
    twice the binding's timeout, at least 60 s). ``store=None`` uses the node's store.
    """

    store: IdempotencyStore | None = None
    lease: float | None = None

    def __post_init__(self) -> None:
        if self.lease is not None and not self.lease > 0:
            raise ConfigurationError(f"Dedup.lease must be > 0 seconds, got {self.lease}")

    def layer(self, inner: Handler) -> Deduplicating:
        if self.store is None:
            raise ConfigurationError("Dedup needs a store; the node fills in its own")
        return Deduplicating(self.store, self.lease or 60.0, inner)


class Deduplicating:
    """The running dedup layer of one binding: a :data:`Handler`."""

    def __init__(self, store: IdempotencyStore, lease: float, inner: Handler) -> None:
        self.store = store
        self.lease = lease
        self._inner = inner
        self.skipped = 0

    async def __call__(self, attempt: Attempt) -> Outcome:
        store, lease = self.store, self.lease
        key = f"{attempt.binding}\x1f{attempt.event.dedup_key}"
        if type(store) is MemoryIdempotencyStore and store.claim_now(key, lease) is _NEW:
            # the common case in process: no coroutine per store operation
            try:
                outcome = await self._inner(attempt)
            except BaseException:
                store.release_now(key)
                raise
            if outcome.error is None:
                store.complete_now(key)
            else:
                store.release_now(key)
            return outcome
        pause = 0.005
        try:
            while True:
                claim = await store.claim(key, lease=lease)
                if claim is Claim.NEW:
                    break
                if claim is Claim.DONE:
                    self.skipped += 1
                    return OK
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
        except Exception as exc:  # the store itself failed: retry the event later
            return Outcome(error=_store_error(exc))
        try:
            outcome = await self._inner(attempt)
        except BaseException:
            await _quietly(store.release(key))
            raise
        try:
            if outcome.error is None:
                await store.complete(key)
            else:
                await store.release(key)
        except Exception as exc:
            if outcome.error is None:
                # the handler ran; the marker failed. The event will be retried and may run
                # again: say so rather than pretend it is done.
                return Outcome(error=_store_error(exc))
        return outcome


def _store_error(exc: Exception) -> ErrorInfo:
    return ErrorInfo.of(ErrorCode.UNAVAILABLE, f"idempotency store failed: {type(exc).__name__}: {exc}", runtime="node")


async def _quietly(aw: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):
        await aw
