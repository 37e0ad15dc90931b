"""The worker-process adapter: a supervised worker speaking spec/protocol.md as a
:data:`~crosswire._types.Handler`.

::

    hub  = WorkerHub("orders")            # one listening socket per node
    pool = WorkerPool(WorkerSpec(name="pricing", command=("./pricing",)), hub)
    types = await pool.start()            # spawn, HELLO → WELCOME, INIT → READY
    outcome = await pool.handle(attempt)  # DELIVER → RESULT → Outcome (never raises)
    await pool.drain(5.0); await pool.close()

:class:`WorkerPool` runs one worker under supervision; one
:class:`~crosswire._workers.session.Session` at a time carries its deliveries.

- **Flow control.** Never more deliveries out than the worker's ``max_in_flight``;
  callers of :meth:`WorkerPool.handle` wait for credit (bounded by the attempt deadline).
- **Supervision.** A worker that exits, drops its connection or misses 3 heartbeats is
  killed and restarted with exponential backoff. Every delivery it had in flight
  completes with ``worker_lost`` (retryable, runtime ``node``): never lost, never ok.
- **Hung workers.** A spawned worker declared hung (a delivery unanswered ``hang_grace``
  past its deadline, or fenced deliveries holding all its credit) is replaced without a
  gap: a new process starts while it serves on, then takes the new deliveries, and the
  hung one is retired (:mod:`~crosswire._workers.replacement`).
- **Logs.** The process's stdout/stderr go line by line to ``crosswire.worker.<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from .._errorinfo import ErrorCode
from .._exceptions import ClosedError, ProtocolError, VersionMismatchError
from .._types import Attempt, Outcome
from .admission import authentic, same_types
from .connection import WorkerConnection
from .frames import Frame, Goodbye, Hello, UnknownFrame
from .session import Session, node_error
from .spec import WorkerStatistics
from .supervisor import STOP_GRACE, Supervised

__all__ = ["WorkerPool"]


class WorkerPool(Supervised):
    """One supervised worker as the innermost handler of its bindings.

    :meth:`handle` is safe to call from many tasks at once; the other methods are
    called by the owner (the node) in order: ``start``, ``drain``, ``close``.
    Implements the hub's :class:`~crosswire._workers.hub.WorkerSlot`.
    """

    # --- public surface -------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def runtime(self) -> str:
        """The runtime named in the worker's hello (``go``, ``rust``, ``python``)."""
        session = self._session
        return session.hello.runtime if session is not None else self._runtime

    @property
    def pid(self) -> int | None:
        return self._runner.pid

    @property
    def types(self) -> tuple[str, ...]:
        return self._types

    @property
    def returncode(self) -> int | None:
        """The exit status of the last worker process, or None while it runs (or if none)."""
        return self._runner.returncode

    def open(self) -> None:
        """Take this worker's name on the hub, before :meth:`start`. An external worker
        that connects from now on is held until :meth:`start` welcomes it, so a node can
        open every pool first and start them one after another. Idempotent.

        :raises ConfigurationError: another worker has the name.
        """
        self.hub.register(self)
        if self._attached is None and not self._runner.spawns:
            self._attached = asyncio.get_running_loop().create_future()
            self._attach_early = True

    async def start(self) -> tuple[str, ...]:
        """Start the worker and wait until it is ready.

        :returns: the event types from its ``hello``.
        :raises VersionMismatchError: the node rejected it for its protocol versions.
        :raises ProtocolError: it was rejected, exited, or was not ready in time.
        """
        if self._supervisor is not None:
            raise ClosedError(f"worker {self.spec.name!r} was already started")
        await self.hub.start()
        self.open()
        self._first_ready = asyncio.get_running_loop().create_future()
        self._supervisor = self._tasks.start(self._supervise(), name=f"worker:{self.spec.name}")
        try:
            return await asyncio.shield(self._first_ready)
        except BaseException:
            self._stopping = True
            await self._stop_supervisor()
            self.state = "failed"
            raise

    async def handle(self, attempt: Attempt) -> Outcome:
        """Deliver one attempt and wait for its result. Never raises (but cancellation).

        Waits for credit when the worker has ``max_in_flight`` deliveries out, and for a
        restart when it is down; both waits end at the attempt's deadline (or the
        event's own ``deadline``), and so does the wait for the result, a moment later.
        """
        try:
            if self._stopping:
                return node_error(ErrorCode.CANCELLED, f"worker {self.spec.name!r} is shutting down")
            deadline = attempt.deadline
            if deadline is not None:
                deadline_ms = max(1, int((time.time() + (deadline - time.monotonic())) * 1000))
            elif attempt.event.deadline:
                # no attempt deadline, but the event has one: honour it
                deadline_ms = attempt.event.deadline
                deadline = time.monotonic() + (deadline_ms / 1000 - time.time())
            else:
                return await self._credit.deliver(attempt, 0, None)
            return await self._credit.deliver(attempt, deadline_ms, deadline)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug must still produce an outcome
            self._log.exception("worker adapter failed")
            return node_error(ErrorCode.INTERNAL, f"worker adapter failed: {type(exc).__name__}: {exc}")

    async def drain(self, timeout: float) -> bool:
        """Ask the worker to finish its in-flight deliveries, then say goodbye.

        New calls to :meth:`handle` end at once with ``cancelled``.
        :returns: False if the worker did not drain within ``timeout`` seconds.
        """
        self._stopping = True
        session = self._session
        if session is None or self.state not in ("ready", "warming"):
            self.state = "stopped" if self.state != "failed" else "failed"
            self._credit.wake_all()
            return True
        self.state = "draining"
        self._credit.wake_all()
        try:
            async with asyncio.timeout(timeout):
                await session.drain()
                await self._runner.wait()
        except (TimeoutError, ClosedError):
            return False
        self.state = "stopped"
        return True

    async def close(self) -> None:
        """Stop the worker: SIGTERM (it drains on its own), SIGKILL after a grace period.

        Deliveries still in flight complete with ``cancelled``.
        """
        self._stopping = True
        if self.state not in ("stopped", "failed"):
            self.state = "draining"
        self._credit.wake_all()
        if self._runner.spawned and await self._runner.stop(STOP_GRACE):
            self._log.warning("worker did not exit %g s after SIGTERM; killed it", STOP_GRACE)
        session = self._session
        if session is not None and not self._runner.spawned:
            with contextlib.suppress(ClosedError):
                session.conn.send(Goodbye(reason="node closing"))
            await session.conn.close("node closing")
        await self._stop_supervisor()
        if session is not None:
            session.settle_lost(ErrorCode.CANCELLED, "the worker pool was closed")
        self.hub.unregister(self)
        if self.state != "failed":
            self.state = "stopped"

    def statistics(self) -> WorkerStatistics:
        session = self._session
        c = self._counters
        return WorkerStatistics(
            name=self.spec.name,
            state=self.state,
            pid=self._runner.live_pid,
            types=self._types,
            max_in_flight=self._max_in_flight,
            in_flight=session.in_flight if session else 0,
            credit=session.credit if session and session.ready.is_set() else 0,
            waiting=len(self._credit),
            restarts=self.restarts,
            delivered=c.delivered,
            results=c.results,
            lost=c.lost,
            hung=c.hung,
            late=c.late,
            socket=self.hub.socket_path,
            refused=c.refused,
        )

    # --- delivering -----------------------------------------------------------------

    # --- the hub's slot -------------------------------------------------------------

    async def offer(self, conn: WorkerConnection, hello: Hello, rest: Sequence[Frame | UnknownFrame]) -> str | None:
        """Called by the hub with a checked hello; returns a reject reason or None."""
        if hello.token is None and self._runner.spawns:
            # a fast worker says hello before spawn() has returned its pid
            await self._runner.settled()
        if not self._authentic(hello, conn.peer_pid):
            # checked first: an impostor learns nothing about the slot's state
            return f"worker {self.spec.name!r}: {'missing' if hello.token is None else 'wrong'} token"
        if self._attached is None or self._attached.done():
            if self._session is not None:
                return f"worker {self.spec.name!r} is already connected"
            return f"worker {self.spec.name!r} is not expecting a connection now"
        other = same_types(self._types, hello)
        if other is not None:
            # the bindings were built from the first hello: refuse, rather than serve others
            return f"worker {self.spec.name!r} must serve the same types as when it started: {other}"
        session = Session(
            conn,
            hello,
            rest,
            name=self.spec.name,
            logger=self._log,
            counters=self._counters,
            on_credit=self._credit.wake,
            on_hung=self._on_hung if self._runner.spawns else None,  # an external one is disconnected
        )
        conn.label = f"worker {self.spec.name!r}"
        conn.max_frame = self.spec.options.max_frame
        conn.peer_max_frame = hello.max_frame
        self._attached.set_result(session)
        return None

    def _authentic(self, hello: Hello, peer_pid: int | None) -> bool:
        return authentic(
            hello,
            expected=self._token,
            spawns=self._runner.spawns,
            spawned_pid=self._runner.live_pid,
            peer_pid=peer_pid,
        )

    def refused(self, hello: Hello, reason: str, peer_pid: int | None = None) -> None:
        if not self._authentic(hello, peer_pid):
            # not our process: it must not fail the start (or restart) it raced with
            self._log.warning("refused a connection claiming to be worker %r: %s", self.spec.name, reason)
            return
        if self._attached is not None and not self._attached.done():
            error: ProtocolError = (
                VersionMismatchError(reason)
                if reason.startswith("unsupported protocol")
                else ProtocolError(f"worker {self.spec.name!r} rejected: {reason}")
            )
            self._attached.set_exception(error)
