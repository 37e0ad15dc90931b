"""The pull loop: deliveries of one durable pull consumer, as an async iterator.

Keeps pull requests outstanding (``prefetch`` messages, topped up when half were
delivered), so the broker streams messages while earlier ones are handled. What a
subscription holds (requested, queued or being handled) is bounded in messages by
``prefetch`` and in bytes of event data by ``prefetch_bytes``, plus at most one
message: every pull request carries ``max_bytes`` of what is left of the budget
(at least the server's ``max_payload``, so one large message always gets through).

Stopping (:meth:`JetStreamSubscription.stop`, at the start of a drain) asks for
nothing more at once, withdraws the outstanding pull requests (the inbox is drained:
the broker drops requests nobody listens to, and what was already on its way is
still received), and hands back every delivery not yet given to the consumer. A hand
back is recorded before the nak (see :mod:`.attempts`), and the connection is
flushed, so the broker has every one of them back when ``stop()`` returns.

The inbox is a direct subscription of :class:`.headers.Client`: deliveries are taken in the
read loop from the frame's bytes (no ``Msg``, queue or task per message); status messages
(heartbeats, ends of pull requests) and header blocks the cheap parser leaves alone take
nats-py's path to :meth:`JetStreamSubscription._on_msg`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.msg import Msg

from ..._envelope import Event
from ..._exceptions import TransportError
from .attempts import AttemptStore
from .connection import Confirmer, flush
from .delivery import JetStreamDelivery, hand_back_all
from .frames import read_block
from .headers import Client, parse_header_block

__all__ = ["JetStreamSubscription"]

log = logging.getLogger("crosswire.jetstream")

_PULL_EXPIRES = 5.0
_PULL_HEARTBEAT = 1.0
_NAK = b"-NAK"
_FLUSH_TIMEOUT = 10.0
_FINISHED_KEPT = 4096  # stream sequences remembered as acked/terminated, per subscription
_drains: set[asyncio.Task[None]] = set()  # inbox drains in progress (never cancelled)
_Headers = dict[str, str] | bytes | None  # a dict, or a block frames.read_block read (then _Read)
_Read = tuple[Event[Any], str | None] | None


class JetStreamSubscription:
    """Deliveries of one durable pull consumer, as an async iterator.

    Keeps up to ``prefetch`` messages requested from the broker. ``close()`` stops
    pulling and naks every delivery not yet settled, so the consumer's other members
    (or a later subscription) get them without waiting for ``ack_wait``.

    :param latest: stream sequence -> newest delivery, shared by the subscriptions of
        one consumer on one connection (a redelivery may reach a sibling).
    :param on_close: called once when the subscription closed.
    :param attempts: where hand-backs and failed attempts are recorded; ``None``: the
        attempt is the delivery count.
    :param subject_prefix: events are on ``<prefix>.<type>``; one whose subject says
        otherwise is delivered without an event (see :mod:`.delivery`).
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        prefetch: int,
        *,
        latest: dict[int, JetStreamDelivery],
        on_close: Callable[[JetStreamSubscription], None],
        attempts: AttemptStore | None = None,
        subject_prefix: str | None = None,
        prefetch_bytes: int | None = None,
        ack_wait: float | None = None,
        confirmer: Confirmer | None = None,
    ) -> None:
        self._nc = nc
        self.write: Callable[[bytes, bytes], None] = nc.write
        """Send a settlement to a reply subject (see :class:`.delivery.SettleListener`)."""
        self._stream = stream
        self._consumer = consumer
        self._prefetch = prefetch
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._ready: deque[JetStreamDelivery | None] = deque()
        self._takers: deque[asyncio.Future[None]] = deque()  # iterators waiting for _ready
        # queued deliveries' leases are renewed this long after queued_at (a scan of the queue every half tick)
        self._renew_after = ack_wait / 3 if ack_wait is not None else None
        self._next_scan = 0.0
        self._unsettled: set[JetStreamDelivery] = set()
        self._latest = latest
        # stream sequence -> "ack"/"term" of the last deliveries settled for good: a
        # redelivery of one (its lease ran out while the settlement was on its way) is
        # settled the same way again, never handed out. Two generations of at most
        # _FINISHED_KEPT each: the newest _FINISHED_KEPT at least are remembered.
        self._finished: dict[int, str] = {}
        self._finished_before: dict[int, str] = {}
        self.late_redeliveries = 0
        self._on_close = on_close
        self._attempts = attempts
        self.confirmer = confirmer
        self._prefix = f"{subject_prefix}." if subject_prefix is not None else None
        self._loading: dict[JetStreamDelivery, asyncio.Task[None]] = {}
        self._late: list[JetStreamDelivery] = []  # arrived while stopping
        self._stopping = False
        self._stopped = False
        self._requested = 0
        self._refill = max(1, prefetch // 2)  # ask for more once this much room is free
        self._tick = min(_PULL_HEARTBEAT, ack_wait / 6) if ack_wait is not None else _PULL_HEARTBEAT
        self._prefetch_bytes = prefetch_bytes
        self._refill_bytes = (prefetch_bytes or 0) // 2
        self._held_bytes = 0  # event bytes of unsettled deliveries
        self._requested_bytes = 0  # max_bytes still open in outstanding requests
        self._wake = asyncio.Event()
        self._last_activity = time.monotonic()
        self._closed = False
        self._sub: Any = None
        self._pull_task: asyncio.Task[None] | None = None
        self.received = 0
        self.acked = 0

    @property
    def consumer(self) -> str:
        return self._consumer

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._nc.direct(self._sub._id, self._on_frame)
        await flush(self._nc, _FLUSH_TIMEOUT)  # the server has the interest before anything is asked
        self._pull_task = asyncio.create_task(self._pull_loop(), name=f"crosswire-pull-{self._consumer}")

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> bool:
        """A message of the inbox, straight from the read loop; ``False``: one for
        nats-py's path (a status message, or headers the cheap parser leaves alone)."""
        if not reply:
            return False
        headers: _Headers
        if block is None:
            headers = read = None
        elif (read := read_block(block, data)) is not None:
            headers = block
        elif (parsed := parse_header_block(block)) is not None:
            headers = parsed or None
        else:
            return False
        self._receive(subject.decode("utf-8", "replace"), reply, data, headers, read)
        return True

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:
            self._last_activity = time.monotonic()
            self._on_status(msg)
            return
        self._receive(msg.subject, msg.reply.encode(), msg.data, msg.headers)

    def _receive(self, subject: str, reply: bytes, data: bytes, headers: _Headers, read: _Read = None) -> None:
        self._last_activity = now = time.monotonic()
        size = len(data)
        requested = self._requested = self._requested - 1 if self._requested > 1 else 0
        self._requested_bytes = self._requested_bytes - size if requested and self._requested_bytes > size else 0
        if self._stopped:  # cannot happen once the inbox is drained; never strand one
            with contextlib.suppress(Exception):
                self.write(reply, _NAK)
            return
        delivery = JetStreamDelivery(self, subject, reply, data, headers, self._attempts, self._prefix, read)
        sequence = delivery.stream_sequence
        redelivered = delivery.num_delivered > 1
        if redelivered and (how := self._finished.get(sequence) or self._finished_before.get(sequence)) is not None:
            self.late_redeliveries += 1
            with contextlib.suppress(Exception):
                self.write(reply, b"+ACK" if how == "ack" else b"+TERM")
            return
        if self._stopping:
            self._late.append(delivery)
            return
        self.received += 1
        if sequence:
            latest = self._latest
            previous = latest.get(sequence)
            if previous is not None:  # its lease ran out and the broker sent the message again
                previous.supersede()
                if previous in self._unsettled:
                    self._unsettled.discard(previous)
                    self._held_bytes -= previous.size
            latest[sequence] = delivery
        else:
            log.error("consumer %s: %s", self._consumer, delivery.decode_error)
        self._unsettled.add(delivery)
        self._held_bytes += size
        if redelivered and self._attempts is not None:
            # a redelivery: read its attempt record before anyone sees it
            self._loading[delivery] = asyncio.create_task(self._load(delivery))
        else:
            delivery.queued_at = now
            self._put(delivery)

    def _put(self, item: JetStreamDelivery | None) -> None:
        self._ready.append(item)
        takers = self._takers
        if takers:
            for taker in takers:  # every waiting iterator looks again (one cancelled loses none)
                if not taker.done():
                    taker.set_result(None)
            takers.clear()

    async def _renew_waiting(self) -> None:
        """Renew the leases of deliveries that wait in this subscription's queue: the
        consumer has not taken them yet, so their time must not run out there (a
        backlog behind slow handlers would otherwise be redelivered elsewhere)."""
        assert self._renew_after is not None
        now = time.monotonic()
        self._next_scan = now + self._tick / 2
        due = now - self._renew_after
        renew = [d for d in self._ready if d is not None and d.queued_at <= due and not d.superseded]
        for delivery in renew:
            delivery.queued_at = now
            with contextlib.suppress(TransportError):
                await delivery.in_progress()

    async def _load(self, delivery: JetStreamDelivery) -> None:
        try:
            await delivery.load()
        finally:
            self._loading.pop(delivery, None)
        if not self._stopping and not delivery.superseded:  # else a newer delivery stands for it
            delivery.queued_at = time.monotonic()
            self._put(delivery)

    def _on_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat: the pull is alive
            return
        # 408 (request expired), 409 (consumer limit / deleted / leadership change),
        # 404 (no messages): the request is over; Nats-Pending-Messages says how many
        # of its messages will not come.
        pending = headers.get("Nats-Pending-Messages")
        if pending is not None and pending.isdigit():
            self._requested = max(0, self._requested - int(pending))
        else:
            self._requested = 0
        pending_bytes = headers.get("Nats-Pending-Bytes")
        if self._requested == 0:
            self._requested_bytes = 0
        elif pending_bytes is not None and pending_bytes.isdigit():
            self._requested_bytes = max(0, self._requested_bytes - int(pending_bytes))
        self._wake.set()

    def _want(self) -> tuple[int, int | None]:
        """(messages, max_bytes) to ask for now; messages 0: not yet."""
        want = self._prefetch - self._requested - len(self._unsettled)
        if want < self._refill:
            return 0, None
        if self._prefetch_bytes is None:
            return want, None
        room = self._prefetch_bytes - self._held_bytes - self._requested_bytes
        idle = self._requested == 0 and not self._unsettled
        if room < self._refill_bytes and not idle:
            return 0, None
        return want, max(room, self._nc.max_payload)

    async def _pull_loop(self) -> None:
        expires_ns = int(_PULL_EXPIRES * 1_000_000_000)
        heartbeat_ns = int(_PULL_HEARTBEAT * 1_000_000_000)
        while not self._stopping:
            if time.monotonic() - self._last_activity > 3 * _PULL_HEARTBEAT:
                # No message nor heartbeat for a while: the requests were lost (broker
                # restart, reconnect). Ask again.
                self._requested = 0
                self._requested_bytes = 0
                self._last_activity = time.monotonic()
            # Room = prefetch minus what is requested and what is held unsettled (queued
            # or being handled): each subscription holds at most ``prefetch``.
            want, max_bytes = self._want()
            if want and self._nc.is_connected:
                pull: dict[str, int] = {"batch": want, "expires": expires_ns, "idle_heartbeat": heartbeat_ns}
                if max_bytes is not None:
                    pull["max_bytes"] = max_bytes
                try:
                    await self._nc.publish(self._next_subject, json.dumps(pull).encode(), reply=self._inbox)
                    self._requested += want
                    self._requested_bytes += max_bytes or 0
                except Exception:  # not connected: the next round asks again
                    pass
            if self._renew_after is not None and self._ready and time.monotonic() >= self._next_scan:
                await self._renew_waiting()
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._tick)

    def reset_pulls(self) -> None:
        """The connection dropped or came back: outstanding requests are gone."""
        self._requested = 0
        self._requested_bytes = 0
        self._wake.set()

    def delivery_settled(self, delivery: JetStreamDelivery, finished: str | None = None) -> None:
        sequence = delivery.stream_sequence
        if finished is not None and sequence:
            done = self._finished
            done[sequence] = finished
            if len(done) > _FINISHED_KEPT:  # a new generation: the older one is dropped
                self._finished_before, self._finished = done, {}
        if delivery in self._unsettled:
            self._unsettled.discard(delivery)
            self._held_bytes -= delivery.size
        if self._prefetch - self._requested - len(self._unsettled) >= self._refill and self._want()[0]:
            self._wake.set()  # (_want's first test, without a call while nothing more is wanted)
        latest = self._latest
        if latest.get(sequence) is delivery:
            del latest[sequence]
        self.acked += 1

    def __aiter__(self) -> AsyncIterator[JetStreamDelivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JetStreamDelivery]:
        ready = self._ready
        while not self._closed:
            if not ready:
                taker = asyncio.get_running_loop().create_future()
                self._takers.append(taker)
                await taker
                continue
            delivery = ready.popleft()
            if delivery is None:
                self._put(None)  # for any other iterator
                return
            if delivery.superseded:  # its lease ran out while queued: the newer one stands
                continue
            yield delivery

    async def stop(self) -> None:
        """Stop pulling now and hand back every delivery not yet taken from this
        subscription; the broker has them back when this returns. Deliveries already
        taken stay the consumer's to settle. Iteration ends. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._pull_task is not None:
            self._pull_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pull_task
        if self._sub is not None and not self._nc.is_closed:
            try:
                # UNSUB, then a round trip: what the broker sent before it dropped the
                # pull requests still arrives (into _late) before this returns. Shielded:
                # the client's flush inside must never be cancelled (see connection.flush).
                await asyncio.shield(self._draining(self._sub))
            except Exception as exc:
                log.warning("consumer %s: cannot withdraw pull requests: %r", self._consumer, exc)
                with contextlib.suppress(Exception):
                    await self._sub.unsubscribe()
        self._stopped = True
        if self._sub is not None:
            self._nc.direct(self._sub._id, None)  # anything still arriving takes nats-py's path
        loading = list(self._loading)
        for task in self._loading.values():
            task.cancel()
        self._loading.clear()
        queued: list[JetStreamDelivery] = []
        while self._ready:
            item = self._ready.popleft()
            if item is not None:
                queued.append(item)
        await self._hand_back([*queued, *loading, *self._late])
        self._late.clear()
        self._put(None)

    async def _hand_back(self, deliveries: list[JetStreamDelivery]) -> None:
        if not deliveries:
            return
        with contextlib.suppress(TransportError):
            await hand_back_all(deliveries)
        await self._flush()

    async def _draining(self, sub: Any) -> None:
        task = asyncio.ensure_future(sub.drain())
        _drains.add(task)
        task.add_done_callback(_drains.discard)
        await task

    async def _flush(self) -> None:
        if self._nc.is_closed:
            return
        try:
            await flush(self._nc, _FLUSH_TIMEOUT)
        except Exception as exc:
            log.warning("consumer %s: flush after hand-back failed: %r", self._consumer, exc)

    async def close(self) -> None:
        """Stop pulling; hand back every delivery not settled yet. Idempotent."""
        if self._closed:
            return
        await self.stop()
        self._closed = True
        await self._hand_back(list(self._unsettled))
        self._on_close(self)

    def statistics(self) -> dict[str, Any]:
        return {
            "consumer": self._consumer,
            "received": self.received,
            "settled": self.acked,
            "unsettled": len(self._unsettled),
            "queued": len(self._ready),
            "requested": self._requested,
            "held_bytes": self._held_bytes,
            "late_redeliveries": self.late_redeliveries,
        }
