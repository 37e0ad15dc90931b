"""A running binding: one handler (function or worker type) with its policy chain,
its transport subscription, its dispatcher and its counters."""

from __future__ import annotations

import asyncio
import bisect

import msgspec

from ._dispatcher import Dispatcher, QueueStatistics
from ._lifecycle import Lifecycle, State
from ._policies.breaker import BreakerStatistics, CircuitBreaker
from ._policies.chain import Policies, build_chain
from ._policies.dedup import Deduplicating, IdempotencyStore
from ._policies.tracing import Tracing
from ._transports.base import Delivery, Subscription
from ._types import Handler

__all__ = ["LATENCY_BUCKETS", "Binding", "BindingStatistics"]

#: Upper bounds (seconds) of the handler latency histogram buckets.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BindingStatistics(msgspec.Struct, frozen=True, kw_only=True):
    pattern: str
    runtime: str
    state: State
    handled: int
    """Deliveries acknowledged after a successful attempt (dedup skips included)."""
    failed_attempts: int
    retried: int
    dead_lettered: int
    deduplicated: int
    """Deliveries acknowledged without running: their key was already done."""
    queue: QueueStatistics | None = None
    breaker: BreakerStatistics | None = None


class Binding:
    """Counters are plain ints: one event loop owns a binding."""

    def __init__(
        self,
        name: str,
        pattern: str,
        handler: Handler,
        policies: Policies,
        *,
        store: IdempotencyStore | None,
        tracing: Tracing | None,
        runtime: str,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.policies = policies
        self.runtime = runtime
        self.lifecycle = Lifecycle(f"binding {name}")
        self.chain, built = build_chain(handler, policies, store=store, tracing=tracing)
        self.breaker = next((b for b in built if isinstance(b, CircuitBreaker)), None)
        self.dedup = next((b for b in built if isinstance(b, Deduplicating)), None)
        self.dispatcher: Dispatcher[Delivery] | None = None
        self.subscription: Subscription | None = None
        self.consumer: asyncio.Task[None] | None = None
        self.handled = 0
        self.failed_attempts = 0
        self.retried = 0
        self.dead_lettered = 0
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0

    def record_latency(self, seconds: float) -> None:
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def latency_histogram(self) -> tuple[list[int], float]:
        """Per-bucket counts (the last is above every bound) and the sum, in seconds."""
        return list(self._buckets), self._latency_sum

    def latency_quantile(self, q: float) -> float:
        """The ``q`` quantile of handler latency in seconds, interpolated within its
        histogram bucket as Prometheus' ``histogram_quantile`` does (0.0 before any attempt)."""
        total = sum(self._buckets)
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, count in enumerate(self._buckets):
            if count and seen + count >= rank:
                lower = LATENCY_BUCKETS[i - 1] if i > 0 else 0.0
                upper = LATENCY_BUCKETS[i] if i < len(LATENCY_BUCKETS) else LATENCY_BUCKETS[-1]
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return LATENCY_BUCKETS[-1]

    def statistics(self) -> BindingStatistics:
        return BindingStatistics(
            pattern=self.pattern,
            runtime=self.runtime,
            state=self.lifecycle.state,
            handled=self.handled,
            failed_attempts=self.failed_attempts,
            retried=self.retried,
            dead_lettered=self.dead_lettered,
            deduplicated=self.dedup.skipped if self.dedup else 0,
            queue=self.dispatcher.statistics() if self.dispatcher is not None else None,
            breaker=self.breaker.statistics() if self.breaker is not None else None,
        )
