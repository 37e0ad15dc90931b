"""The node: lifecycle, consume, submit and drain. It owns every task it starts.

The path of one event::

    submit ─► transport ─► subscription (one per binding) ─► dispatcher (bounded queue,
    long-lived tasks, per-key order) ─► settler: policy chain ─► adapter ─► outcome
    ─► ack | retry(after) | dead-letter + terminate

What happens to one delivery, and the rules that lose nothing, are in
:mod:`crosswire._settle`; the policy order is in :mod:`crosswire._policies.chain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

from ._app import App, Policies
from ._binding import Binding
from ._deadletter import DeadLetterStore, MemoryDeadLetterStore
from ._dispatcher import Dispatcher
from ._envelope import Event
from ._exceptions import ClosedError, ConfigurationError
from ._function import function_handler
from ._lifecycle import Lifecycle, State
from ._pending import Pending, entries_of
from ._policies.dedup import IdempotencyStore, MemoryIdempotencyStore
from ._policies.tracing import NodeTracing, node_tracing
from ._replay import DeadLetters
from ._reports import DrainReport, NodeStatistics, drain_dispatchers
from ._router import Router
from ._settle import Settler, hand_back
from ._tasks import TaskSet
from ._transports.base import Delivery, Transport
from ._types import Handler

__all__ = ["Node"]

log = logging.getLogger("crosswire.node")


class Node:
    """Runs an :class:`App` on a transport.

    :param transport: defaults to an in-process ``MemoryTransport``.
    :param max_pending: bound on submitted events not yet in a terminal state (per
        binding) — reaching it blocks ``submit`` (``on_full="block"``, up to
        ``submit_timeout``, then :class:`BackpressureError`) or fails it at once
        (``on_full="reject"``). Defaults to 10,000 on non-durable transports and no
        bound on durable ones (the stream is the buffer).
    :param max_pending_bytes: the same bound in bytes of event data; defaults to
        128 MiB on non-durable transports and no bound on durable ones.
    :param drain_timeout: how long ``drain``/``__aexit__`` waits for in-flight work.
    :param worker_socket: the Unix socket path external workers connect to (default:
        a fresh private directory); logged at start and in :meth:`statistics`.
    """

    def __init__(
        self,
        app: App,
        transport: Transport | None = None,
        *,
        dead_letters: DeadLetterStore | None = None,
        idempotency: IdempotencyStore | None = None,
        max_pending: int | Literal["auto"] | None = "auto",
        max_pending_bytes: int | Literal["auto"] | None = "auto",
        on_full: Literal["block", "reject"] = "block",
        submit_timeout: float = 10.0,
        drain_timeout: float = 30.0,
        ack_wait: float = 30.0,
        threads: int = 32,
        worker_socket: str | None = None,
    ) -> None:
        if transport is None:
            from ._transports.memory import MemoryTransport

            transport = MemoryTransport()
        if on_full not in ("block", "reject"):
            raise ConfigurationError(f"on_full must be 'block' or 'reject', got {on_full!r}")
        self.app = app
        self.transport = transport
        self.lifecycle = Lifecycle(f"node {app.name}")
        # A durable transport brings its durable dead-letter store (JetStream: a stream).
        if dead_letters is None:
            make_dlq = getattr(transport, "dead_letter_store", None)
            dead_letters = make_dlq() if callable(make_dlq) else MemoryDeadLetterStore()
        self.dead_letters = DeadLetters(dead_letters, self._publish)
        if idempotency is None:
            make_store = getattr(transport, "default_idempotency_store", None)
            idempotency = make_store() if callable(make_store) else None
        self.idempotency: IdempotencyStore = idempotency or MemoryIdempotencyStore()
        self._pending = Pending.configured(
            max_pending, max_pending_bytes, durable=transport.features.durable, on_full=on_full, timeout=submit_timeout
        )
        self.max_pending = self._pending.limit
        self.drain_timeout = drain_timeout
        self.ack_wait = ack_wait
        self.router: Router[Binding] = Router()
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._settler = Settler(dead_letters, self._publish, self._pending.discard, app.source)
        self._tasks = TaskSet(f"node {app.name}", log, on_failure=self._task_failed)
        self._pools: list[Any] = []
        self._hub: Any = None
        self._worker_socket = worker_socket
        self.submitted = 0

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def state(self) -> State:
        return self.lifecycle.state

    async def start(self) -> None:
        """initializing (transport, on_init) → warming (workers, on_warmup) → ready
        (subscriptions consuming). On any failure the node is stopped and the error raised."""
        self.app.freeze()
        self._tracing: NodeTracing | None = node_tracing(self.app.name, self.transport)  # None: no cost
        self.lifecycle.to(State.INITIALIZING)
        try:
            await self.transport.start()
            for hook in self.app.init_hooks:
                await hook()
            for config in self.app.handlers:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="crosswire-sync")
                fn_handler = function_handler(config.fn, executor=self._executor)
                self._add_binding(config.name, config.pattern, fn_handler, config.policies, "python")
            self.lifecycle.to(State.WARMING)
            await self._start_workers()
            for hook in self.app.warmup_hooks:
                await hook()
            for binding in self.router.bindings:
                await self._consume(binding)
            leases = self._settler.keep_leases(max(0.05, self.ack_wait / 3), lambda: self.router.bindings)
            self._tasks.start(leases, name="crosswire-leases")
            self.lifecycle.to(State.READY)
        except BaseException as exc:
            self.lifecycle.fail(f"{type(exc).__name__}: {exc}")
            await self._shutdown(force=True)
            raise

    def _task_failed(self, exc: BaseException) -> None:
        # a consumer that died would leave the node deaf while it says ready: say it is not
        if self.lifecycle.state is State.READY:
            self.lifecycle.fail(f"a background task failed: {type(exc).__name__}: {exc}")

    def _add_binding(self, name: str, pattern: str, handler: Handler, policies: Policies, runtime: str) -> Binding:
        tracing = self._tracing.binding(name, runtime, handler) if self._tracing is not None else None
        binding = Binding(name, pattern, handler, policies, store=self.idempotency, tracing=tracing, runtime=runtime)
        self.router.add(binding)
        binding.lifecycle.to(State.INITIALIZING)
        return binding

    async def _start_workers(self) -> None:
        if not self.app.workers:
            return
        from ._workers.hub import WorkerHub
        from ._workers.pool import WorkerPool
        from ._workers.spec import WorkerSpec, app_produces

        self._hub = WorkerHub(node_name=self.app.name, socket_path=self._worker_socket)
        await self._hub.start()
        log.info("workers connect on %s", self._hub.socket_path)
        for config in self.app.workers:
            spec = WorkerSpec(
                name=config.name, command=config.command, env=dict(config.env), cwd=config.cwd, options=config.options
            ).producing(app_produces(self.app, config))
            pool = WorkerPool(spec, self._hub)
            pool.open()  # every name is taken before any worker starts
            self._pools.append(pool)
        for config, pool in zip(self.app.workers, self._pools, strict=True):
            types = await pool.start()
            for event_type in types:
                self._add_binding(f"{config.name}:{event_type}", event_type, pool.handle, config.policies, pool.runtime)

    async def _consume(self, binding: Binding) -> None:
        binding.lifecycle.to(State.WARMING)
        prefetch = max(binding.policies.queue_size, binding.policies.concurrency)
        binding.subscription = await self.transport.subscribe(
            binding.pattern, self._group(binding), prefetch=prefetch, ack_wait=self.ack_wait
        )
        settler = self._settler
        dispatcher: Dispatcher[Delivery] = Dispatcher(
            functools.partial(settler.process, binding),
            _delivery_key,
            concurrency=binding.policies.concurrency,
            capacity=binding.policies.queue_size,
            on_error=lambda d, exc, b=binding: log.error(  # type: ignore[misc]
                "binding %s: unexpected error processing a delivery", b.name, exc_info=exc
            ),
            name=f"crosswire-{binding.name}",
        )
        binding.dispatcher = dispatcher
        dispatcher.start()
        binding.consumer = self._tasks.start(self._pump(binding), name=f"crosswire-consume-{binding.name}")
        binding.lifecycle.to(State.READY)

    def _group(self, binding: Binding) -> str:
        return f"{self.app.name}.{binding.name}"

    async def _pump(self, binding: Binding) -> None:
        assert binding.subscription is not None and binding.dispatcher is not None
        dispatcher = binding.dispatcher
        async for delivery in binding.subscription:
            if not dispatcher.put_nowait(delivery):
                await dispatcher.put(delivery)

    async def drain(self, timeout: float | None = None) -> DrainReport:
        """Stop taking new work, finish in-flight and queued deliveries within
        ``timeout`` (default ``drain_timeout``), hand back whatever is left, stop."""
        timeout = self.drain_timeout if timeout is None else timeout
        started = time.monotonic()
        if self.lifecycle.state in (State.STOPPED, State.DRAINING):
            return DrainReport(0, 0, False, 0.0)
        if self.lifecycle.state is State.FAILED:
            await self._shutdown(force=True)
            return DrainReport(0, 0, False, 0.0)
        self.lifecycle.to(State.DRAINING)
        bindings = self.router.bindings
        deadline = started + timeout
        if not self.transport.features.durable:
            # nothing else will ever consume what an in-process transport holds:
            # finish everything submitted, not just what is in flight
            with contextlib.suppress(TimeoutError):
                await self.wait_idle(max(0.0, deadline - time.monotonic()))
        for binding in bindings:
            binding.lifecycle.to(State.DRAINING)
        await self._tasks.stop(*(b.consumer for b in bindings))
        for binding in bindings:  # pull no more; hand back what was fetched but not taken
            if binding.subscription is not None:
                await binding.subscription.stop()
        finished, returned, missed = await drain_dispatchers(
            [b.dispatcher for b in bindings if b.dispatcher is not None], deadline
        )
        for pool in self._pools:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                if not await pool.drain(remaining):
                    missed = True
            except Exception:
                log.exception("worker pool %s: drain failed", pool.name)
                missed = True
        if not self.transport.features.durable and len(self._pending):
            missed = True
            log.error(
                "drain: %d submitted events were not handled and are lost with the in-process transport",
                len(self._pending),
            )
        await self._shutdown(force=False)
        report = DrainReport(finished, returned, missed, time.monotonic() - started)
        if missed:
            log.warning("drain missed its %.1fs deadline: %d deliveries handed back", timeout, returned)
        return report

    async def stop(self) -> None:
        """Drain with the default deadline (idempotent)."""
        if self.lifecycle.state is not State.STOPPED:
            await self.drain()

    async def _shutdown(self, *, force: bool) -> None:
        await self._tasks.aclose()
        for binding in self.router.bindings:
            if force and binding.dispatcher is not None:
                for delivery in binding.dispatcher.drain_queued():
                    await hand_back(delivery)
                await binding.dispatcher.stop()
            if binding.subscription is not None:
                try:
                    await binding.subscription.close()
                except Exception:
                    log.exception("binding %s: closing the subscription failed", binding.name)
            binding.lifecycle.stop()
        for pool in self._pools:
            try:
                await pool.close()
            except Exception:
                log.exception("worker pool %s: close failed", pool.name)
        if self._hub is not None:
            try:
                await self._hub.close()
            except Exception:
                log.exception("worker hub: close failed")
        for hook in self.app.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("on_shutdown hook failed")
        try:
            await self.transport.close()
        except Exception:
            log.exception("closing the transport failed")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.lifecycle.stop()

    # -- submit ----------------------------------------------------------------------

    async def submit(
        self,
        type: str,
        data: Any = None,
        *,
        key: str | None = None,
        id: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        deadline: float | datetime | None = None,
        subject: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Event[Any]:
        """Build an event and hand it to the transport; returns it once accepted.

        ``data``: ``bytes`` are sent as they are (``application/octet-stream``); ``str``
        as UTF-8 text; anything else msgspec can encode (Structs, dataclasses, dicts,
        lists) as MessagePack.
        ``deadline``: seconds from now (or an aware ``datetime``) by which the event
        must be handled. The names and units are those of ``Event.new``.

        :raises BackpressureError: the node stayed full (see ``max_pending``).
        :raises ClosedError: the node is not running.
        :raises TransportError: the transport did not accept the event.
        :raises ValueError: invalid type or attributes.
        """
        event = Event.new(
            type,
            data,
            source=self.app.source,
            id=id,
            subject=subject,
            datacontenttype="application/octet-stream" if isinstance(data, (bytes, bytearray, memoryview)) else None,
            key=key,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            deadline=deadline,
            extensions=extensions,
        )
        await self.submit_events((event,))
        return event

    async def submit_events(self, events: Sequence[Event[Any]]) -> None:
        """Hand prebuilt events to the transport (one batch), with backpressure."""
        if self.lifecycle.state is not State.READY:
            raise ClosedError(f"node {self.app.name!r} is {self.lifecycle.state.value}, not ready")
        pairs, sizes, size = entries_of(events, self.router.route, lossless=not self.transport.features.durable)
        if self._pending.full(len(pairs), size):
            await self._pending.reserve(len(pairs), size)
        if self._tracing is None:
            await self._publish_tracked(events, pairs, sizes)
        else:  # traced: PRODUCER spans, injected into the events
            await self._tracing.producing(self._publish_tracked)(events, pairs, sizes)
        self.submitted += len(events)

    async def _publish(self, events: Sequence[Event[Any]]) -> None:
        """Internal publish (emitted follow-ups, replays): tracked, never blocked by
        ``max_pending`` — a handler waiting on capacity only it can free would deadlock."""
        await self._publish_tracked(events, *entries_of(events, self.router.route, lossless=False)[:2])

    async def _publish_tracked(
        self, events: Sequence[Event[Any]], pairs: list[tuple[str, str]], sizes: list[int]
    ) -> None:
        """Publish, counting ``pairs`` (with the data ``sizes`` they hold) as pending from
        before the transport accepts them."""
        self._pending.add(pairs, sizes)
        try:
            await self.transport.publish(events)
        except BaseException:
            self._pending.remove(pairs)
            raise

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every event submitted through this node reached a terminal state
        in every binding of this node (handled or dead-lettered).

        :raises TimeoutError: after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._pending.wait_empty()

    # -- inspection --------------------------------------------------------------------

    @property
    def bindings(self) -> tuple[Binding, ...]:
        return self.router.bindings

    @property
    def ready(self) -> bool:
        """True when the node, every binding and the transport's connection are ready."""
        connected = getattr(self.transport, "connected", True)
        return self.lifecycle.ready and bool(connected) and all(b.lifecycle.ready for b in self.router.bindings)

    def statistics(self) -> NodeStatistics:
        transport_stats = getattr(self.transport, "statistics", None)
        store_stats = getattr(self.idempotency, "statistics", None)
        return NodeStatistics(
            node=self.app.name,
            state=self.lifecycle.state,
            submitted=self.submitted,
            pending=len(self._pending),
            pending_bytes=self._pending.bytes,
            in_flight=len(self._settler.in_flight),
            bindings={b.name: b.statistics() for b in self.router.bindings},
            workers={p.name: p.statistics() for p in self._pools},
            worker_socket=self._hub.socket_path if self._hub is not None else None,
            transport=transport_stats() if callable(transport_stats) else None,
            idempotency=store_stats() if callable(store_stats) else None,
        )


def _delivery_key(delivery: Delivery) -> str | None:
    event = delivery.event
    return event.partitionkey if event is not None else None
