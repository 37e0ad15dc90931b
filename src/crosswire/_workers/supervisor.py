"""The supervising half of a :class:`~crosswire._workers.pool.WorkerPool`: its state,
spawning and handshaking the worker, watching the session, restarting after a loss
(with backoff) and replacing a hung worker (without a gap; see
:mod:`~crosswire._workers.replacement`). The pool adds the public surface and the
hub's slot on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .._errorinfo import ErrorCode
from .._exceptions import ProtocolError
from .._tasks import TaskSet, first_of
from .admission import new_token
from .credit import CreditQueue
from .hub import WorkerHub
from .process import WorkerProcess
from .replacement import retire
from .schemas import handshake_warnings
from .session import Counters, Session
from .spec import WorkerSpec, WorkerState

__all__ = ["STOP_GRACE", "Supervised"]

#: SIGTERM → SIGKILL grace when closing.
STOP_GRACE = 3.0
#: A session that stayed ready this long resets the restart backoff.
STABLE_AFTER = 10.0


class Supervised:
    """One worker under supervision: at most one session serves at a time (two
    processes only while a hung one is being replaced)."""

    def __init__(self, spec: WorkerSpec, hub: WorkerHub) -> None:
        self.spec = spec
        self.hub = hub
        self.state: WorkerState = "registered"
        self._log = logging.getLogger(f"crosswire.worker.{spec.name}")
        self._counters = Counters()
        self._runner = self._new_runner()
        self._session: Session | None = None
        self._replace = asyncio.Event()  # the current session was declared hung
        self._retiring: set[asyncio.Task[None]] = set()
        self._attached: asyncio.Future[Session] | None = None
        self._attach_early = False  # _attached was made by open() and not waited on yet
        self._credit = CreditQueue(
            spec.name,
            lambda: self._session,
            lambda: self._stopping,
            counters=self._counters,
            hang_grace=spec.options.hang_grace,
        )
        self._supervisor: asyncio.Task[None] | None = None
        # the supervisor's owner: a crash is logged at once and fails the pool
        self._tasks = TaskSet(f"worker {spec.name!r}", self._log, on_failure=self._supervisor_failed)
        self._first_ready: asyncio.Future[tuple[str, ...]] | None = None
        self._stopping = False
        self._types: tuple[str, ...] = ()
        self._max_in_flight = 0
        self._runtime = "worker"
        #: What a hello must carry: per spawn for a spawned worker, else the option.
        self._token: str | None = spec.options.token
        self.restarts = 0

    # --- supervision ----------------------------------------------------------------

    def _new_runner(self) -> WorkerProcess:
        spec = self.spec
        return WorkerProcess(spec.name, spec.command, env=spec.env, cwd=spec.cwd, logger=self._log)

    async def _connect(self, replacing: bool = False) -> Session:
        """Spawn (or wait for) the worker and complete HELLO → WELCOME → INIT → READY.
        ``replacing``: the current session serves on meanwhile (the caller switches)."""
        if not self._attach_early or self._attached is None:
            self._attached = asyncio.get_running_loop().create_future()
        self._attach_early = False
        if not replacing:
            self.state = "initializing"
        options = self.spec.options
        if self._runner.spawns:
            self._token = new_token()  # a fresh secret per spawn
        await self._runner.spawn(self.hub.path, self._token)
        try:
            async with asyncio.timeout(options.ready_timeout):
                if not await self._runner.until_attached(self._attached):
                    await self._runner.kill()
                    raise ProtocolError(
                        f"worker {self.spec.name!r} exited before it connected: {self._runner.exit_text()}"
                    )
                session = self._attached.result()  # raises if rejected
                if not replacing:
                    self._session = session
                self._types = tuple(session.hello.types)
                self._max_in_flight = session.hello.max_in_flight
                self._runtime = session.hello.runtime
                for line in handshake_warnings(self.spec.name, session.hello, self.spec.produces):
                    self._log.warning("%s", line)
                if not replacing:
                    self.state = "warming"
                try:
                    await session.start(
                        max_frame=options.max_frame,
                        heartbeat_interval=options.heartbeat_interval,
                        node_name=self.hub.node_name,
                    )
                except ProtocolError as exc:
                    if replacing:
                        await session.close(str(exc))
                    await self._runner.wait_exit(1.0)
                    detail = self._runner.exit_text() or str(exc)
                    raise ProtocolError(f"worker {self.spec.name!r} failed during warm-up: {detail}") from None
                return session
        except TimeoutError:
            raise ProtocolError(f"worker {self.spec.name!r} was not ready within {options.ready_timeout:g} s") from None

    async def _supervise(self) -> None:
        options = self.spec.options
        backoff = options.restart_backoff_initial
        first = True
        while not self._stopping:
            try:
                session = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # a rejected or failing worker says why on stderr and exits: let it
                await self._runner.wait_exit(1.0)
                await self._end_session(self._session, str(exc))
                if first:
                    assert self._first_ready is not None
                    if not self._first_ready.done():
                        self._first_ready.set_exception(exc)
                    return
                self._log.error("restart failed: %s", exc)
            else:
                self.state = "ready"
                if first:
                    first = False
                    assert self._first_ready is not None
                    if not self._first_ready.done():
                        self._first_ready.set_result(self._types)
                self._credit.wake()
                reason = await self._serve(session)
                if self._stopping:
                    return
                self._log.error("worker lost (%s); restarting in %.2f s", reason, backoff)
                if time.monotonic() - session.ready_at >= STABLE_AFTER:
                    backoff = options.restart_backoff_initial
            if self._stopping:
                return
            self.state = "initializing"
            if self._runner.spawns:  # an external worker reconnects on its own
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, options.restart_backoff_max)
            self.restarts += 1

    async def _serve(self, session: Session) -> str:
        """Run until the session ends (replacing it whenever it is declared hung); settle
        what it had in flight. Returns why it ended."""
        while True:
            await self._runner.until_closed(first_of(session.conn.wait_closed(), self._replace.wait()))
            if self._stopping or session.conn.is_closed or self._runner.returncode is not None:
                break
            if self._replace.is_set():
                replaced = await self._replace_session(session)
                if replaced is None:
                    return f"{session.hung}; its replacement failed"
                session = replaced
        self._replace.clear()
        if not self._stopping:
            self.state = "initializing"  # no longer serving, whatever the process does now
        if self._stopping:
            # closing or draining: let the process finish on its own
            await self._runner.wait_exit(STOP_GRACE)
        else:
            # the connection dropped first: a dying process exits a moment later, say how
            await self._runner.wait_exit(0.2)
        parts = [session.conn.close_reason, self._runner.exit_text()]
        reason = "; ".join(p for p in parts if p) or "connection closed"
        await self._end_session(session, reason)
        return reason

    def _on_hung(self, session: Session, reason: str) -> None:
        if session is self._session and not self._stopping:  # a retiring one ends anyway
            self._log.error("%s; starting a replacement, new deliveries go to it once it is ready", reason)
            self._replace.set()

    async def _replace_session(self, old: Session) -> Session | None:
        """Start a new process while ``old`` serves on; once it is ready, route new
        deliveries to it and retire ``old``. None if the new process failed to start
        (``old`` is retired all the same; the supervisor restarts as after a loss)."""
        self._replace.clear()
        old_runner, self._runner = self._runner, self._new_runner()
        switched = asyncio.Event()
        task = self._tasks.start(
            retire(
                old,
                old_runner,
                switched,
                untimed_bound=self.spec.options.hang_grace,
                gone=self._gone,
                stopping=lambda: self._stopping,
                logger=self._log,
            ),
            name=f"worker:{self.spec.name}:retire",
        )
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        new: Session | None = None
        try:
            new = await self._connect(replacing=True)
        except Exception as exc:
            if not self._stopping:
                self._log.error("replacement failed: %s", exc)
            await self._runner.wait_exit(1.0)
            await self._runner.kill()
        finally:
            self._session = new  # the switch: new deliveries go to it
            switched.set()
        if new is not None:  # a failed one is counted by the restart that follows
            self.restarts += 1
        self._credit.wake()
        return new

    def _gone(self, session: Session) -> None:
        if self._session is session:
            self._session = None

    async def _end_session(self, session: Session | None, reason: str) -> None:
        if session is not None:
            await session.close(reason)
            if self._session is session:
                self._session = None
        await self._runner.kill()
        if session is not None:
            if self._stopping:
                session.settle_lost(ErrorCode.CANCELLED, f"stopped mid-attempt ({reason})")
            else:
                session.settle_lost(ErrorCode.WORKER_LOST, f"worker lost mid-attempt ({reason})")

    def _supervisor_failed(self, exc: BaseException) -> None:
        """The supervisor crashed (a bug, logged by the task set): fail, and say so to
        whoever waits — start(), and callers waiting for credit."""
        self.state = "failed"
        self._stopping = True
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(ProtocolError(f"worker {self.spec.name!r} supervisor failed: {exc!r}"))
        self._credit.wake_all()

    async def _stop_supervisor(self) -> None:
        task = self._supervisor
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._tasks.stop(*self._retiring)
        if self._session is not None:
            await self._end_session(self._session, "the worker pool was closed")
        else:
            await self._runner.kill()
