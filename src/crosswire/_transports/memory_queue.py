"""The memory transport's moving parts: a consumer group's queue (:class:`Group`), its
subscriptions (:class:`MemorySubscription`) and deliveries (:class:`MemoryDelivery`).
The semantics are stated in :mod:`crosswire._transports.memory`."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from .._envelope import Event, encode_event
from .base import Delivery, Subscription

__all__ = ["Entry", "Group", "GroupStatistics", "MemoryDelivery", "MemorySubscription"]


class GroupStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer group of a :class:`MemoryTransport`."""

    pattern: str
    group: str
    pending: int
    """Accepted and not yet handed to a subscription (ready, held back by key, or
    waiting for a retry delay)."""
    held_back: int
    """Of ``pending``: waiting behind an unsettled event of the same key."""
    delayed: int
    """Of ``pending``: waiting for a ``retry(after)`` delay."""
    in_flight: int
    """Handed to a subscription and not settled."""
    subscriptions: int


class Entry:
    """One event queued in one group."""

    __slots__ = ("attempt", "event", "key", "seq")

    def __init__(self, event: Event[Any], seq: int) -> None:
        self.event = event
        self.seq = seq
        self.key = event.partitionkey
        self.attempt = 1


class MemoryDelivery(Delivery):
    """One attempt of one event for one subscription (see :class:`~crosswire.transports.Delivery`).

    Settlement is synchronous under the hood; the first settlement stands and later
    ones (or any after the subscription closed) do nothing.
    """

    __slots__ = ("_attempt", "_entry", "_raw", "_settled", "_subscription")

    def __init__(self, entry: Entry, subscription: MemorySubscription) -> None:
        self._entry = entry
        self._attempt = entry.attempt
        self._subscription = subscription
        self._settled = False
        self._raw: bytes | None = None

    @property
    def event(self) -> Event[Any]:
        return self._entry.event

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = encode_event(self._entry.event)
        return self._raw

    @property
    def decode_error(self) -> str | None:
        return None

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def settled(self) -> bool:
        """Whether this delivery was settled (or returned to the group)."""
        return self._settled

    def _settle(self) -> bool:
        if self._settled:
            return False
        self._settled = True
        self._subscription._release(self)
        return True

    async def ack(self) -> None:
        if self._settle():
            self._subscription._group.finish(self._entry)

    async def terminate(self) -> None:
        if self._settle():
            self._subscription._group.finish(self._entry)

    async def retry(self, after: float) -> None:
        if self._settle():
            self._subscription._group.retry(self._entry, after)

    async def in_progress(self) -> None:
        if not self._settled:
            self._subscription._extend(self)

    def _expire(self) -> None:
        """ack_wait passed: hand the event back for redelivery."""
        if self._settle():
            self._subscription._group.give_back([self._entry])

    def __repr__(self) -> str:
        return (
            f"MemoryDelivery(id={self._entry.event.id!r}, type={self._entry.event.type!r}, "
            f"attempt={self._attempt}, settled={self._settled})"
        )


