"""A backlog in the node longer than ack_wait, on JetStream: the leases of deliveries
queued in the dispatcher are renewed, so none is redelivered and run twice."""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

import crosswire
from crosswire import App, Event, Node
from crosswire.jetstream import JetStreamTransport


class Job(msgspec.Struct):
    n: int


def _app(runs: Counter[int], attempts: list[int]) -> App:
    app = App("leases")

    @app.handler("job.run", concurrency=1, retry=crosswire.Retry(max_attempts=3))
    async def run(event: Event[Job]) -> None:
        runs[event.payload.n] += 1
        attempts.append(event.attempt)
        await asyncio.sleep(0.1)

    return app


@pytest.mark.nats
@pytest.mark.timeout(90)
async def test_a_backlog_longer_than_ack_wait_runs_each_event_once_jetstream(nats_url: str) -> None:
    runs: Counter[int] = Counter()
    attempts: list[int] = []
    transport = JetStreamTransport(nats_url, stream="LEASES", subject_prefix="leases")
    async with Node(_app(runs, attempts), transport=transport, ack_wait=1.0) as node:
        await node.submit_events([Event.new("job.run", Job(n), source="t") for n in range(30)])
        await node.wait_idle(60)
        stats = node.statistics().bindings["run"]
        await transport.jetstream.delete_stream("LEASES")
    assert dict(runs) == {n: 1 for n in range(30)}
    assert set(attempts) == {1}
    assert stats.handled == 30 and stats.deduplicated == 0  # no redelivery
