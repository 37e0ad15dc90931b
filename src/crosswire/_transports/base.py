"""The transport interface: publish batches, consume subscriptions, settle deliveries.

Every transport (``memory``, ``jetstream``) implements :class:`Transport` and passes
the conformance suite in :mod:`crosswire.testing`, parameterised by its
:class:`Features`.

Settlement contract (what "nothing lost" rests on):

- A delivery is settled exactly once: :meth:`Delivery.ack` (done),
  :meth:`Delivery.retry` (redeliver after a delay, as attempt ``n+1``) or
  :meth:`Delivery.terminate` (never redeliver; the caller has already dead-lettered it).
  Settling an already-settled delivery does nothing: the first settlement stands.
- A delivery that is never settled (its consumer died) is redelivered by the
  transport after ``ack_wait``; durable transports survive a crash of the consumer.
- ``publish`` returns only once the transport has accepted the events (stored durably
  on durable transports); on failure it raises and the caller still owns them.
- The attempt budget counts handler runs: :meth:`Delivery.hand_back` returns a delivery
  whose handler never started without spending an attempt, on transports that can
  tell; a transport that keeps attempt history (:meth:`Delivery.record_failure`,
  :meth:`Delivery.history`) lets a later delivery, in any process, see earlier attempts.

The methods with a body below have a default that a transport may keep by
subclassing :class:`Delivery` / :class:`Subscription`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from .._deadletter import AttemptRecord
from .._envelope import Event

__all__ = ["Delivery", "Features", "Subscription", "Transport"]


class Features(msgspec.Struct, frozen=True, kw_only=True):
    """What a transport guarantees; the conformance suite runs what applies."""

    durable: bool = False
    """Accepted events survive a restart of the process (and of the broker)."""
    ordered_per_key: bool = True
    """Deliveries for one subscription arrive in publish order (per key at least)."""
    consumer_groups: bool = True
    """Subscriptions with the same group share work; different groups each get all."""
    redelivery: bool = True
    """``retry(after)`` redelivers; an unsettled delivery is redelivered after ack_wait."""
    wildcards: bool = True
    """Subscription patterns may use NATS-style ``*`` and ``>``."""


@runtime_checkable
class Delivery(Protocol):
    """One delivery of one event to one subscription (one attempt)."""

    @property
    def event(self) -> Event[Any] | None:
        """The decoded event, or ``None`` if the bytes did not decode (see ``decode_error``).

        The object belongs to this subscription: no other subscription sees it, so the
        consumer may set attributes on it (the node sets ``attempt`` and the payload).
        """

    @property
    def raw(self) -> bytes:
        """The event as its MessagePack envelope; for one that did not decode, the bytes
        as they travelled (on NATS the message body; see :attr:`headers`)."""

    @property
    def decode_error(self) -> str | None:
        """Why ``raw`` did not decode, when ``event`` is ``None``."""

    @property
    def attempt(self) -> int:
        """1 for the first delivery, +1 for each redelivery."""

    async def ack(self) -> None:
        """The event is done: never deliver it to this subscription again."""

    async def retry(self, after: float) -> None:
        """Deliver it again, as the next attempt, no sooner than ``after`` seconds."""

    async def terminate(self) -> None:
        """Never deliver it again (it was dead-lettered by the caller)."""

    async def in_progress(self) -> None:
        """Still working on it: extend the lease so it is not redelivered yet."""

    @property
    def headers(self) -> dict[str, str] | None:
        """The message headers it travelled with, where the transport has any."""
        return None

    async def hand_back(self) -> None:
        """Return it unstarted (a drain): by default a ``retry(0)``, which may count as
        an attempt; a transport that counts handler runs does not count this one."""
        await self.retry(0.0)

    async def record_failure(self, record: AttemptRecord) -> None:
        """Keep a failed attempt for later deliveries of this event (default: not kept)."""
        return None

    async def history(self) -> list[AttemptRecord]:
        """Failed attempts earlier deliveries recorded (default: none kept)."""
        return []


class Subscription(Protocol):
    """A stream of deliveries for one (pattern, group). Close it to stop receiving;
    unsettled deliveries then go back to the transport for redelivery."""

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def close(self) -> None: ...

    async def stop(self) -> None:
        """Fetch no more (a drain has begun); what was fetched but not yet handed out
        goes back unstarted. Default: nothing to do (nothing is fetched ahead)."""
        return None


class Transport(Protocol):
    """Publish and consume events. An async context manager: ``async with transport``."""

    features: Features

    async def start(self) -> None:
        """Connect / start. Idempotent."""

    async def close(self) -> None:
        """Stop; open subscriptions end. Idempotent."""

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        """Accept a batch. Returns once every event is accepted (durably, if durable).

        Events are routed by ``event.type``. Publishing an event whose ``id`` was
        already accepted (within the transport's dedup window) stores it once.

        :raises TransportError: nothing after the failing event is accepted; the
            caller may publish the batch again (ids make that safe).
        """

    async def subscribe(self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0) -> Subscription:
        """Consume events whose type matches ``pattern`` (``order.created``,
        ``order.*``, ``order.>``). Subscriptions sharing ``group`` share the work;
        each group gets every event. At most ``prefetch`` deliveries are unsettled at once.
        """
