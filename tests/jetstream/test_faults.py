"""Broker faults: the server restarts under load and nothing accepted is lost."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from crosswire import Event, TransportError
from crosswire.jetstream import EmbeddedServer, JetStreamTransport
from crosswire.testing import eventually

pytestmark = pytest.mark.nats

PUBLISHERS = 100
PER_PUBLISHER = 100
BATCH = 10


async def test_server_restarted_twice_mid_run_loses_nothing(data_dir: Path) -> None:
    server = EmbeddedServer(data_dir)
    await server.start()
    producer = JetStreamTransport(server.url, publish_timeout=2.0)
    consumer = JetStreamTransport(server.url, publish_timeout=2.0)
    await producer.start()
    await consumer.start()
    accepted: set[str] = set()
    consumed: list[str] = []
    retries = 0
    total = PUBLISHERS * PER_PUBLISHER

    async def publisher(n: int) -> None:
        nonlocal retries
        events = [Event.new("load.item", f"{n}-{i}".encode()) for i in range(PER_PUBLISHER)]
        for start in range(0, PER_PUBLISHER, BATCH):
            batch = events[start : start + BATCH]
            while True:
                try:
                    await producer.publish(batch)
                    break
                except TransportError:
                    retries += 1  # same events, same ids: the broker keeps one copy
                    await asyncio.sleep(0.2)
            accepted.update(e.id for e in batch)
            await asyncio.sleep(0.01)

    async def consume() -> None:
        sub = await consumer.subscribe("load.*", "loaders", prefetch=256, ack_wait=2.0)
        async for d in sub:
            assert d.event is not None
            consumed.append(d.event.id)
            # an ack lost in a restart: redelivered after ack_wait, deduplicated below
            with contextlib.suppress(TransportError):
                await d.ack()

    consuming = asyncio.create_task(consume())
    publishing = asyncio.gather(*(publisher(n) for n in range(PUBLISHERS)))
    restarts = 0
    try:
        for threshold in (total // 4, total // 2):
            await eventually(lambda t=threshold: len(accepted) >= t, f"{threshold} events accepted")
            await server.restart(hard=restarts == 1)  # one clean stop, one SIGKILL
            restarts += 1
        async with asyncio.timeout(120):
            await publishing
        await eventually(lambda: set(consumed) == accepted, "every accepted event consumed", 60)
    finally:
        consuming.cancel()
        await producer.close()
        await consumer.close()

    assert restarts == 2
    assert len(accepted) == total
    assert set(consumed) == accepted  # every accepted event consumed; duplicates only redeliveries
    check = JetStreamTransport(server.url)
    async with check:
        info = await check.jetstream.stream_info("CROSSWIRE")
        assert info.state.messages == total, "a retried publish was stored twice"
    await server.stop()
    print(f"publish retries: {retries}, deliveries: {len(consumed)} for {total} events")
