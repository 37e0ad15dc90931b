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
import itertools
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import msgspec

from .._envelope import Event
from .._exceptions import ClosedError, ConfigurationError
from .._subjects import subject_matches, validate_pattern, validate_type
from .base import Features
from .memory_queue import Entry, Group, GroupStatistics, MemoryDelivery, MemorySubscription

__all__ = ["GroupStatistics", "MemoryDelivery", "MemoryStatistics", "MemoryTransport"]


class MemoryStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`MemoryTransport`."""

    published: int
    """Events accepted (after dedup)."""
    deduplicated: int
    """Events dropped because their id was already accepted."""
    groups: tuple[GroupStatistics, ...]


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
        self._groups: dict[tuple[str, str], Group] = {}
        self._routes: dict[str, list[Group]] = {}
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
        routes = self._routes
        for event in events:  # check all first: nothing is accepted if one is refused
            if not isinstance(event, Event):
                raise ConfigurationError(f"publish takes Events, got a {type(event).__name__}")
            if event.type not in routes:  # a routed type was validated when first routed
                try:
                    validate_type(event.type)
                except ValueError as exc:
                    raise ConfigurationError(str(exc)) from None
                self._route(event.type)
        seq = self._seq
        dedup = self._dedup_window > 0 and self._dedup_max_ids > 0
        seen, order, max_ids = self._seen, self._seen_order, self._dedup_max_ids
        now = time.monotonic()
        if dedup:
            horizon = now - self._dedup_window
            while order and order[0][0] <= horizon:
                del seen[order.popleft()[1]]
        for event in events:
            if dedup:
                event_id = event.id
                if event_id in seen:
                    self._deduplicated += 1
                    continue
                seen[event_id] = None
                order.append((now, event_id))
                if len(order) > max_ids:
                    del seen[order.popleft()[1]]
            self._published += 1
            groups = routes.get(event.type)
            for group in self._route(event.type) if groups is None else groups:
                group.put(Entry(event.__copy__(), next(seq)))  # type: ignore[attr-defined]  # msgspec: shallow copy

    def _route(self, event_type: str) -> list[Group]:
        groups = [g for g in self._groups.values() if subject_matches(g.pattern, event_type)]
        if len(self._routes) > 65_536:
            self._routes.clear()
        self._routes[event_type] = groups
        return groups

    async def subscribe(
        self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0
    ) -> MemorySubscription:
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
            grp = self._groups[(pattern, group)] = Group(pattern, group, loop)
            self._routes.clear()
        sub = MemorySubscription(grp, prefetch, ack_wait)
        grp.subscriptions.add(sub)
        return sub

    def statistics(self) -> MemoryStatistics:
        """A snapshot: events published and deduplicated, and each group's queues."""
        return MemoryStatistics(
            published=self._published,
            deduplicated=self._deduplicated,
            groups=tuple(g.statistics() for g in self._groups.values()),
        )
