"""Prometheus metrics reflect what the node did."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import crosswire
from crosswire import App, Event, Node, Reject, Retry


def samples(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(crosswire.metrics_registry(node)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_outcomes_retries_and_latency() -> None:
    app = App("metrics")

    @app.handler("m.x", retry=Retry(max_attempts=2, initial=0.001))
    async def h(event: Event[Any]) -> None:
        if event.data == b"bad":
            raise Reject("no")
        if event.data == b"flaky" and event.attempt == 1:
            raise RuntimeError("once")

    async with Node(app) as node:
        for data in (b"ok", b"ok", b"flaky", b"bad"):
            await node.submit("m.x", data)
        await node.wait_idle(5)
        got = samples(node)
    labels = (("binding", "h"), ("node", "metrics"), ("runtime", "python"))
    assert got[("crosswire_submitted_total", (("node", "metrics"),))] == 4
    assert got[("crosswire_handled_total", (*labels[:2], ("outcome", "ok"), labels[2]))] == 3
    assert got[("crosswire_handled_total", (*labels[:2], ("outcome", "dead_letter"), labels[2]))] == 1
    assert got[("crosswire_retries_total", labels)] == 1
    assert got[("crosswire_failed_attempts_total", labels)] == 2
    assert got[("crosswire_handler_latency_seconds_count", labels)] == 5
    assert got[("crosswire_breaker_state", labels)] == 0