class Group:
    """The queue of one (pattern, group): ready entries, per-key hold-back, retries."""

    def __init__(self, pattern: str, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.pattern = pattern
        self.name = name
        self._loop = loop
        self._ready: deque[Entry] = deque()
        # key -> the entry that owns it (ready, in flight or delayed) until it is done
        self._key_owner: dict[str, Entry] = {}
        self._held: dict[str, deque[Entry]] = {}
        self._held_count = 0
        self._delayed: dict[Entry, asyncio.TimerHandle] = {}
        self._waiters: deque[asyncio.Future[Entry | None]] = deque()
        self.subscriptions: set[MemorySubscription] = set()
        self.in_flight = 0

    # -- arrival ----------------------------------------------------------------------

    def put(self, entry: Entry) -> None:
        key = entry.key
        if key is not None:
            if key in self._key_owner:
                held = self._held.get(key)
                if held is None:
                    held = self._held[key] = deque()
                held.append(entry)
                self._held_count += 1
                return
            self._key_owner[key] = entry
        self._ready.append(entry)
        if self._waiters:
            self._dispatch()

    def give_back(self, entries: list[Entry]) -> None:
        """Unsettled entries return (subscription closed, ack_wait passed): next attempt,
        ahead of everything else, oldest first."""
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            entry.attempt += 1
            self._ready.appendleft(entry)
        if self._waiters:
            self._dispatch()

    def retry(self, entry: Entry, after: float) -> None:
        entry.attempt += 1
        if not after > 0:  # also catches NaN
            self._ready.append(entry)
            if self._waiters:
                self._dispatch()
            return
        self._delayed[entry] = self._loop.call_later(after, self._wake, entry)

    def _wake(self, entry: Entry) -> None:
        if self._delayed.pop(entry, None) is not None:
            self._ready.append(entry)
            if self._waiters:
                self._dispatch()

    def finish(self, entry: Entry) -> None:
        """``entry`` is done (acked or terminated): release its key to the next one."""
        key = entry.key
        if key is None or self._key_owner.get(key) is not entry:
            return
        held = self._held.get(key)
        if not held:
            del self._key_owner[key]
            return
        nxt = held.popleft()
        self._held_count -= 1
        if not held:
            del self._held[key]
        self._key_owner[key] = nxt
        self._ready.append(nxt)
        if self._waiters:
            self._dispatch()

    # -- hand-out ---------------------------------------------------------------------

    def take_nowait(self) -> Entry | None:
        """The next ready entry, if no earlier waiter is queued for it."""
        if self._ready and not self._waiters:
            return self._ready.popleft()
        return None

    def wait(self) -> asyncio.Future[Entry | None]:
        fut: asyncio.Future[Entry | None] = self._loop.create_future()
        self._waiters.append(fut)
        if self._ready:
            self._dispatch()
        return fut

    def _dispatch(self) -> None:
        waiters, ready = self._waiters, self._ready
        while waiters and ready:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(ready.popleft())

    def forget_waiter(self, fut: asyncio.Future[Entry | None]) -> None:
        if fut in self._waiters:
            self._waiters.remove(fut)

    def wake_all(self) -> None:
        """Wake every waiter with ``None`` so closed subscriptions notice."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def close(self) -> None:
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self.wake_all()

    def statistics(self) -> GroupStatistics:
        return GroupStatistics(
            pattern=self.pattern,
            group=self.name,
            pending=len(self._ready) + self._held_count + len(self._delayed),
            held_back=self._held_count,
            delayed=len(self._delayed),
            in_flight=self.in_flight,
            subscriptions=len(self.subscriptions),
        )


class MemorySubscription(Subscription):
    """An async iterator of deliveries from one group."""

    def __init__(self, group: Group, prefetch: int, ack_wait: float) -> None:
        self._group = group
        self._loop = group._loop
        self._prefetch = prefetch
        self._ack_wait = ack_wait
        # unsettled deliveries -> lease deadline (loop time); insertion order is deadline
        # order, because every lease of one subscription is ack_wait long
        self._unsettled: dict[MemoryDelivery, float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # several tasks may iterate one subscription at once: every waiter is tracked
        self._capacity: set[asyncio.Future[None]] = set()
        self._waiting: set[asyncio.Future[Entry | None]] = set()
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        group = self._group
        while True:
            if self._closed:
                raise StopAsyncIteration
            if len(self._unsettled) + len(self._waiting) >= self._prefetch:
                cap: asyncio.Future[None] = self._loop.create_future()
                self._capacity.add(cap)
                try:
                    await cap
                finally:
                    self._capacity.discard(cap)
                continue
            entry = group.take_nowait()
            if entry is None:
                fut = group.wait()
                self._waiting.add(fut)
                try:
                    entry = await fut
                except asyncio.CancelledError:
                    taken = fut.result() if fut.done() and not fut.cancelled() else None
                    if taken is not None:
                        # handed over just as we were cancelled: not delivered, not an attempt
                        self._undo(taken)
                    else:
                        group.forget_waiter(fut)
                    raise
                finally:
                    self._waiting.discard(fut)
                    if self._capacity:
                        self._wake_capacity()
                if entry is None:
                    continue  # woken by close
                if self._closed:
                    self._undo(entry)
                    raise StopAsyncIteration
            delivery = MemoryDelivery(entry, self)
            self._unsettled[delivery] = self._loop.time() + self._ack_wait
            group.in_flight += 1
            if self._sweeper is None:
                self._sweeper = self._loop.call_later(self._ack_wait, self._sweep)
            return delivery

    def _undo(self, entry: Entry) -> None:
        """Put back an entry that was taken but never handed to the caller."""
        entry.attempt -= 1  # give_back counts an attempt; this one never happened
        self._group.give_back([entry])

    def _extend(self, delivery: MemoryDelivery) -> None:
        """in_progress: a fresh lease, so it moves to the back of the deadline order."""
        del self._unsettled[delivery]
        self._unsettled[delivery] = self._loop.time() + self._ack_wait

    def _stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self) -> None:
        """One timer per subscription (not one per delivery): expire overdue leases,
        then sleep until the next deadline."""
        self._sweeper = None
        if self._closed:
            return
        now = self._loop.time()
        unsettled = self._unsettled
        while unsettled:
            delivery, deadline = next(iter(unsettled.items()))
            if deadline > now:
                self._sweeper = self._loop.call_at(deadline, self._sweep)
                return
            delivery._expire()  # removes it from unsettled

    def _release(self, delivery: MemoryDelivery) -> None:
        if self._unsettled.pop(delivery, None) is not None:
            self._group.in_flight -= 1
        if self._capacity:
            self._wake_capacity()

    def _wake_capacity(self) -> None:
        for cap in self._capacity:
            if not cap.done():
                cap.set_result(None)

    async def close(self) -> None:
        """Stop; unsettled deliveries go back to the group as their next attempt."""
        if self._closed:
            return
        self._closed = True
        self._stop_sweeper()
        group = self._group
        group.subscriptions.discard(self)
        returned = []
        for delivery in list(self._unsettled):
            if delivery._settle():
                returned.append(delivery._entry)
        if returned:
            group.give_back(returned)
        self._wake_capacity()
        for fut in list(self._waiting):
            if not fut.done():
                group.forget_waiter(fut)
                fut.set_result(None)

    def _abandon(self) -> None:
        """The transport closed: end iteration without handing anything back."""
        self._closed = True
        self._stop_sweeper()
        for delivery in list(self._unsettled):
            delivery._settle()
        self._wake_capacity()
