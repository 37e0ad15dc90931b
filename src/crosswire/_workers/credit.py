"""Waiting for credit and delivering (spec/protocol.md, "Flow control", "Deadlines").

Callers of :meth:`~crosswire._workers.pool.WorkerPool.handle` that find the worker
without spare credit — or down, between restarts — queue here, first come, first
served, and then send their delivery (unless the worker's ``hello`` declared the
``dataschema`` versions it accepts for the type and the event carries another: then the
attempt fails with ``invalid_argument``, undelivered). The wait, the send and the wait
for the result all end at the attempt's deadline (plus a short grace for the worker's own
``timeout``); a delivery the node gave up on (fenced) keeps its credit until the worker
answers or its process is retired (see :mod:`~crosswire._workers.replacement`). A
result that returns credit wakes one waiter per credit it frees; a waiter woken for a
credit it will not use (it was cancelled) passes the wake-up on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable

from .._errorinfo import ErrorCode
from .._exceptions import ClosedError
from .._schema._wire import refusal
from .._types import Attempt, Outcome
from .schemas import accepted
from .session import Counters, Session, node_error, stamp

__all__ = ["DEADLINE_GRACE", "CreditQueue"]

#: How long past an attempt's deadline the node waits for the worker's own ``timeout``.
DEADLINE_GRACE = 0.5


def usable(session: Session | None) -> bool:
    """Whether ``session`` is ready, still connected, and has a credit to spare (a
    delivery arriving after the connection closed waits for the restarted worker)."""
    return session is not None and session.ready.is_set() and session.credit > 0 and not session.conn.is_closed


class CreditQueue:
    """The callers waiting for credit on one pool, and their deliveries. Not thread-safe."""

    def __init__(
        self,
        name: str,
        current: Callable[[], Session | None],
        stopping: Callable[[], bool],
        *,
        counters: Counters,
        hang_grace: float,
    ) -> None:
        self._name = name
        self._current = current
        self._stopping = stopping
        self._counters = counters
        self._hang_grace = hang_grace
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def deliver(self, attempt: Attempt, deadline_ms: int, deadline: float | None) -> Awaitable[Outcome]:
        """Deliver ``attempt`` and wait for its outcome, until ``deadline`` (monotonic)
        plus :data:`DEADLINE_GRACE`. Only cancellation raises; a delivery whose wait is
        cut short (by that deadline or by the caller's own timeout) is abandoned (fenced):
        it keeps its credit until the worker answers or its process is retired."""
        if deadline is None:
            return self._send_and_wait(attempt, 0, None)  # the hot path: one frame less
        return self._deliver_by(attempt, deadline_ms, deadline)

    async def _deliver_by(self, attempt: Attempt, deadline_ms: int, deadline: float) -> Outcome:
        try:
            async with asyncio.timeout_at(deadline + DEADLINE_GRACE):
                return await self._send_and_wait(attempt, deadline_ms, deadline)
        except TimeoutError:
            return node_error(ErrorCode.TIMEOUT, f"worker {self._name!r} did not answer before the attempt's deadline")

    async def _send_and_wait(self, attempt: Attempt, deadline_ms: int, deadline: float | None) -> Outcome:
        session = self.ready_now()
        if session is None:
            current = self._current()  # refused at once rather than after a wait for credit
            if current is not None and (refused := self._refused(current, attempt)) is not None:
                return refused
            session = await self.acquire()
            if session is None:
                return node_error(ErrorCode.CANCELLED, f"worker {self._name!r} is shutting down")
        if (refused := self._refused(session, attempt)) is not None:
            self.wake()  # a credit this caller may have been woken for
            return refused
        try:
            ticket = session.deliver(stamp(attempt.event, attempt.number, deadline_ms), deadline_ms)
        except ClosedError as exc:
            # the connection dropped a moment before the supervisor noticed: the worker is
            # lost, which the supervisor logs once; no traceback per delivery
            self._counters.lost += 1
            return node_error(ErrorCode.WORKER_LOST, f"worker {self._name!r} lost before delivery ({exc})")
        if isinstance(ticket, Outcome):
            self.wake()
            return ticket
        try:
            return await ticket.future
        except asyncio.CancelledError:
            # given up on (a deadline, the node's timeout policy, shutdown): the ticket
            # holds its credit until the result comes, or the worker is declared hung
            session.abandon(ticket, deadline if deadline is not None else time.monotonic(), self._hang_grace)
            raise

    def _refused(self, session: Session, attempt: Attempt) -> Outcome | None:
        """``invalid_argument`` if the worker's hello ``schemas`` exclude the event's
        ``dataschema``: it is not delivered, so it takes no credit."""
        event = attempt.event
        if event.dataschema is None or not session.hello.schemas:
            return None
        why = refusal(event, accepted(session.hello, attempt.binding, event.type, self._name), worker=self._name)
        if why is None:
            return None
        self._counters.refused += 1
        return node_error(ErrorCode.INVALID_ARGUMENT, why)

    def __len__(self) -> int:
        return len(self._waiters)

    def ready_now(self) -> Session | None:
        """The current session if it may take a delivery without queueing."""
        if self._waiters:
            return None
        session = self._current()
        return session if usable(session) else None

    async def acquire(self) -> Session | None:
        """A ready session with credit, or None once the pool is stopping."""
        while True:
            if self._stopping():
                return None
            session = self.ready_now()
            if session is not None:
                return session
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # woken for a credit we will not use: pass it on
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                    self.wake()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if self._stopping():
                return None
            session = self._current()
            if usable(session):
                return session

    def wake(self) -> None:
        """Wake as many waiters as the current session has unclaimed credit (usually one)."""
        if not self._waiters:  # the common case: nobody waits
            return
        session = self._current()
        if session is None:
            return
        spare = session.credit
        woken = 0
        for waiter in self._waiters:
            if woken >= spare:
                break
            if not waiter.done():
                waiter.set_result(None)
                woken += 1

    def wake_all(self) -> None:
        """Wake everyone (the pool is stopping: they return without a session)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
