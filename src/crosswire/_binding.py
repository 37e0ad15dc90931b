"""A running binding: one handler (function or worker type) with its policies,
its transport subscription and its dispatcher."""

from __future__ import annotations

import asyncio
import bisect
from typing import Any

from ._app import Policies
from ._policies.breaker import CircuitBreaker
from ._policies.dedup import Dedup, IdempotencyStore
from ._dispatcher import Dispatcher
from ._lifecycle import Lifecycle
from ._metrics import LATENCY_BUCKETS
from ._policies.timeout import Timeout
from ._policies.tracing import Tracing
from ._transports.base import Delivery, Subscription
from ._types import Handler

__all__ = ["Binding", "build_chain"]


def build_chain(
    handler: Handler,
    policies: Policies,
    *,
    breaker: CircuitBreaker | None,
    dedup: Dedup | None,
    tracing: Tracing | None,
) -> Handler:
    """Wrap ``handler`` in the policies, in the one documented order:
    trace ► dedup ► breaker ► timeout ► handler."""
    chain = handler
    if policies.timeout is not None:
        chain = Timeout(policies.timeout)(chain)
    if breaker is not None:
        chain = breaker(chain)
    if dedup is not None:
        chain = dedup(chain)
    if tracing is not None:
        chain = tracing(chain)
    return chain


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
        self.breaker = policies.breaker.build() if policies.breaker is not None else None
        self.dedup = (
            Dedup(store, lease=max(60.0, 2 * (policies.timeout or 30.0)))
            if (policies.dedup and store is not None)
            else None
        )
        self.chain = build_chain(handler, policies, breaker=self.breaker, dedup=self.dedup, tracing=tracing)
        self.dispatcher: Dispatcher[Delivery] | None = None
        self.subscription: Subscription | None = None
        self.consumer: asyncio.Task[None] | None = None
        self.handled = 0
        self.failed_attempts = 0
        self.retried = 0
        self.dead_lettered = 0
        self.skipped = 0
        self.latencies: list[float] = []  # recent handler latencies (s), bounded
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0

    def record_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)
        if len(self.latencies) > 4096:
            del self.latencies[:2048]
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def latency_histogram(self) -> tuple[list[int], float]:
        """Per-bucket counts (the last is above every bound) and the sum, in seconds."""
        return list(self._buckets), self._latency_sum

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "pattern": self.pattern,
            "runtime": self.runtime,
            "state": self.lifecycle.state.value,
            "handled": self.handled,
            "failed_attempts": self.failed_attempts,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "deduplicated": self.dedup.skipped if self.dedup else 0,
        }
        if self.dispatcher is not None:
            stats["queue"] = self.dispatcher.statistics()
        if self.breaker is not None:
            stats["breaker"] = self.breaker.statistics()
        return stats
