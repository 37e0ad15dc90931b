"""Leases of deliveries that wait in the node (queued in a binding's dispatcher, or
behind an earlier event of their key) are renewed like those being handled: a
backlog behind slow handlers is not redelivered, run twice, or charged attempts."""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

import crosswire
from crosswire import App, Event, Node


class Job(msgspec.Struct):
    n: int


def _app(runs: Counter[int], attempts: list[int], *, keyed: bool) -> App:
    app = App("leases")

    @app.handler("job.run", concurrency=1 if not keyed else 4, retry=crosswire.Retry(max_attempts=3))
    async def run(event: Event[Job]) -> None:
        runs[event.payload.n] += 1
        attempts.append(event.attempt)
        await asyncio.sleep(0.1)

    return app


@pytest.mark.parametrize("keyed", [False, True], ids=["queued", "behind-key"])
@pytest.mark.timeout(60)
async def test_a_backlog_longer_than_ack_wait_runs_each_event_once_memory(keyed: bool) -> None:
    runs: Counter[int] = Counter()
    attempts: list[int] = []
    # 20 events of 0.1 s each, one at a time: the last waits ~2 s, four times ack_wait
    async with Node(_app(runs, attempts, keyed=keyed), ack_wait=0.5) as node:
        for n in range(20):
            await node.submit("job.run", Job(n), key="one" if keyed else None)
        await node.wait_idle(30)
        stats = node.statistics().bindings["run"]
    assert dict(runs) == {n: 1 for n in range(20)}
    assert set(attempts) == {1}
    assert stats.handled == 20 and stats.retried == 0 and stats.deduplicated == 0  # no redelivery
