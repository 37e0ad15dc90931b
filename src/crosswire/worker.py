"""The Python worker SDK: handle events in a separate process, for a crosswire node.

::

    from crosswire.worker import Worker, Context, RetryLater, Reject, Fail

    w = Worker("enricher", max_in_flight=32)

    @w.handler("order.created")
    async def enrich(ctx: Context, event: crosswire.Event) -> None:
        ctx.emit("order.enriched", event.data, datacontenttype="application/msgpack")

    w.run()   # connects to $CROSSWIRE_SOCKET (sending $CROSSWIRE_TOKEN); SIGTERM drains

Like the Go and Rust SDKs it is thin: the codec, handshake, lifecycle, heartbeats, flow
control and dispatch (spec/protocol.md); retries, breakers, dead letters are the node's.

How a handler's attempt ends:

- returns → ok, with the events it emitted;
- raises :class:`RetryLater` / :class:`Reject` / :class:`Fail` (the classes in-process
  handlers raise) → that error envelope; the deadline passes → ``timeout``;
- raises anything else → ``handler_error`` (retryable), and the worker keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._envelope import Event, decode_event, encode_event
from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import (
    ClosedError,
    ConfigurationError,
    CrosswireError,
    EnvelopeDecodeError,
    FrameDecodeError,
    ProtocolError,
)
from ._observability.worker_side import WorkerObservability
from ._signals import Fail, Reject, RetryLater
from ._subjects import subject_matches, validate_pattern
from ._tasks import TaskSet
from ._workers.connection import WorkerConnection, frame_kind
from ._workers.context import Context
from ._workers.deprecated import Permanent, Retryable
from ._workers.frames import (
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
    check_nesting,
    encode_frame,
)
from ._workers.frames import Reject as RejectFrame
from ._workers.payloads import PayloadDecoder, decode_payload, payload_decoder
from ._workers.schemas import accepted_uris

__all__ = [
    "DEFAULT_MAX_FRAME",
    "PROTOCOL_VERSIONS",
    "Context",
    "ErrorCode",
    "Event",
    "Fail",
    "Permanent",
    "Reject",
    "RetryLater",
    "Retryable",
    "Worker",
    "WorkerHandler",
]

_log = logging.getLogger("crosswire.worker")

RUNTIME = "python"
SDK = "crosswire-python/0.1.0"


WorkerHandler = Callable[[Context, Event[Any]], Awaitable[None]]
H = TypeVar("H", bound=WorkerHandler)


class Worker:
    """A worker process: register handlers, then :meth:`run`.

    :param name: must match the worker name configured on the node.
    :param max_in_flight: deliveries handled at once (the credit given to the node).
    :param max_frame: the largest frame accepted from the node.
    :param versions: protocol versions offered in ``hello``.
    """

    def __init__(
        self,
        name: str,
        *,
        max_in_flight: int = 64,
        max_frame: int = DEFAULT_MAX_FRAME,
        versions: Iterable[int] = PROTOCOL_VERSIONS,
    ) -> None:
        if not name:
            raise ConfigurationError("a worker needs a name")
        if max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if max_frame < MIN_MAX_FRAME:
            raise ConfigurationError(f"max_frame must be >= {MIN_MAX_FRAME}, got {max_frame}")
        self.name = name
        self.max_in_flight = max_in_flight
        self.max_frame = max_frame
        self.versions = list(versions)
        self._handlers: dict[str, WorkerHandler] = {}
        self._decoders: dict[WorkerHandler, PayloadDecoder] = {}
        self._schemas: dict[str, list[str]] = {}  # hello.schemas
        self._warmup: Callable[[], Awaitable[None]] | None = None
        self._conn: WorkerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._drained_sent = False
        self._self_drain = False
        self._warming: asyncio.Task[None] | None = None
        #: The warm-up and closing tasks; deliveries are in ``_tasks``.
        self._owned = TaskSet(f"worker {name!r}", _log)
        self._failure: ProtocolError | None = None
        self._observe = WorkerObservability(name, RUNTIME)  # spans and logs shipped to the node

    # --- registration ---------------------------------------------------------------

    def handler(self, event_type: str, *, accepts: Iterable[str | type] | None = None) -> Callable[[H], H]:
        """Register an ``async (ctx, event) -> None`` for ``event_type`` (wildcards allowed).

        With ``event: Event[T]`` the payload is decoded into ``T`` first, by
        ``datacontenttype`` as the node decodes (spec/payloads.md); one that does not decode
        ends the attempt with ``invalid_argument``. ``accepts``: the ``dataschema`` URIs (or
        schema-declared types) it reads, sent in ``hello.schemas``; the node dead-letters
        other versions (``None``: any).

        :raises ConfigurationError: not a coroutine function, the type is taken, the
            pattern, ``accepts`` or ``T`` is invalid.
        """
        uris = None if accepts is None else accepted_uris(event_type, accepts)

        def register(fn: H) -> H:
            is_async = inspect.iscoroutinefunction(fn)  # kept apart: it would narrow `fn`
            if not is_async:
                raise ConfigurationError(f"handler for {event_type!r} must be an async function")
            if event_type in self._handlers:
                raise ConfigurationError(f"a handler for {event_type!r} is already registered")
            try:
                validate_pattern(event_type)
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
            decoder = payload_decoder(fn)
            if decoder is not None:
                self._decoders[fn] = decoder
            self._schemas.update({} if uris is None else {event_type: uris})
            self._handlers[event_type] = fn
            return fn

        return register

    def warmup(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Register the warm-up hook run between ``init`` and ``ready``."""
        self._warmup = fn
        return fn

    def _lookup(self, event_type: str) -> WorkerHandler | None:
        fn = self._handlers.get(event_type)
        if fn is not None:
            return fn
        for pattern, candidate in self._handlers.items():
            if ("*" in pattern or ">" in pattern) and subject_matches(pattern, event_type):
                return candidate
        return None

    # --- running --------------------------------------------------------------------

    def run(self, socket_path: str | None = None) -> None:
        """Serve until drained; on a protocol error print ``crosswire: <reason>`` and exit 1."""
        try:
            asyncio.run(self.serve(socket_path))
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        except (CrosswireError, OSError) as exc:
            print(f"crosswire: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    async def serve(self, socket_path: str | None = None) -> None:
        """Connect, handshake, and handle deliveries until a clean goodbye.

        :raises ProtocolError: rejected, a bad frame, or the node went away uncleanly.
        :raises ConfigurationError: no socket path and ``CROSSWIRE_SOCKET`` unset, or no handlers.
        """
        path = socket_path or os.environ.get("CROSSWIRE_SOCKET")
        if not path:
            raise ConfigurationError("CROSSWIRE_SOCKET is not set: start this worker from a crosswire node")
        if not self._handlers:
            raise ConfigurationError(f"worker {self.name!r} has no handlers")
        reader, writer = await asyncio.open_unix_connection(path, limit=2**16)
        conn = WorkerConnection(reader, writer, max_frame=self.max_frame, label="node")
        self._conn = conn
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        try:
            await self._session(conn)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
            deliveries = list(self._tasks)
            for task in deliveries:
                task.cancel()
            # every task this worker started ends before serve() returns
            await asyncio.gather(*deliveries, return_exceptions=True)
            await self._owned.aclose()
            self._observe.stop_logs()
            conn.abort("worker stopped")

    async def _session(self, conn: WorkerConnection) -> None:
        conn.send(
            Hello(
                versions=self.versions,
                name=self.name,
                runtime=RUNTIME,
                types=list(self._handlers),
                max_in_flight=self.max_in_flight,
                max_frame=self.max_frame,
                pid=os.getpid(),
                sdk=SDK,
                schemas=self._schemas or None,  # in registration order, like types
                token=os.environ.get("CROSSWIRE_TOKEN") or None,
            )
        )
        frames = await self._read(conn)
        first = frames.pop(0)
        if isinstance(first, RejectFrame):
            raise ProtocolError(f"rejected by node: {first.reason}")
        if not isinstance(first, Welcome):
            message = f"expected welcome or reject, got {frame_kind(first)!r}"
            conn.fail(message)
            raise ProtocolError(message)
        conn.peer_max_frame = first.max_frame
        self._observe.start_logs(conn.send)  # log frames only once welcomed
        conn.start_heartbeats(max(first.heartbeat_ms, 1) / 1000)
        while True:
            for frame in frames:
                if await self._on_frame(conn, frame):
                    return
            frames = await self._read(conn)

    async def _read(self, conn: WorkerConnection) -> list[Any]:
        try:
            return await conn.read()
        except ClosedError as exc:
            if self._failure is not None:
                raise self._failure from None
            if self._drained_sent:
                return [Goodbye(reason="closed after drain")]
            raise ProtocolError(f"connection to the node lost: {exc}") from None

    async def _on_frame(self, conn: WorkerConnection, frame: Any) -> bool:
        """Handle one frame; True when the session ended cleanly."""
        if isinstance(frame, Deliver):
            self._start_delivery(conn, frame)
        elif isinstance(frame, Heartbeat | UnknownFrame):
            pass
        elif isinstance(frame, Init):
            # a task: frames (heartbeats) keep being read while the hook runs
            self._warming = self._owned.start(self._warm_up(conn), name="worker:warm-up")
        elif isinstance(frame, Drain):
            self._draining = True
            self._maybe_drained(conn)
        elif isinstance(frame, Goodbye):
            await conn.close("goodbye")
            return True
        elif isinstance(frame, ErrorFrame):
            raise ProtocolError(f"node reported a protocol error: {frame.message}")
        else:
            message = f"unexpected {frame_kind(frame)!r} frame from the node"
            conn.fail(message)
            raise ProtocolError(message)
        return False

    async def _warm_up(self, conn: WorkerConnection) -> None:
        if self._warmup is not None:
            try:
                await self._warmup()
            except Exception as exc:
                message = f"warm-up failed: {type(exc).__name__}: {exc}"
                self._failure = ProtocolError(message)
                conn.fail(message)
                return
        with contextlib.suppress(ClosedError):
            conn.send(_READY)

    def _on_sigterm(self) -> None:
        self._draining = True
        self._self_drain = True
        if self._conn is not None:
            self._maybe_drained(self._conn)

    def _maybe_drained(self, conn: WorkerConnection) -> None:
        if not self._draining or self._tasks or self._drained_sent:
            return
        self._drained_sent = True
        with contextlib.suppress(ClosedError):
            conn.send(_DRAINED)
            if self._self_drain:
                conn.send(Goodbye(reason="SIGTERM"))
                self._owned.start(conn.close("drained after SIGTERM"), name="worker:close")

    # --- deliveries -----------------------------------------------------------------

    def _start_delivery(self, conn: WorkerConnection, deliver: Deliver) -> None:
        if len(self._tasks) >= self.max_in_flight:
            message = f"node exceeded max_in_flight {self.max_in_flight} (delivery {deliver.id})"
            conn.fail(message)
            raise ProtocolError(message)
        task = asyncio.create_task(self._deliver(conn, deliver))
        self._tasks.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # handler errors become results; this is a bug in the SDK itself: say so, loudly
            _log.error("delivery task failed", exc_info=task.exception())
            if self._conn is not None:
                self._conn.fail(f"worker {self.name!r} failed internally: {task.exception()!r}")

    async def _deliver(self, conn: WorkerConnection, deliver: Deliver) -> None:
        start_ns = time.time_ns()
        t0 = time.perf_counter_ns()
        emitted: list[Event[Any]] = []
        if self._draining:
            error: ErrorInfo | None = ErrorInfo.of(
                ErrorCode.CANCELLED, f"worker {self.name!r} is draining", runtime=RUNTIME
            )
        else:
            error, emitted = await self._run_handler(deliver)
        duration_ns = time.perf_counter_ns() - t0
        result = Result(
            id=deliver.id,
            ok=error is None,
            error=error,
            start_ns=start_ns,
            duration_ns=duration_ns,
            emitted=[encode_event(e) for e in emitted],
            spans=self._observe.take(deliver.id),
        )
        data = encode_frame(result)
        if len(data) - 4 > conn.peer_max_frame:
            result = Result(
                id=deliver.id,
                ok=False,
                start_ns=start_ns,
                duration_ns=duration_ns,
                error=ErrorInfo.of(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"result is {len(data) - 4} bytes > the node's max_frame {conn.peer_max_frame}",
                    runtime=RUNTIME,
                ),
            )
            data = encode_frame(result)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)  # before _maybe_drained counts what is left
        with contextlib.suppress(ClosedError):
            conn.send_bytes(data)
        self._maybe_drained(conn)

    async def _run_handler(self, deliver: Deliver) -> tuple[ErrorInfo | None, list[Event[Any]]]:
        try:
            check_nesting(deliver.envelope)  # an envelope nested too deep is malformed
            event = decode_event(deliver.envelope)
        except (EnvelopeDecodeError, FrameDecodeError) as exc:
            return ErrorInfo.of(ErrorCode.INVALID_ARGUMENT, f"envelope did not decode: {exc}"), []
        fn = self._lookup(event.type)
        if fn is None:
            return ErrorInfo.of(ErrorCode.UNIMPLEMENTED, f"worker {self.name!r} has no handler for {event.type!r}"), []
        decoder = self._decoders.get(fn)
        if decoder is not None and (failed := decode_payload(decoder, event)) is not None:
            return failed, []
        ctx = Context(self.name, deliver.id, event, deliver.deadline)
        remaining = None
        if deliver.deadline:
            remaining = deliver.deadline / 1000 - time.time()
            if remaining <= 0:
                return _timeout_error(deliver.deadline), []
        scope = asyncio.timeout(remaining)
        try:
            async with scope:
                await self._observe.run(fn, ctx, event)
        except TimeoutError as exc:
            if scope.expired():
                return _timeout_error(deliver.deadline), []
            return ErrorInfo.of(ErrorCode.TIMEOUT, f"handler raised TimeoutError: {exc}"), []
        except Fail as exc:
            return exc.info, []
        except Exception as exc:
            return ErrorInfo.of(ErrorCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}"), []
        return None, ctx.emitted


def _timeout_error(deadline_ms: int) -> ErrorInfo:
    late = time.time() * 1000 - deadline_ms
    return ErrorInfo.of(ErrorCode.TIMEOUT, f"deadline passed ({late:.0f} ms ago) before the handler finished")


_READY = Ready()
_DRAINED = Drained()
