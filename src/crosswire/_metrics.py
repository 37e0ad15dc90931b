"""Prometheus metrics for a node, read at scrape time.

Counters the node already keeps (handled, retries, dead letters, ...) and gauges
(queue depth, in flight, breaker state, worker restarts) are collected from
``node.statistics()`` when Prometheus scrapes, so the hot path pays nothing for
them; handler latency goes into fixed histogram buckets as attempts finish.

::

    registry = crosswire.metrics_registry(node)        # a prometheus_client registry
    prometheus_client.start_http_server(9464, registry=registry)

``crosswire run --metrics-port 9464`` does exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._binding import LATENCY_BUCKETS
from ._policies.breaker import BreakerState

if TYPE_CHECKING:
    from ._node import Node
    from ._workers.spec import WorkerStatistics

__all__ = ["NodeCollector", "metrics_registry"]

_BREAKER = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class NodeCollector(Collector):
    """Turns one node's statistics into Prometheus metric families (read by field:
    a renamed statistic fails type checking and the metrics test, never reads 0)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        stats = node.statistics()
        labels = ["node"]
        name = [node.app.name]
        submitted = CounterMetricFamily("crosswire_submitted", "Events submitted through this node", labels=labels)
        submitted.add_metric(name, stats.submitted)
        pending = GaugeMetricFamily("crosswire_pending", "Submitted events not yet settled", labels=labels)
        pending.add_metric(name, stats.pending)
        in_flight = GaugeMetricFamily("crosswire_in_flight", "Deliveries being handled", labels=labels)
        in_flight.add_metric(name, stats.in_flight)
        yield from (submitted, pending, in_flight)

        blabels = ["node", "binding", "runtime"]
        handled = CounterMetricFamily(
            "crosswire_handled", "Deliveries settled, by outcome", labels=[*blabels, "outcome"]
        )
        retries = CounterMetricFamily("crosswire_retries", "Attempts handed back for a retry", labels=blabels)
        failed = CounterMetricFamily("crosswire_failed_attempts", "Attempts that ended in an error", labels=blabels)
        dedup = CounterMetricFamily(
            "crosswire_deduplicated", "Deliveries acked without running (dedup)", labels=blabels
        )
        depth = GaugeMetricFamily("crosswire_queue_depth", "Deliveries queued, not yet running", labels=blabels)
        running = GaugeMetricFamily("crosswire_running", "Deliveries running now", labels=blabels)
        breaker = GaugeMetricFamily("crosswire_breaker_state", "0 closed, 1 half-open, 2 open", labels=blabels)
        latency = HistogramMetricFamily("crosswire_handler_latency_seconds", "Time in the policy chain", labels=blabels)
        for binding in node.bindings:
            b = stats.bindings[binding.name]
            values = [name[0], binding.name, binding.runtime]
            handled.add_metric([*values, "ok"], b.handled)
            handled.add_metric([*values, "dead_letter"], b.dead_lettered)
            retries.add_metric(values, b.retried)
            failed.add_metric(values, b.failed_attempts)
            dedup.add_metric(values, b.deduplicated)
            if b.queue is not None:
                depth.add_metric(values, b.queue.queued)
                running.add_metric(values, b.queue.running)
            if b.breaker is not None:
                breaker.add_metric(values, _BREAKER[b.breaker.state])
            buckets, total = _histogram(*binding.latency_histogram())
            latency.add_metric(values, buckets, sum_value=total)
        yield from (handled, retries, failed, dedup, depth, running, breaker, latency)

        yield from _worker_metrics(node, name[0], stats.workers)


def _histogram(counts: list[int], total: float) -> tuple[list[tuple[str, float]], float]:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", sum(counts)))
    return buckets, total


def _worker_metrics(node: Node, node_name: str, workers: dict[str, WorkerStatistics]) -> Iterator[Metric]:
    """Per worker: restarts, deliveries lost with it, credit, heartbeat age and the
    handler latency its results report."""
    if not workers:
        return
    wlabels = ["node", "worker"]
    restarts = CounterMetricFamily("crosswire_worker_restarts", "Worker process restarts", labels=wlabels)
    lost = CounterMetricFamily("crosswire_worker_lost", "Deliveries lost with a worker (retried)", labels=wlabels)
    hung = CounterMetricFamily("crosswire_worker_hung", "Sessions ended because the worker hung", labels=wlabels)
    credit = GaugeMetricFamily(
        "crosswire_worker_in_flight", "Deliveries out to a worker (credit in use)", labels=wlabels
    )
    max_credit = GaugeMetricFamily(
        "crosswire_worker_max_in_flight", "The worker's credit (max_in_flight)", labels=wlabels
    )
    waiting = GaugeMetricFamily("crosswire_worker_waiting", "Attempts waiting for the worker's credit", labels=wlabels)
    up = GaugeMetricFamily("crosswire_worker_up", "1 when the worker is ready", labels=wlabels)
    age = GaugeMetricFamily(
        "crosswire_worker_heartbeat_age_seconds", "Seconds since the node last heard from the worker", labels=wlabels
    )
    latency = HistogramMetricFamily(
        "crosswire_worker_handler_latency_seconds", "Handler time reported in the worker's results", labels=wlabels
    )
    pools = {getattr(p, "name", None): p for p in getattr(node, "_pools", ())}
    now = time.monotonic()
    for worker_name, w in workers.items():
        values = [node_name, worker_name]
        restarts.add_metric(values, w.restarts)
        lost.add_metric(values, w.lost)
        hung.add_metric(values, w.hung)
        credit.add_metric(values, w.in_flight)
        max_credit.add_metric(values, w.max_in_flight)
        waiting.add_metric(values, w.waiting)
        up.add_metric(values, 1 if w.state == "ready" else 0)
        pool = pools.get(worker_name)
        session = getattr(pool, "_session", None)
        last = getattr(getattr(session, "conn", None), "last_received", None)
        if isinstance(last, float):
            age.add_metric(values, max(0.0, now - last))
        recorded = getattr(getattr(pool, "_counters", None), "latency", None)
        if recorded is not None:
            buckets, total = _histogram(list(recorded.buckets), recorded.total)
            latency.add_metric(values, buckets, sum_value=total)
    yield from (restarts, lost, hung, credit, max_credit, waiting, up, age, latency)


def metrics_registry(node: Node) -> CollectorRegistry:
    """A registry holding only this node's metrics (safe with many nodes per process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    return registry
