"""The in-process transport: zero-copy, consumer groups, per-key order, redelivery.

Events never leave the process, so nothing is encoded: each consumer group receives a
shallow copy of the published :class:`~crosswire.Event` (``data`` is shared, the
object is not, so a handler attaching a payload in one group does not affect another),
and :attr:`Delivery.raw` encodes only when asked.

Semantics (what :class:`~crosswire.testing.TransportConformance` checks):

- A *group* is identified by ``(pattern, group)``. It exists from the first
  :meth:`MemoryTransport.subscribe` and receives every matching event published from
  then on, including while none of its subscriptions is open (close-and-reopen
  continues where it left off). Subscriptions of one group compete for its events.
- Per-key order: within a group, an event with a ``partitionkey`` is not delivered
  while an earlier event of the same key is unsettled or waiting to be retried, so
  one key's events arrive one at a time, in publish order, across retries. Events
  without a key are delivered in publish order with no such hold-back.
- ``retry(after)`` redelivers as ``attempt + 1`` no sooner than ``after`` seconds; an
  unsettled delivery goes back (as ``attempt + 1``) when its subscription closes or
  when ``ack_wait`` passes without :meth:`Delivery.in_progress`.
- ``publish`` drops an event whose ``id`` was accepted within ``dedup_window``
  seconds (at most ``dedup_max_ids`` ids are remembered; the oldest are forgotten).
- ``prefetch`` bounds the unsettled deliveries of one subscription.
- Not durable: everything is lost when the process exits or the transport closes.

Not thread-safe: use one event loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import msgspec

from .._envelope import Event, encode_event
from .._exceptions import ClosedError, ConfigurationError
from .._subjects import subject_matches, validate_pattern, validate_type
from .base import Delivery, Features

__all__ = ["GroupStatistics", "MemoryDelivery", "MemoryStatistics", "MemoryTransport"]


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


class MemoryStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`MemoryTransport`."""

    published: int
    """Events accepted (after dedup)."""
    deduplicated: int
    """Events dropped because their id was already accepted."""
    groups: tuple[GroupStatistics, ...]


class _Entry:
    """One event queued in one group."""

    __slots__ = ("attempt", "event", "key", "seq")

    def __init__(self, event: Event[Any], seq: int) -> None:
        self.event = event
        self.seq = seq
        self.key = event.partitionkey
        self.attempt = 1


class MemoryDelivery:
    """One attempt of one event for one subscription (see :class:`~crosswire.Delivery`).

    Settlement is synchronous under the hood; the first settlement stands and later
    ones (or any after the subscription closed) do nothing.
    """

    __slots__ = ("_attempt", "_entry", "_raw", "_settled", "_subscription")

    def __init__(self, entry: _Entry, subscription: _MemorySubscription) -> None:
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


