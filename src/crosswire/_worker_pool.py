"""The worker-process adapter: a worker speaking spec/protocol.md as a :data:`Handler`.

::

    hub  = WorkerHub("orders")            # one listening socket per node
    pool = WorkerPool(WorkerSpec("pricing", ["./pricing"]), hub)
    types = await pool.start()            # spawn, HELLO → WELCOME, INIT → READY
    outcome = await pool.handle(attempt)  # DELIVER → RESULT → Outcome (never raises)
    await pool.drain(5.0); await pool.close()

:class:`WorkerHub` owns the socket (a private ``0700`` directory, the socket ``0600``),
accepts connections, reads each ``hello`` and hands it to the pool whose spec has that
name, or rejects it. :class:`WorkerPool` runs one worker process under supervision:

- **Flow control.** Never more deliveries out than the worker's ``max_in_flight``;
  callers of :meth:`WorkerPool.handle` wait for credit (bounded by the attempt deadline).
- **Supervision.** A worker that exits, drops its connection or misses 3 heartbeats is
  killed and restarted with exponential backoff. Every delivery it had in flight
  completes with ``worker_lost`` (retryable, runtime ``node``): never lost, never ok.
- **Logs.** The process's stdout/stderr go line by line to ``crosswire.worker.<name>``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from ._envelope import Event, decode_event, encode_event
from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import (
    ClosedError,
    ConfigurationError,
    EnvelopeDecodeError,
    ProtocolError,
    VersionMismatchError,
)
from ._frames import (
    DEFAULT_MAX_FRAME,
    MIN_MAX_FRAME,
    PROTOCOL_VERSIONS,
    Deliver,
    Drain,
    Drained,
    ErrorFrame,
    Goodbye,
    Heartbeat,
    Hello,
    Init,
    Ready,
    Result,
    UnknownFrame,
    Welcome,
    encode_frame,
)
from ._process import kill_process, stop_process
from ._types import Attempt, Outcome
from ._worker_conn import WorkerConnection, frame_kind
from ._worker_hub import WorkerHub

__all__ = ["WorkerHub", "WorkerPool", "WorkerSpec", "WorkerState", "WorkerStatistics"]  # hub re-exported

_log = logging.getLogger("crosswire.worker")

WorkerState = Literal["registered", "initializing", "warming", "ready", "draining", "stopped", "failed"]

#: How long past an attempt's deadline the pool waits for the worker's own ``timeout``.
DEADLINE_GRACE = 0.5
#: SIGTERM → SIGKILL grace when closing.
STOP_GRACE = 3.0
#: A session that stayed ready this long resets the restart backoff.
STABLE_AFTER = 10.0


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How to run one worker. ``command=None``: an external worker connects by itself.

    :raises ConfigurationError: for an invalid field, when built.
    """

    name: str
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = {}
    cwd: str | None = None
    heartbeat_interval: float = 1.0
    ready_timeout: float = 30.0
    restart_backoff_initial: float = 0.1
    restart_backoff_max: float = 5.0
    max_frame: int = DEFAULT_MAX_FRAME

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 256:
            raise ConfigurationError("worker name must be 1-256 characters")
        if self.command is not None:
            if isinstance(self.command, str) or not self.command:
                raise ConfigurationError(f"worker {self.name!r}: command must be a non-empty list of arguments")
            msgspec.structs.force_setattr(self, "command", tuple(self.command))
        if self.heartbeat_interval <= 0 or self.ready_timeout <= 0:
            raise ConfigurationError(f"worker {self.name!r}: heartbeat_interval and ready_timeout must be > 0")
        if not 0 < self.restart_backoff_initial <= self.restart_backoff_max:
            raise ConfigurationError(f"worker {self.name!r}: need 0 < restart_backoff_initial <= restart_backoff_max")
        if self.max_frame < MIN_MAX_FRAME:
            raise ConfigurationError(f"worker {self.name!r}: max_frame {self.max_frame} < minimum {MIN_MAX_FRAME}")


class WorkerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one worker pool."""

    name: str
    state: WorkerState
    pid: int | None
    types: tuple[str, ...]
    max_in_flight: int
    in_flight: int
    credit: int
    waiting: int
    restarts: int
    delivered: int
    results: int
    lost: int


def _node_error(code: ErrorCode, message: str) -> Outcome:
    return Outcome(error=ErrorInfo.of(code, message, runtime="node"))


class _Session:
    """One connected, handshaken worker."""

    def __init__(self, conn: WorkerConnection, hello: Hello) -> None:
        self.conn = conn
        self.hello = hello
        self.version = max(set(hello.versions) & set(PROTOCOL_VERSIONS))
        self.in_flight: dict[int, asyncio.Future[Outcome]] = {}
        self.next_id = 1
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.goodbye = False
        self.ready_at = 0.0
        self.reader: asyncio.Task[None] | None = None

    @property
    def credit(self) -> int:
        return self.hello.max_in_flight - len(self.in_flight)


class WorkerPool:
    """One supervised worker as the innermost handler of its bindings.

    :meth:`handle` is safe to call from many tasks at once; the other methods are
    called by the owner (the node) in order: ``start``, ``drain``, ``close``.
    """

    def __init__(self, spec: WorkerSpec, hub: WorkerHub) -> None:
        self.spec = spec
        self.hub = hub
        self.state: WorkerState = "registered"
        self._log = logging.getLogger(f"crosswire.worker.{spec.name}")
        self._session: _Session | None = None
        self._attached: asyncio.Future[_Session] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pipes: list[asyncio.Task[None]] = []
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=8)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._first_ready: asyncio.Future[tuple[str, ...]] | None = None
        self._stopping = False
        self._types: tuple[str, ...] = ()
        self._max_in_flight = 0
        self._runtime = "worker"
        self.restarts = 0
        self.delivered = 0
        self.results = 0
        self.lost = 0

    # --- public surface -------------------------------------------------------------

    async def start(self) -> tuple[str, ...]:
        """Start the worker and wait until it is ready.

        :returns: the event types from its ``hello``.
        :raises VersionMismatchError: the node rejected it for its protocol versions.
        :raises ProtocolError: it was rejected, exited, or was not ready in time.
        """
        if self._supervisor is not None:
            raise ClosedError(f"worker {self.spec.name!r} was already started")
        await self.hub.start()
        self.hub.register(self)
        loop = asyncio.get_running_loop()
        self._first_ready = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"worker:{self.spec.name}")
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
                return _node_error(ErrorCode.CANCELLED, f"worker {self.spec.name!r} is shutting down")
            deadline = attempt.deadline
            if deadline is not None:
                deadline_ms = max(1, int((time.time() + (deadline - time.monotonic())) * 1000))
            elif attempt.event.deadline:
                # no attempt deadline, but the event has one: honour it
                deadline_ms = attempt.event.deadline
                deadline = time.monotonic() + (deadline_ms / 1000 - time.time())
            else:
                return await self._deliver(attempt, 0)
            try:
                async with asyncio.timeout_at(deadline + DEADLINE_GRACE):
                    return await self._deliver(attempt, deadline_ms)
            except TimeoutError:
                return _node_error(
                    ErrorCode.TIMEOUT,
                    f"worker {self.spec.name!r} did not answer before the attempt's deadline",
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug must still produce an outcome
            self._log.exception("worker adapter failed")
            return _node_error(ErrorCode.INTERNAL, f"worker adapter failed: {type(exc).__name__}: {exc}")

    async def drain(self, timeout: float) -> bool:
        """Ask the worker to finish its in-flight deliveries, then say goodbye.

        New calls to :meth:`handle` end at once with ``cancelled``.
        :returns: False if the worker did not drain within ``timeout`` seconds.
        """
        self._stopping = True
        session = self._session
        if session is None or self.state not in ("ready", "warming"):
            self.state = "stopped" if self.state != "failed" else "failed"
            self._wake_all()
            return True
        self.state = "draining"
        self._wake_all()
        try:
            async with asyncio.timeout(timeout):
                session.conn.send(Drain())
                await session.drained.wait()
                while session.in_flight:  # noqa: ASYNC110 - results sent before `drained`
                    await asyncio.sleep(0.005)
                with contextlib.suppress(ClosedError):
                    session.conn.send(Goodbye(reason="drained"))
                await session.conn.close("drained")
                if self._proc is not None:
                    await self._proc.wait()
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
        self._wake_all()
        proc = self._proc
        if proc is not None and await stop_process(proc, STOP_GRACE):
            self._log.warning("worker did not exit %g s after SIGTERM; killed it", STOP_GRACE)
            await self._kill()  # let the log forwarders finish
        session = self._session
        if session is not None and proc is None:
            with contextlib.suppress(ClosedError):
                session.conn.send(Goodbye(reason="node closing"))
            await session.conn.close("node closing")
        await self._stop_supervisor()
        if session is not None:
            self._settle_lost(session, ErrorCode.CANCELLED, "the worker pool was closed")
        self.hub.unregister(self)
        if self.state != "failed":
            self.state = "stopped"

    def statistics(self) -> WorkerStatistics:
        session = self._session
        in_flight = len(session.in_flight) if session else 0
        return WorkerStatistics(
            name=self.spec.name,
            state=self.state,
            pid=self._proc.pid if self._proc and self._proc.returncode is None else None,
            types=self._types,
            max_in_flight=self._max_in_flight,
            in_flight=in_flight,
            credit=session.credit if session and session.ready.is_set() else 0,
            waiting=len(self._waiters),
            restarts=self.restarts,
            delivered=self.delivered,
            results=self.results,
            lost=self.lost,
        )

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
        return self._proc.pid if self._proc is not None else None

    @property
    def types(self) -> tuple[str, ...]:
        return self._types

    # --- delivering -----------------------------------------------------------------

    async def _deliver(self, attempt: Attempt, deadline_ms: int) -> Outcome:
        session = self._session
        if session is None or not session.ready.is_set() or session.credit <= 0 or self._waiters:
            session = await self._acquire()
            if session is None:
                return _node_error(ErrorCode.CANCELLED, f"worker {self.spec.name!r} is shutting down")
        event = attempt.event
        if event.attempt != attempt.number or (deadline_ms and event.deadline != deadline_ms):
            event = msgspec.structs.replace(event, attempt=attempt.number, deadline=deadline_ms or event.deadline)
        delivery_id = session.next_id
        data = encode_frame(Deliver(id=delivery_id, envelope=encode_event(event), deadline=deadline_ms))
        if len(data) - 4 > session.hello.max_frame:
            self._wake_one(session)
            return Outcome(
                error=ErrorInfo.of(
                    ErrorCode.INVALID_ARGUMENT,
                    f"event {event.id} is too large for worker {self.spec.name!r}: "
                    f"{len(data) - 4} bytes > its max_frame {session.hello.max_frame}",
                    runtime="node",
                )
            )
        session.next_id += 1
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        session.in_flight[delivery_id] = fut
        session.conn.send_bytes(data)
        self.delivered += 1
        return await fut

    async def _acquire(self) -> _Session | None:
        """A ready session with credit, or None when stopping."""
        while True:
            if self._stopping:
                return None
            session = self._session
            if session is not None and session.ready.is_set() and session.credit > 0 and not self._waiters:
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
                    if self._session is not None:
                        self._wake_one(self._session)
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            session = self._session
            if self._stopping:
                return None
            if session is not None and session.ready.is_set() and session.credit > 0:
                return session

    def _wake_one(self, session: _Session) -> None:
        """Wake as many waiters as there is unclaimed credit (usually one)."""
        spare = session.credit
        woken = 0
        for waiter in self._waiters:
            if woken >= spare:
                break
            if not waiter.done():
                waiter.set_result(None)
                woken += 1

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_result(self, session: _Session, result: Result) -> None:
        fut = session.in_flight.pop(result.id, None)
        if fut is None:
            session.conn.fail(f"result for unknown delivery id {result.id}")
            return
        self.results += 1
        if not fut.done():
            fut.set_result(self._outcome(result))
        if self._waiters:
            self._wake_one(session)

    def _outcome(self, result: Result) -> Outcome:
        emitted: list[Event[Any]] = []
        for index, raw in enumerate(result.emitted):
            try:
                emitted.append(decode_event(raw))
            except EnvelopeDecodeError as exc:
                return _node_error(
                    ErrorCode.INTERNAL,
                    f"worker {self.spec.name!r} emitted an invalid event (#{index}): {exc}",
                )
        if result.ok:
            error = None
        elif result.error is None:
            return _node_error(
                ErrorCode.INTERNAL,
                f"worker {self.spec.name!r} sent a failed result without an error envelope",
            )
        else:
            error = result.error
        return Outcome(error=error, emitted=tuple(emitted), start_ns=result.start_ns, duration_ns=result.duration_ns)

    def _settle_lost(self, session: _Session, code: ErrorCode, why: str) -> None:
        pending, session.in_flight = session.in_flight, {}
        for fut in pending.values():
            self.lost += 1
            if not fut.done():
                fut.set_result(_node_error(code, f"worker {self.spec.name!r}: {why}"))

    # --- the session ----------------------------------------------------------------

    def _attach(self, conn: WorkerConnection, hello: Hello, rest: Sequence[object]) -> str | None:
        """Called by the hub with a valid hello; returns a reject reason or None."""
        if self._attached is None or self._attached.done():
            if self._session is not None:
                return f"worker {self.spec.name!r} is already connected"
            return f"worker {self.spec.name!r} is not expecting a connection now"
        session = _Session(conn, hello)
        conn.label = f"worker {self.spec.name!r}"
        conn.max_frame = self.spec.max_frame
        conn.peer_max_frame = hello.max_frame
        conn._pending.extend(f for f in rest if isinstance(f, msgspec.Struct))  # type: ignore[misc]
        self._attached.set_result(session)
        return None

    def _rejected(self, hello: Hello, reason: str) -> None:
        if self._attached is not None and not self._attached.done():
            error: ProtocolError = (
                VersionMismatchError(reason)
                if reason.startswith("unsupported protocol")
                else ProtocolError(f"worker {self.spec.name!r} rejected: {reason}")
            )
            self._attached.set_exception(error)

    async def _read_loop(self, session: _Session) -> None:
        conn = session.conn
        try:
            while True:
                for frame in await conn.read():
                    if isinstance(frame, Result):
                        self._on_result(session, frame)
                    elif isinstance(frame, Heartbeat | UnknownFrame):
                        pass
                    elif isinstance(frame, Ready):
                        if not session.ready.is_set():
                            session.ready_at = time.monotonic()
                            session.ready.set()
                    elif isinstance(frame, Drained):
                        session.drained.set()
                    elif isinstance(frame, Goodbye):
                        session.goodbye = True
                    elif isinstance(frame, ErrorFrame):
                        self._log.error("worker reported a protocol error: %s", frame.message)
                        conn.abort(f"worker reported an error: {frame.message}")
                    else:
                        conn.fail(f"unexpected {frame_kind(frame)!r} frame from the worker")
        except (ProtocolError, ClosedError):
            return

    async def _spawn(self) -> None:
        assert self.spec.command is not None
        env = {**os.environ, **self.spec.env, "CROSSWIRE_SOCKET": self.hub.path}
        self._stderr_tail.clear()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=self.spec.cwd,
            )
        except OSError as exc:
            raise ProtocolError(f"worker {self.spec.name!r}: cannot start {self.spec.command[0]!r}: {exc}") from exc
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._pipes = [
            asyncio.create_task(self._forward(self._proc.stdout, logging.INFO, False)),
            asyncio.create_task(self._forward(self._proc.stderr, logging.WARNING, True)),
        ]

    async def _forward(self, stream: asyncio.StreamReader, level: int, is_stderr: bool) -> None:
        pid = self._proc.pid if self._proc else None
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit
                line = await stream.read(64 * 1024)
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            if is_stderr:
                self._stderr_tail.append(text)
            self._log.log(level, "%s", text, extra={"worker_pid": pid})

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        await kill_process(proc)
        # let the log forwarders finish reading what the process wrote
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pipes, return_exceptions=True), 1.0)

    def _exit_text(self) -> str:
        proc = self._proc
        if proc is None or proc.returncode is None:
            return ""
        code = proc.returncode
        what = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = f": {self._stderr_tail[-1]}" if self._stderr_tail else ""
        return f"process {proc.pid} {what}{tail}"

    async def _connect(self) -> _Session:
        """Spawn (or wait for) the worker and complete HELLO → WELCOME → INIT → READY."""
        loop = asyncio.get_running_loop()
        self._attached = loop.create_future()
        self.state = "initializing"
        if self.spec.command is not None:
            await self._spawn()
        watchers: list[asyncio.Future[Any]] = [self._attached]
        exit_wait: asyncio.Task[int] | None = None
        if self._proc is not None:
            exit_wait = asyncio.create_task(self._proc.wait())
            watchers.append(exit_wait)
        try:
            async with asyncio.timeout(self.spec.ready_timeout):
                await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
                if not self._attached.done():
                    await self._kill()
                    raise ProtocolError(f"worker {self.spec.name!r} exited before it connected: {self._exit_text()}")
                session = self._attached.result()  # raises if rejected
                conn = session.conn
                conn.send(
                    Welcome(
                        version=session.version,
                        max_frame=self.spec.max_frame,
                        heartbeat_ms=max(1, round(self.spec.heartbeat_interval * 1000)),
                        node=self.hub.node_name,
                    )
                )
                conn.start_heartbeats(self.spec.heartbeat_interval)
                self._session = session
                self._types = tuple(session.hello.types)
                self._max_in_flight = session.hello.max_in_flight
                self._runtime = session.hello.runtime
                reader = asyncio.create_task(self._read_loop(session))
                session.reader = reader
                self.state = "warming"
                conn.send(Init())
                ready = asyncio.create_task(session.ready.wait())
                closed = asyncio.ensure_future(conn.wait_closed())
                await asyncio.wait([ready, closed], return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                closed.cancel()
                if not session.ready.is_set():
                    if exit_wait is not None:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(asyncio.shield(exit_wait), 1.0)
                    detail = self._exit_text() or conn.close_reason or "closed"
                    raise ProtocolError(f"worker {self.spec.name!r} failed during warm-up: {detail}")
                return session
        except TimeoutError:
            raise ProtocolError(
                f"worker {self.spec.name!r} was not ready within {self.spec.ready_timeout:g} s"
            ) from None
        finally:
            if exit_wait is not None and not exit_wait.done():
                exit_wait.cancel()

    async def _supervise(self) -> None:
        backoff = self.spec.restart_backoff_initial
        first = True
        while not self._stopping:
            session: _Session | None = None
            try:
                session = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._proc is not None:
                    # a rejected or failing worker says why on stderr and exits: let it
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self._proc.wait()), 1.0)
                await self._end_session(None, str(exc))
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
                self._wake_one(session)
                reason = await self._serve(session)
                if self._stopping:
                    return
                self._log.error("worker lost (%s); restarting in %.2f s", reason, backoff)
                if time.monotonic() - session.ready_at >= STABLE_AFTER:
                    backoff = self.spec.restart_backoff_initial
            if self._stopping:
                return
            self.state = "initializing"
            if self.spec.command is not None:  # an external worker reconnects on its own
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.spec.restart_backoff_max)
            self.restarts += 1

    async def _serve(self, session: _Session) -> str:
        """Run until the session ends; settle what it had in flight. Returns why it ended."""
        closed = asyncio.ensure_future(session.conn.wait_closed())
        watchers: list[asyncio.Future[Any]] = [closed]
        exit_wait: asyncio.Task[int] | None = None
        if self._proc is not None:
            exit_wait = asyncio.create_task(self._proc.wait())
            watchers.append(exit_wait)
        try:
            await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if self._stopping and self._proc is not None:
            # closing or draining: let the process finish on its own
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), STOP_GRACE)
        elif self._proc is not None and self._proc.returncode is None:
            # the connection dropped first: a dying process exits a moment later, say how
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), 0.2)
        if exit_wait is not None and not exit_wait.done():
            exit_wait.cancel()
        parts = [session.conn.close_reason, self._exit_text()]
        reason = "; ".join(p for p in parts if p) or "connection closed"
        await self._end_session(session, reason)
        return reason

    async def _end_session(self, session: _Session | None, reason: str) -> None:
        if session is not None:
            session.conn.abort(reason)
            if session.reader is not None:
                session.reader.cancel()
            if self._session is session:
                self._session = None
        if self._proc is not None:
            await self._kill()
        if session is not None:
            if self._stopping:
                self._settle_lost(session, ErrorCode.CANCELLED, f"stopped mid-attempt ({reason})")
            else:
                self._settle_lost(session, ErrorCode.WORKER_LOST, f"worker lost mid-attempt ({reason})")

    async def _stop_supervisor(self) -> None:
        task = self._supervisor
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._end_session(self._session, "the worker pool was closed")
        elif self._proc is not None and self._proc.returncode is None:
            await self._kill()
