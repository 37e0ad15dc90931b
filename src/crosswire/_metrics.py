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

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._binding import LATENCY_BUCKETS
from ._policies.breaker import BreakerState

if TYPE_CHECKING:
    from ._node import Node

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
            counts, total = binding.latency_histogram()
            cumulative = 0
            buckets = []
            for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", sum(counts)))
            latency.add_metric(values, buckets, sum_value=total)
        yield from (handled, retries, failed, dedup, depth, running, breaker, latency)

        workers = stats.workers
        if workers:
            wlabels = ["node", "worker"]
            restarts = CounterMetricFamily("crosswire_worker_restarts", "Worker process restarts", labels=wlabels)
            lost = CounterMetricFamily(
                "crosswire_worker_lost", "Deliveries lost with a worker (retried)", labels=wlabels
            )
            credit = GaugeMetricFamily("crosswire_worker_in_flight", "Deliveries out to a worker", labels=wlabels)
            for worker_name, w in workers.items():
                restarts.add_metric([name[0], worker_name], w.restarts)
                lost.add_metric([name[0], worker_name], w.lost)
                credit.add_metric([name[0], worker_name], w.in_flight)
            yield from (restarts, lost, credit)


def metrics_registry(node: Node) -> CollectorRegistry:
    """A registry holding only this node's metrics (safe with many nodes per process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    return registry
