"""One worker connection after its ``hello`` (spec/protocol.md, "Lifecycle" and "Work").

A :class:`Session` answers ``welcome``, starts heartbeats, sends ``init`` and waits for
``ready``; then it carries deliveries: it hands out delivery ids, never more than the
worker's ``max_in_flight`` (its *credit*), turns each ``result`` into an
:class:`~crosswire._types.Outcome`, and on ``drain`` waits until the worker has
answered everything. Its reader task belongs to it; when the session ends, every
delivery still out is settled by :meth:`Session.settle_lost` — never lost, never ok.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from .._envelope import Event, decode_event, encode_event
from .._errorinfo import ErrorCode, ErrorInfo
from .._exceptions import ClosedError, EnvelopeDecodeError, ProtocolError
from .._observability.latency import WorkerLatency
from .._observability.logs import worker_log
from .._tasks import TaskSet, first_of
from .._types import Outcome
from .connection import WorkerConnection, frame_kind
from .frames import (
    PROTOCOL_VERSIONS,
    Deliver,
    Drain,
    Drained,
    ErrorFrame,
    Frame,
    Goodbye,
    Heartbeat,
    Hello,
    Init,
    Log,
    Ready,
    Result,
    UnknownFrame,
    Welcome,
    encode_frame,
)

__all__ = ["Counters", "Session", "Ticket", "node_error"]


def node_error(code: ErrorCode, message: str) -> Outcome:
    """An outcome the node decided on the worker's behalf."""
    return Outcome(error=ErrorInfo.of(code, message, runtime="node"))


class Counters:
    """Totals for one pool, kept across its sessions."""

    __slots__ = ("delivered", "hung", "late", "latency", "lost", "refused", "results")

    def __init__(self) -> None:
        self.delivered = 0
        self.results = 0
        self.lost = 0
        self.late = 0
        self.hung = 0
        self.refused = 0  # attempts not delivered: a dataschema the worker does not accept
        self.latency = WorkerLatency()  # handler time from result.duration_ns (Prometheus)


class Ticket:
    """One delivery out to the worker: its id and the future its result completes.
    ``abandoned``: the node gave up on it (its deadline passed): it is *fenced*, its
    late result is counted and ignored."""

    __slots__ = ("abandoned", "event", "future", "id", "timed")

    def __init__(
        self, delivery_id: int, future: asyncio.Future[Outcome], event: Event[Any] | None = None, timed: bool = True
    ) -> None:
        self.id = delivery_id
        self.future = future
        self.abandoned = False
        self.event = event  # what the worker's log lines written for it are about
        self.timed = timed  # it has a deadline (the node gives up on it then)


