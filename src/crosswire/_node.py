"""The node: lifecycle, submit, consume, settle. It owns every task it starts.

The path of one event::

    submit ─► transport ─► subscription (one per binding) ─► dispatcher (bounded queue,
    long-lived tasks, per-key order) ─► policy chain ─► adapter ─► outcome
    ─► retry policy ─► settle: ack | retry(after) | dead-letter + terminate

Settlement rules ("nothing lost"): a delivery is acknowledged only after its
handler returned success and its emitted events were accepted by the transport; a
failed attempt is either handed back for a later attempt or stored as a dead letter
*before* it is terminated; a delivery still unsettled when a drain deadline passes is
handed back to the transport, never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import msgspec

from ._app import App, Policies
from ._binding import Binding
from ._deadletter import AttemptRecord, DeadLetter, DeadLetterStore, MemoryDeadLetterStore, dead_letter_id
from ._deadletters import REPLAY_OF, REPLAY_TARGET, DeadLetters
from ._policies.dedup import IdempotencyStore, MemoryIdempotencyStore
from ._dispatcher import Dispatcher
from ._envelope import Event, follow_up
from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import ClosedError, ConfigurationError, TransportError
from ._function import function_handler
from ._lifecycle import Lifecycle, State
from ._pending import Pending
from ._router import Router
from ._policies.tracing import tracing_if_configured
from ._transports.base import Delivery, Transport
from ._types import Attempt, Handler, Outcome

__all__ = ["DrainReport", "Node"]

log = logging.getLogger("crosswire.node")


@dataclasses.dataclass(frozen=True)
class DrainReport:
    """How a drain went. ``deadline_missed`` ⇒ ``returned`` deliveries were handed back."""

    finished: int
    returned: int
    deadline_missed: bool
    seconds: float


class Node:
    """Runs an :class:`App` on a transport.

    :param transport: defaults to an in-process ``MemoryTransport``.
    :param max_pending: bound on submitted events not yet in a terminal state (per
        binding) — reaching it blocks ``submit`` (``on_full="block"``, up to
        ``submit_timeout``, then :class:`BackpressureError`) or fails it at once
        (``on_full="reject"``). Defaults to 10,000 on non-durable transports and no
        bound on durable ones (the stream is the buffer).
    :param drain_timeout: how long ``drain``/``__aexit__`` waits for in-flight work.
    """

    def __init__(
        self,
        app: App,
        transport: Transport | None = None,
        *,
        dead_letters: DeadLetterStore | None = None,
        idempotency: IdempotencyStore | None = None,
        max_pending: int | None = -1,
        on_full: Literal["block", "reject"] = "block",
        submit_timeout: float = 10.0,
        drain_timeout: float = 30.0,
        ack_wait: float = 30.0,
        threads: int = 32,
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
        # Dedup defaults to this node's memory: it catches redeliveries and duplicates that
        # reach this node at no broker cost. Cluster-wide dedup is one argument away
        # (JetStream: idempotency=transport.idempotency_store(), a KV bucket) and costs
        # two broker round trips per event.
        if dead_letters is None:
            make_dlq = getattr(transport, "dead_letter_store", None)
            dead_letters = make_dlq() if callable(make_dlq) else MemoryDeadLetterStore()
        self.dead_letters = DeadLetters(dead_letters, self._publish)
        self.idempotency = idempotency or MemoryIdempotencyStore()
        if max_pending == -1:
            max_pending = None if transport.features.durable else 10_000
        if max_pending is not None and max_pending < 1:
            raise ConfigurationError("max_pending must be >= 1 or None")
        self.max_pending = max_pending
        self._pending = Pending(max_pending, on_full=on_full, timeout=submit_timeout)
        self.drain_timeout = drain_timeout
        self.ack_wait = ack_wait
        self.router: Router[Binding] = Router()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crosswire-sync")
        self._history: dict[tuple[str, str], list[AttemptRecord]] = {}
        self._in_flight: set[Delivery] = set()
        self._pools: list[Any] = []
        self._hub: Any = None
        self._lease_task: asyncio.Task[None] | None = None
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
        self.app._frozen = True
        self.lifecycle.to(State.INITIALIZING)
        try:
            await self.transport.start()
            for hook in self.app.init_hooks:
                await hook()
            for config in self.app.handlers:
                fn_handler = function_handler(config.fn, executor=self._executor)
                self._add_binding(config.name, config.pattern, fn_handler, config.policies, "python")
            self.lifecycle.to(State.WARMING)
            await self._start_workers()
            for hook in self.app.warmup_hooks:
                await hook()
            for binding in self.router.bindings:
                await self._consume(binding)
            self._lease_task = asyncio.create_task(self._keep_leases(), name="crosswire-leases")
            self.lifecycle.to(State.READY)
        except BaseException as exc:
            self.lifecycle.fail(f"{type(exc).__name__}: {exc}")
            await self._shutdown(force=True)
            raise

    def _add_binding(self, name: str, pattern: str, handler: Handler, policies: Policies, runtime: str) -> Binding:
        binding = Binding(
            name, pattern, handler, policies, store=self.idempotency, tracing=tracing_if_configured(), runtime=runtime
        )
        self.router.add(binding)
        binding.lifecycle.to(State.INITIALIZING)
        return binding

    async def _start_workers(self) -> None:
        if not self.app.workers:
            return
        from ._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec

        self._hub = WorkerHub(node_name=self.app.name)
        await self._hub.start()
        for config in self.app.workers:
            spec = WorkerSpec(
                name=config.name,
                command=config.command,
                env=dict(config.env),
                cwd=config.cwd,
                options=WorkerOptions.parse(config.options),
            )
            pool = WorkerPool(spec, self._hub)
            self._pools.append(pool)
            types = await pool.start()
            for event_type in types:
                self._add_binding(
                    f"{config.name}:{event_type}",
                    event_type,
                    pool.handle,
                    config.policies,
                    getattr(pool, "runtime", "worker"),
                )

    async def _consume(self, binding: Binding) -> None:
        binding.lifecycle.to(State.WARMING)
        prefetch = max(binding.policies.queue_size, binding.policies.concurrency)
        binding.subscription = await self.transport.subscribe(
            binding.pattern, self._group(binding), prefetch=prefetch, ack_wait=self.ack_wait
        )
        dispatcher: Dispatcher[Delivery] = Dispatcher(
            lambda d, b=binding: self._process(b, d),  # type: ignore[misc]
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
        binding.consumer = asyncio.create_task(self._pump(binding), name=f"crosswire-consume-{binding.name}")
        binding.lifecycle.to(State.READY)

    def _group(self, binding: Binding) -> str:
        return f"{self.app.name}.{binding.name}"

    async def _pump(self, binding: Binding) -> None:
        assert binding.subscription is not None and binding.dispatcher is not None
        async for delivery in binding.subscription:
            await binding.dispatcher.put(delivery)

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
            if binding.consumer is not None:
                binding.consumer.cancel()
        await asyncio.gather(*(b.consumer for b in bindings if b.consumer), return_exceptions=True)
        before = sum(b.dispatcher.processed for b in bindings if b.dispatcher)
        while any(b.dispatcher and (b.dispatcher.depth or b.dispatcher.running) for b in bindings):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        returned = 0
        missed = False
        for binding in bindings:
            if binding.dispatcher is None:
                continue
            left = binding.dispatcher.drain_queued()
            if left or binding.dispatcher.running:
                missed = True
            for delivery in left:
                await _give_back(delivery)
                returned += 1
            returned += binding.dispatcher.running  # cancelled below; _process hands them back
            await binding.dispatcher.stop()
        finished = sum(b.dispatcher.processed for b in bindings if b.dispatcher) - before
        for pool in self._pools:
            remaining = max(0.1, deadline - time.monotonic())
            with contextlib.suppress(Exception):
                if not await pool.drain(remaining):
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
        if self.lifecycle.state not in (State.STOPPED,):
            await self.drain()

    async def _shutdown(self, *, force: bool) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
        for binding in self.router.bindings:
            if binding.consumer is not None and not binding.consumer.done():
                binding.consumer.cancel()
                await asyncio.gather(binding.consumer, return_exceptions=True)
            if force and binding.dispatcher is not None:
                for delivery in binding.dispatcher.drain_queued():
                    await _give_back(delivery)
                await binding.dispatcher.stop()
            if binding.subscription is not None:
                with contextlib.suppress(Exception):
                    await binding.subscription.close()
            if binding.lifecycle.state is not State.STOPPED:
                binding.lifecycle.state = State.STOPPED
        for pool in self._pools:
            with contextlib.suppress(Exception):
                await pool.close()
        if self._hub is not None:
            with contextlib.suppress(Exception):
                await self._hub.close()
        for hook in self.app.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("on_shutdown hook failed")
        with contextlib.suppress(Exception):
            await self.transport.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.lifecycle.state is not State.STOPPED:
            self.lifecycle.to(State.STOPPED) if self.lifecycle.state in (
                State.DRAINING,
                State.FAILED,
                State.REGISTERED,
            ) else None
            self.lifecycle.state = State.STOPPED

    # -- submit ----------------------------------------------------------------------

    async def submit(
        self,
        type: str,
        payload: Any = None,
        *,
        key: str | None = None,
        id: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        deadline: float | None = None,
        subject: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Event[Any]:
        """Build an event and hand it to the transport; returns it once accepted.

        ``payload``: ``bytes`` are sent as they are; ``str`` as UTF-8 text; anything
        else msgspec can encode (Structs, dataclasses, dicts, lists) as MessagePack.
        ``deadline``: seconds from now within which the event must be handled.

        :raises BackpressureError: the node stayed full (see ``max_pending``).
        :raises ClosedError: the node is not running.
        :raises TransportError: the transport did not accept the event.
        :raises ValueError: invalid type or attributes.
        """
        data, content_type = _encode_payload(payload)
        event = Event.new(
            type,
            data,
            source=self.app.source,
            id=id,
            subject=subject,
            datacontenttype=content_type,
            key=key,
            correlationid=correlation_id,
            idempotencykey=idempotency_key,
            extensions=extensions,
        )
        if deadline is not None:
            event.deadline = int((time.time() + deadline) * 1000)
        await self.submit_events([event])
        return event

    async def submit_events(self, events: Sequence[Event[Any]]) -> None:
        """Hand prebuilt events to the transport (one batch), with backpressure."""
        if self.lifecycle.state is not State.READY:
            raise ClosedError(f"node {self.app.name!r} is {self.lifecycle.state.value}, not ready")
        pairs: list[tuple[str, str]] = []
        for event in events:
            bindings = self.router.route(event.type)
            if not bindings and not self.transport.features.durable:
                raise ConfigurationError(
                    f"no handler for event type {event.type!r}: on a non-durable transport it would be lost"
                )
            pairs.extend((event.id, b.name) for b in bindings)
        if self._pending.full(len(pairs)):
            await self._pending.reserve(len(pairs))
        await self._publish_tracked(events, pairs)
        self.submitted += len(events)

    async def _publish(self, events: Sequence[Event[Any]]) -> None:
        """Internal publish (emitted follow-ups, replays): tracked, never blocked by
        ``max_pending`` — a handler waiting on capacity only it can free would deadlock."""
        await self._publish_tracked(events, [(e.id, b.name) for e in events for b in self.router.route(e.type)])

    async def _publish_tracked(self, events: Sequence[Event[Any]], pairs: list[tuple[str, str]]) -> None:
        """Publish, counting ``pairs`` as pending from before the transport accepts them."""
        self._pending.add(pairs)
        try:
            await self.transport.publish(events)
        except BaseException:
            self._pending.remove(pairs)
            raise

    def _settled(self, event_id: str, binding: str) -> None:
        self._pending.discard((event_id, binding))
        self._history.pop((event_id, binding), None)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every event submitted through this node reached a terminal state
        in every binding of this node (handled or dead-lettered).

        :raises TimeoutError: after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._pending.wait_empty()

    # -- process and settle ------------------------------------------------------------

    async def _process(self, binding: Binding, delivery: Delivery) -> None:
        self._in_flight.add(delivery)
        try:
            await self._process_one(binding, delivery)
        except asyncio.CancelledError:
            await _give_back(delivery)
            raise
        finally:
            self._in_flight.discard(delivery)

    async def _process_one(self, binding: Binding, delivery: Delivery) -> None:
        event = delivery.event
        if event is None:
            error = ErrorInfo.of(
                ErrorCode.INVALID_ARGUMENT, f"event bytes do not decode: {delivery.decode_error}", runtime="node"
            )
            await self._dead_letter(binding, delivery, None, error, delivery.attempt)
            return
        target = event.extensions.get(REPLAY_TARGET)
        if target is not None and target != binding.name:
            await delivery.ack()  # a replay aimed at another binding
            self._settled(event.id, binding.name)
            return
        number = delivery.attempt
        policy = binding.policies.retry
        if number > policy.max_attempts:
            # redelivered after a consumer was lost mid-attempt: the budget is spent
            error = ErrorInfo.of(
                ErrorCode.WORKER_LOST if binding.runtime != "python" else ErrorCode.CANCELLED,
                f"delivery attempt {number} exceeds max_attempts={policy.max_attempts} "
                "(earlier attempts were lost with their consumer)",
                runtime="node",
            )
            await self._dead_letter(binding, delivery, event, error, number)
            return
        event.attempt = number  # the delivery owns its event (Transport contract)
        attempt = Attempt(event=event, binding=binding.name, number=number)
        t0 = time.perf_counter()
        try:
            outcome = await binding.chain(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug; the event is not lost for it
            log.exception("binding %s: handler chain raised", binding.name)
            outcome = Outcome(error=ErrorInfo.of(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", runtime="node"))
        binding.record_latency(time.perf_counter() - t0)
        if outcome.error is None:
            if outcome.emitted:
                try:
                    await self._publish([follow_up(event, e, self.app.source) for e in outcome.emitted])
                except (TransportError, ClosedError, OSError) as exc:
                    outcome = Outcome(
                        error=ErrorInfo.of(
                            ErrorCode.UNAVAILABLE, f"emitted events were not accepted: {exc}", runtime="node"
                        )
                    )
            if outcome.error is None:
                await delivery.ack()
                binding.handled += 1
                self._settled(event.id, binding.name)
                return
        error = outcome.error
        binding.failed_attempts += 1
        history = self._history.setdefault((event.id, binding.name), [])
        history.append(AttemptRecord(number=number, at=time.time(), error=error))
        delay = policy.next_delay(number, error)
        if delay is not None:
            await delivery.retry(delay)
            binding.retried += 1
            return
        await self._dead_letter(binding, delivery, event, error, number)

    async def _dead_letter(
        self, binding: Binding, delivery: Delivery, event: Event[Any] | None, error: ErrorInfo, number: int
    ) -> None:
        event_id = event.id if event is not None else f"raw-{os.urandom(8).hex()}"
        original = str(event.extensions.get(REPLAY_OF, event.id)) if event is not None else event_id
        letter_id = dead_letter_id(binding.name, original)
        history = self._history.get((event_id, binding.name)) or [
            AttemptRecord(number=number, at=time.time(), error=error)
        ]
        try:
            previous = await self.dead_letters.store.get(letter_id)
            await self.dead_letters.store.put(
                DeadLetter(
                    id=letter_id,
                    binding=binding.name,
                    event=event,
                    raw=delivery.raw if event is None else None,
                    error=error,
                    attempts=list(history),
                    replays=list(previous.replays) if previous else [],
                )
            )
        except Exception:
            # not stored ⇒ not terminated: hand it back and try again later
            log.exception("binding %s: dead-letter store failed; event %s handed back", binding.name, event_id)
            await delivery.retry(1.0)
            return
        await delivery.terminate()
        binding.dead_lettered += 1
        log.warning(
            "binding %s: event %s dead-lettered after %d attempt(s): %s: %s",
            binding.name,
            event_id,
            number,
            error.code.value,
            error.message,
            extra={
                "event_id": event_id,
                "binding": binding.name,
                "correlation_id": event.correlationid if event is not None else None,
            },
        )
        if event is not None:
            self._settled(event.id, binding.name)

    async def _keep_leases(self) -> None:
        """Tell the transport we are still working on long deliveries."""
        interval = max(0.5, self.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            for delivery in list(self._in_flight):
                with contextlib.suppress(Exception):
                    await delivery.in_progress()

    # -- inspection --------------------------------------------------------------------

    @property
    def bindings(self) -> tuple[Binding, ...]:
        return self.router.bindings

    @property
    def ready(self) -> bool:
        """True when the node and every binding are ready."""
        return self.lifecycle.ready and all(b.lifecycle.ready for b in self.router.bindings)

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "node": self.app.name,
            "state": self.lifecycle.state.value,
            "submitted": self.submitted,
            "pending": len(self._pending),
            "in_flight": len(self._in_flight),
            "bindings": {b.name: b.statistics() for b in self.router.bindings},
        }
        if self._pools:
            stats["workers"] = {getattr(p, "name", str(i)): p.statistics() for i, p in enumerate(self._pools)}
        transport_stats = getattr(self.transport, "statistics", None)
        if callable(transport_stats):
            stats["transport"] = transport_stats()
        return stats


def _delivery_key(delivery: Delivery) -> str | None:
    event = delivery.event
    return event.partitionkey if event is not None else None


async def _give_back(delivery: Delivery) -> None:
    """Return an unfinished delivery to the transport for redelivery (never ack it)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(delivery.retry(0.0))


_msgpack = msgspec.msgpack.Encoder()


def _encode_payload(payload: Any) -> tuple[bytes | None, str | None]:
    if payload is None:
        return None, None
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload), "application/octet-stream"
    if isinstance(payload, str):
        return payload.encode(), "text/plain; charset=utf-8"
    try:
        return _msgpack.encode(payload), "application/msgpack"
    except TypeError as exc:
        raise ValueError(f"payload of type {type(payload).__name__} cannot be encoded: {exc}") from None
