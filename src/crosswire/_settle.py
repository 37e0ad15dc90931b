"""Run one delivery and settle it: ack | retry(after) | dead-letter.

The dispatcher calls :meth:`Settler.process` for every delivery of a binding. It
builds the attempt, runs the binding's policy chain, and executes the decision the
retry layer wrote into the outcome.

Settlement rules ("nothing lost"):

- a delivery is acknowledged only after its handler returned success and its emitted
  events were accepted by the transport;
- a failed attempt is either handed back for a later attempt (``retry(after)``) or
  stored as a dead letter *before* it is terminated; a dead-letter store that fails
  means the delivery is handed back, never terminated;
- a delivery that is cancelled (a drain deadline passed, the node stops) is handed
  back unacknowledged;
- a replay aimed at another binding is acknowledged without running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ._binding import Binding
from ._deadletter import AttemptRecord, DeadLetter, DeadLetterStore, dead_letter_id
from ._envelope import Event, follow_up
from ._errorinfo import ErrorCode, ErrorInfo
from ._exceptions import ClosedError, TransportError
from ._policies.retry import decided
from ._replay import REPLAY_OF, REPLAY_TARGET
from ._transports.base import Delivery
from ._types import Attempt, Outcome

__all__ = ["Settler", "give_back", "hand_back", "record_failure", "with_earlier_attempts"]

log = logging.getLogger("crosswire.node")

Publish = Callable[[Sequence[Event[Any]]], Awaitable[None]]


class Settler:
    """Processes and settles deliveries for every binding of one node.

    :param publish: submits emitted follow-up events (tracked, never blocked).
    :param settled: called with (event id, binding name) once an event reached a
        terminal state in a binding.
    """

    def __init__(self, store: DeadLetterStore, publish: Publish, settled: Callable[[str, str], None], source: str):
        self.store = store
        self._publish = publish
        self._settled = settled
        self._source = source
        self._history: dict[tuple[str, str], list[AttemptRecord]] = {}
        self.in_flight: set[Delivery] = set()

    async def process(self, binding: Binding, delivery: Delivery) -> None:
        """Run and settle ``delivery``; never raises except ``CancelledError`` (after
        handing the delivery back)."""
        self.in_flight.add(delivery)
        try:
            event = delivery.event
            number = delivery.attempt
            if (
                event is None
                or (event.extensions and event.extensions.get(REPLAY_TARGET) not in (None, binding.name))
                or number > binding.policies.retry.max_attempts
            ):
                await self._settle_unrun(binding, delivery, event, number)
                return
            event.attempt = number  # the delivery owns its event (Transport contract)
            t0 = time.perf_counter()
            try:
                outcome = await binding.chain(Attempt(event=event, binding=binding.name, number=number))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an adapter bug; the event is not lost for it
                log.exception("binding %s: handler chain raised", binding.name)
                error = ErrorInfo.of(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", runtime="node")
                outcome = decided(binding.policies.retry, number, Outcome(error=error))
            binding.record_latency(time.perf_counter() - t0)
            if outcome.error is None and outcome.emitted:
                outcome = await self._emit(binding, event, outcome, number)
            if outcome.error is None:
                await delivery.ack()
                binding.handled += 1
                self.forget(event.id, binding.name)
            else:
                await self._failed(binding, delivery, event, outcome, number)
        except asyncio.CancelledError:
            await give_back(delivery)
            raise
        finally:
            self.in_flight.discard(delivery)

    def forget(self, event_id: str, binding: str) -> None:
        self._history.pop((event_id, binding), None)
        self._settled(event_id, binding)

    async def _settle_unrun(self, binding: Binding, delivery: Delivery, event: Event[Any] | None, number: int) -> None:
        """A delivery that does not reach the handler: undecodable, a replay aimed at
        another binding, or an attempt past the budget."""
        if event is None:
            error = ErrorInfo.of(
                ErrorCode.INVALID_ARGUMENT, f"event bytes do not decode: {delivery.decode_error}", runtime="node"
            )
            await self._dead_letter(binding, delivery, None, error, number)
            return
        if event.extensions.get(REPLAY_TARGET) not in (None, binding.name):
            await delivery.ack()  # a replay aimed at another binding
            self.forget(event.id, binding.name)
            return
        # redelivered after a consumer was lost mid-attempt: the budget is spent
        max_attempts = binding.policies.retry.max_attempts
        error = ErrorInfo.of(
            ErrorCode.WORKER_LOST if binding.runtime != "python" else ErrorCode.CANCELLED,
            f"delivery attempt {number} exceeds max_attempts={max_attempts} "
            "(earlier attempts were lost with their consumer)",
            runtime="node",
        )
        await self._dead_letter(binding, delivery, event, error, number)

    async def _failed(
        self, binding: Binding, delivery: Delivery, event: Event[Any], outcome: Outcome, number: int
    ) -> None:
        """Execute the retry layer's decision on a failed attempt: retry or dead-letter."""
        error = outcome.error
        assert error is not None
        binding.failed_attempts += 1
        history = self._history.setdefault((event.id, binding.name), [])
        record = AttemptRecord(number=number, at=time.time(), error=error)
        history.append(record)
        if outcome.retry_delay is not None:
            await record_failure(delivery, record)
            await delivery.retry(outcome.retry_delay)
            binding.retried += 1
            return
        await self._dead_letter(binding, delivery, event, error, number)

    async def _emit(self, binding: Binding, event: Event[Any], outcome: Outcome, number: int) -> Outcome:
        """Submit the follow-ups of a successful attempt; their failure fails the attempt."""
        try:
            await self._publish([follow_up(event, e, self._source) for e in outcome.emitted])
        except (TransportError, ClosedError, OSError) as exc:
            error = ErrorInfo.of(ErrorCode.UNAVAILABLE, f"emitted events were not accepted: {exc}", runtime="node")
            return decided(binding.policies.retry, number, Outcome(error=error))
        return outcome

    async def _dead_letter(
        self, binding: Binding, delivery: Delivery, event: Event[Any] | None, error: ErrorInfo, number: int
    ) -> None:
        event_id = event.id if event is not None else f"raw-{os.urandom(8).hex()}"
        original = str(event.extensions.get(REPLAY_OF, event.id)) if event is not None else event_id
        letter_id = dead_letter_id(binding.name, original)
        history = self._history.get((event_id, binding.name)) or [
            AttemptRecord(number=number, at=time.time(), error=error)
        ]
        history = await with_earlier_attempts(delivery, history)
        try:
            previous = await self.store.get(letter_id)
            await self.store.put(
                DeadLetter(
                    id=letter_id,
                    binding=binding.name,
                    event=event,
                    raw=delivery.raw if event is None else None,
                    headers=delivery.headers if event is None else None,
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
            self.forget(event.id, binding.name)

    async def keep_leases(self, interval: float, bindings: Callable[[], Iterable[Binding]]) -> None:
        """Tell the transport, every ``interval`` seconds, that deliveries are still being
        worked on: those running (including those waiting in an open breaker) and those
        queued in the ``bindings``' dispatchers, for a handler slot or behind their key —
        a backlog longer than the lease must not be redelivered while it waits."""
        while True:
            await asyncio.sleep(interval)
            await self._renew_leases(bindings)

    async def _renew_leases(self, bindings: Callable[[], Iterable[Binding]]) -> None:
        # a function of its own: its snapshot of deliveries is dropped when it returns, not
        # kept through the next sleep (which kept every event settled meanwhile alive:
        # up to twice max_pending_bytes of event data under overload)
        queued = [d for b in bindings() if b.dispatcher is not None for d in b.dispatcher.queued()]
        for delivery in [*self.in_flight, *queued]:
            with contextlib.suppress(Exception):
                await delivery.in_progress()


async def give_back(delivery: Delivery) -> None:
    """Return an unfinished delivery to the transport for redelivery (never ack it)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(delivery.retry(0.0))


async def hand_back(delivery: Delivery) -> None:
    """Return a delivery whose handler never started (see :meth:`Delivery.hand_back`)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(delivery.hand_back())


async def record_failure(delivery: Delivery, record: AttemptRecord) -> None:
    """Let the transport keep this failed attempt for later deliveries, in any process."""
    try:
        await delivery.record_failure(record)
    except Exception:
        log.warning("a failed attempt could not be recorded with the transport", exc_info=True)


async def with_earlier_attempts(delivery: Delivery, local: list[AttemptRecord]) -> list[AttemptRecord]:
    """``local`` plus the attempts earlier deliveries recorded with the transport
    (other processes' too), by attempt number."""
    try:
        earlier = list(await delivery.history())
    except Exception:
        log.warning("earlier attempts of a delivery could not be read", exc_info=True)
        return local
    numbers = {r.number for r in earlier}
    return sorted([*earlier, *(r for r in local if r.number not in numbers)], key=lambda r: r.number)