class Session:
    """One connected worker, from ``welcome`` to the end of its connection.

    :param initial: frames that arrived together with the ``hello``.
    :param on_credit: called whenever a result frees credit.
    :param on_hung: called (once) with the reason when the worker is declared hung: a
        delivery is unanswered ``hang_grace`` after its deadline, or fenced deliveries
        hold all its credit. Without it the connection is closed with that reason.
    """

    def __init__(
        self,
        conn: WorkerConnection,
        hello: Hello,
        initial: Sequence[Frame | UnknownFrame],
        *,
        name: str,
        logger: logging.Logger,
        counters: Counters,
        on_credit: Callable[[], None],
        on_hung: Callable[[Session, str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.hello = hello
        self.name = name
        self.version = max(set(hello.versions) & set(PROTOCOL_VERSIONS))
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.ready_at = 0.0
        self.goodbye = False
        self._initial = list(initial)
        self._log = logger
        self._counters = counters
        self._on_credit = on_credit
        self._on_hung = on_hung
        self.hung: str | None = None  # why it was declared hung
        self._in_flight: dict[int, Ticket] = {}
        self._fenced = 0  # deliveries in flight the node gave up on
        self._quiet: asyncio.Event | None = None  # set once no unfenced delivery is out
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()
        self._next_id = 1
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks = TaskSet(f"worker {name!r}", logger, on_failure=lambda exc: conn.abort(f"internal error: {exc!r}"))

    @property
    def credit(self) -> int:
        return self.hello.max_in_flight - len(self._in_flight)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def live(self) -> int:
        """Deliveries out that the node still waits for (not fenced)."""
        return len(self._in_flight) - self._fenced

    async def until_quiet(self, untimed_bound: float) -> None:
        """Wait until every delivery still out is fenced (or answered): each one with a
        deadline is fenced by then (its caller gives up); one without a deadline is waited
        for at most ``untimed_bound`` s. Used on a session that gets no new deliveries."""
        end = time.monotonic() + untimed_bound
        while self.live:
            self._quiet = asyncio.Event()
            untimed = any(not t.timed and not t.abandoned for t in self._in_flight.values())
            left = end - time.monotonic()
            if untimed and left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left if untimed else None):
                    await self._quiet.wait()

    def _check_quiet(self) -> None:
        if self._quiet is not None and self.live == 0:
            self._quiet.set()

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, *, max_frame: int, heartbeat_interval: float, node_name: str) -> None:
        """``welcome``, heartbeats, ``init``; returns once the worker is ``ready``.

        :raises ProtocolError: the connection closed first (the message says why).
        """
        conn = self.conn
        conn.send(
            Welcome(
                version=self.version,
                max_frame=max_frame,
                heartbeat_ms=max(1, round(heartbeat_interval * 1000)),
                node=node_name,
            )
        )
        conn.start_heartbeats(heartbeat_interval)
        self._tasks.start(self._read_loop(), name=f"worker:{self.name}:read")
        conn.send(Init())
        await first_of(self.ready.wait(), conn.wait_closed())
        if not self.ready.is_set():
            raise ProtocolError(conn.close_reason or "closed")

    async def drain(self) -> None:
        """``drain``, wait for ``drained`` and every result, ``goodbye``, close.

        :raises ClosedError: the connection closed first.
        """
        self.conn.send(Drain())
        await self._until(self.drained)
        await self._until(self._idle)  # results are sent before `drained`, but be sure
        with contextlib.suppress(ClosedError):
            self.conn.send(Goodbye(reason="drained"))
        await self.conn.close("drained")

    async def _until(self, event: asyncio.Event) -> None:
        if event.is_set():
            return
        await first_of(event.wait(), self.conn.wait_closed())
        if not event.is_set():
            raise ClosedError(self.conn.close_reason or "closed")

    async def close(self, reason: str) -> None:
        """End the connection now and stop the reader (deliveries are settled apart)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.conn.abort(reason)
        await self._tasks.aclose()

    def settle_lost(self, code: ErrorCode, why: str) -> None:
        """Complete every delivery still out with ``code``; the credit is returned."""
        pending, self._in_flight = self._in_flight, {}
        self._fenced = 0
        self._idle.set()
        self._check_quiet()
        for ticket in pending.values():
            self._counters.lost += 1
            if not ticket.future.done():
                ticket.future.set_result(node_error(code, f"worker {self.name!r}: {why}"))

    # --- deliveries -----------------------------------------------------------------

    def deliver(self, event: Event[Any], deadline_ms: int) -> Ticket | Outcome:
        """Send one delivery (the caller holds credit); an :class:`Outcome` if the event
        cannot be sent to this worker at all.

        :raises ConnectionClosedError: the connection is closed.
        """
        delivery_id = self._next_id
        data = encode_frame(Deliver(id=delivery_id, envelope=encode_event(event), deadline=deadline_ms))
        if len(data) - 4 > self.hello.max_frame:
            return Outcome(
                error=ErrorInfo.of(
                    ErrorCode.INVALID_ARGUMENT,
                    f"event {event.id} is too large for worker {self.name!r}: "
                    f"{len(data) - 4} bytes > its max_frame {self.hello.max_frame}",
                    runtime="node",
                )
            )
        self.conn.send_bytes(data)
        self._next_id += 1
        ticket = Ticket(delivery_id, asyncio.get_running_loop().create_future(), event, deadline_ms > 0)
        if not self._in_flight:
            self._idle.clear()
        self._in_flight[delivery_id] = ticket
        self._counters.delivered += 1
        return ticket

    def abandon(self, ticket: Ticket, deadline: float, grace: float) -> None:
        """The node gave up waiting for ``ticket`` (its deadline passed): it is fenced.
        The worker keeps the credit until it answers. It is declared hung at once if
        fenced deliveries now hold all its credit (it can serve nobody), else if it has
        not answered ``grace`` s after ``deadline`` (monotonic). (Only a session with
        ``on_hung``, whose pool can start a replacement, is declared hung at once.)"""
        if ticket.id not in self._in_flight or ticket.abandoned:
            return
        ticket.abandoned = True
        self._fenced += 1
        self._check_quiet()
        if self._fenced >= self.hello.max_in_flight and self._on_hung is not None:
            self._check_hung(ticket, deadline, None)
            return
        delay = max(0.0, deadline + grace - time.monotonic())
        handle = asyncio.get_running_loop().call_later(delay, self._check_hung, ticket, deadline, grace)
        self._timers.append(handle)

    def _check_hung(self, ticket: Ticket, deadline: float, grace: float | None) -> None:
        if self._in_flight.get(ticket.id) is not ticket or self.conn.is_closed or self.hung is not None:
            return
        late = max(0.0, time.monotonic() - deadline)
        why = f"(hang_grace {grace:g} s)" if grace is not None else "and nothing else can be delivered"
        self.hung = (
            f"worker hung: delivery {ticket.id} still unanswered {late:.1f} s after its deadline {why}; "
            f"{self._fenced} of {self.hello.max_in_flight} credit held by timed-out deliveries"
        )
        self._counters.hung += 1
        if self._on_hung is not None:
            self._on_hung(self, self.hung)
        else:
            self._log.error("%s; reclaiming its credit", self.hung)
            self.conn.fail(self.hung)

    # --- reading --------------------------------------------------------------------

    async def _read_loop(self) -> None:
        conn = self.conn
        frames: list[Frame | UnknownFrame] = self._initial
        self._initial = []
        try:
            while True:
                for frame in frames:
                    self._on_frame(frame)
                frames = await conn.read()
        except (ProtocolError, ClosedError):
            return

    def _on_frame(self, frame: Frame | UnknownFrame) -> None:
        conn = self.conn
        if isinstance(frame, Result):
            self._on_result(frame)
        elif isinstance(frame, Heartbeat | UnknownFrame):
            pass
        elif isinstance(frame, Log):
            worker_log(self, frame)
        elif isinstance(frame, Ready):
            if not self.ready.is_set():
                self.ready_at = time.monotonic()
                self.ready.set()
        elif isinstance(frame, Drained):
            self.drained.set()
        elif isinstance(frame, Goodbye):
            self.goodbye = True
        elif isinstance(frame, ErrorFrame):
            self._log.error("worker reported a protocol error: %s", frame.message)
            conn.abort(f"worker reported an error: {frame.message}")
        else:
            conn.fail(f"unexpected {frame_kind(frame)!r} frame from the worker")

    def _on_result(self, result: Result) -> None:
        ticket = self._in_flight.pop(result.id, None)
        if ticket is None:
            self.conn.fail(f"result for unknown delivery id {result.id}")
            return
        if not self._in_flight:
            self._idle.set()
        if ticket.abandoned:
            self._fenced -= 1
            self._counters.late += 1
            self._log.info("late result for delivery %d ignored (the node had timed it out)", result.id)
        else:
            self._counters.results += 1
            self._counters.latency.record_ns(result.duration_ns)
        if not ticket.future.done():
            ticket.future.set_result(self._outcome(result))
        if self._quiet is not None:
            self._check_quiet()
        self._on_credit()

    def _outcome(self, result: Result) -> Outcome:
        emitted: list[Event[Any]] = []
        for index, raw in enumerate(result.emitted):
            try:
                emitted.append(decode_event(raw))
            except EnvelopeDecodeError as exc:
                return node_error(
                    ErrorCode.INTERNAL, f"worker {self.name!r} emitted an invalid event (#{index}): {exc}"
                )
        if result.ok:
            error = None
        elif result.error is None:
            return node_error(
                ErrorCode.INTERNAL, f"worker {self.name!r} sent a failed result without an error envelope"
            )
        else:
            error = result.error
        return Outcome(
            error=error,
            emitted=tuple(emitted),
            start_ns=result.start_ns,
            duration_ns=result.duration_ns,
            spans=tuple(result.spans),
        )


def stamp(event: Event[Any], number: int, deadline_ms: int) -> Event[Any]:
    """The event as this attempt delivers it: its attempt number and deadline set."""
    if event.attempt != number or (deadline_ms and event.deadline != deadline_ms):
        return msgspec.structs.replace(event, attempt=number, deadline=deadline_ms or event.deadline)
    return event