class _Group:
    """The queue of one (pattern, group): ready entries, per-key hold-back, retries."""

    def __init__(self, pattern: str, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.pattern = pattern
        self.name = name
        self._loop = loop
        self._ready: deque[_Entry] = deque()
        # key -> the entry that owns it (ready, in flight or delayed) until it is done
        self._key_owner: dict[str, _Entry] = {}
        self._held: dict[str, deque[_Entry]] = {}
        self._held_count = 0
        self._delayed: dict[_Entry, asyncio.TimerHandle] = {}
        self._waiters: deque[asyncio.Future[_Entry | None]] = deque()
        self.subscriptions: set[_MemorySubscription] = set()
        self.in_flight = 0

    # -- arrival ----------------------------------------------------------------------

    def put(self, entry: _Entry) -> None:
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

    def give_back(self, entries: list[_Entry]) -> None:
        """Unsettled entries return (subscription closed, ack_wait passed): next attempt,
        ahead of everything else, oldest first."""
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            entry.attempt += 1
            self._ready.appendleft(entry)
        if self._waiters:
            self._dispatch()

    def retry(self, entry: _Entry, after: float) -> None:
        entry.attempt += 1
        if not after > 0:  # also catches NaN
            self._ready.append(entry)
            if self._waiters:
                self._dispatch()
            return
        self._delayed[entry] = self._loop.call_later(after, self._wake, entry)

    def _wake(self, entry: _Entry) -> None:
        if self._delayed.pop(entry, None) is not None:
            self._ready.append(entry)
            if self._waiters:
                self._dispatch()

    def finish(self, entry: _Entry) -> None:
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

    def take_nowait(self) -> _Entry | None:
        """The next ready entry, if no earlier waiter is queued for it."""
        if self._ready and not self._waiters:
            return self._ready.popleft()
        return None

    def wait(self) -> asyncio.Future[_Entry | None]:
        fut: asyncio.Future[_Entry | None] = self._loop.create_future()
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

    def forget_waiter(self, fut: asyncio.Future[_Entry | None]) -> None:
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


class _MemorySubscription:
    """An async iterator of deliveries from one group."""

    def __init__(self, transport: MemoryTransport, group: _Group, prefetch: int, ack_wait: float) -> None:
        self._transport = transport
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
        self._waiting: set[asyncio.Future[_Entry | None]] = set()
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

    def _undo(self, entry: _Entry) -> None:
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


class MemoryTransport:
    """In-process transport for tests and single-process pipelines.

    :param dedup_window: seconds an accepted event id is remembered.
    :param dedup_max_ids: at most this many ids are remembered (oldest forgotten first).
    """

    features = Features(durable=False, ordered_per_key=True, consumer_groups=True, redelivery=True, wildcards=True)

    def __init__(self, *, dedup_window: float = 120.0, dedup_max_ids: int = 100_000) -> None:
        if dedup_window < 0:
            raise ConfigurationError(f"dedup_window must be >= 0, got {dedup_window}")
        if dedup_max_ids < 0:
            raise ConfigurationError(f"dedup_max_ids must be >= 0, got {dedup_max_ids}")
        self._dedup_window = dedup_window
        self._dedup_max_ids = dedup_max_ids
        # ids accepted within the dedup window, and (accepted at, id) oldest first
        self._seen: dict[str, None] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self._groups: dict[tuple[str, str], _Group] = {}
        self._routes: dict[str, list[_Group]] = {}
        self._seq = itertools.count()
        self._published = 0
        self._deduplicated = 0
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> MemoryTransport:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start accepting events. Idempotent.

        :raises ClosedError: the transport was closed (it cannot restart).
        """
        if self._closed:
            raise ClosedError("MemoryTransport is closed and cannot be restarted")
        if not self._started:
            self._loop = asyncio.get_running_loop()
            self._started = True

    async def close(self) -> None:
        """Stop: open subscriptions end, queued events are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for group in self._groups.values():
            for sub in list(group.subscriptions):
                sub._abandon()
            group.subscriptions.clear()
            group.close()

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise ClosedError("MemoryTransport is closed")
        if self._loop is None:
            raise ClosedError("MemoryTransport is not started: call start() or use `async with`")
        return self._loop

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        """Accept ``events``: each matching group gets its own shallow copy.

        :raises ClosedError: the transport is not running.
        :raises ConfigurationError: an item is not an :class:`Event`, or its type is not
            a valid subject (nothing is accepted).
        """
        self._check_open()
        for event in events:
            if not isinstance(event, Event):
                raise ConfigurationError(f"publish takes Events, got a {type(event).__name__}")
            try:
                validate_type(event.type)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
        dedup = self._dedup_window > 0 and self._dedup_max_ids > 0
        seen, order = self._seen, self._seen_order
        now = time.monotonic()
        if dedup:
            horizon = now - self._dedup_window
            while order and order[0][0] <= horizon:
                del seen[order.popleft()[1]]
        routes, seq = self._routes, self._seq
        for event in events:
            if dedup:
                event_id = event.id
                if event_id in seen:
                    self._deduplicated += 1
                    continue
                seen[event_id] = None
                order.append((now, event_id))
                if len(order) > self._dedup_max_ids:
                    del seen[order.popleft()[1]]
            self._published += 1
            groups = routes.get(event.type)
            if groups is None:
                groups = self._route(event.type)
            for group in groups:
                group.put(_Entry(copy.copy(event), next(seq)))

    def _route(self, event_type: str) -> list[_Group]:
        groups = [g for g in self._groups.values() if subject_matches(g.pattern, event_type)]
        if len(self._routes) > 65_536:
            self._routes.clear()
        self._routes[event_type] = groups
        return groups

    async def subscribe(
        self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0
    ) -> _MemorySubscription:
        """Consume the events of ``(pattern, group)``; see the module docstring.

        :raises ConfigurationError: invalid pattern, empty group, ``prefetch < 1`` or
            ``ack_wait <= 0``.
        :raises ClosedError: the transport is not running.
        """
        try:
            validate_pattern(pattern)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not isinstance(group, str) or not group:
            raise ConfigurationError("group must be a non-empty str")
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be >= 1, got {prefetch}")
        if not ack_wait > 0:
            raise ConfigurationError(f"ack_wait must be > 0 seconds, got {ack_wait}")
        loop = self._check_open()
        grp = self._groups.get((pattern, group))
        if grp is None:
            grp = self._groups[(pattern, group)] = _Group(pattern, group, loop)
            self._routes.clear()
        sub = _MemorySubscription(self, grp, prefetch, ack_wait)
        grp.subscriptions.add(sub)
        return sub

    def statistics(self) -> MemoryStatistics:
        """A snapshot: events published and deduplicated, and each group's queues."""
        return MemoryStatistics(
            published=self._published,
            deduplicated=self._deduplicated,
            groups=tuple(g.statistics() for g in self._groups.values()),
        )
