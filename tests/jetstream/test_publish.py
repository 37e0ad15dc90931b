"""The publisher's deadline scan: a batch whose acks do not come fails after the timeout
(not much later), batches that are acknowledged leave nothing behind, and a late ack
of a failed batch is ignored."""

from __future__ import annotations

import asyncio
import time

import pytest

from crosswire import TransportError
from crosswire._transports.jetstream.headers import Client
from crosswire._transports.jetstream.publish import Publisher


async def test_a_batch_without_acks_fails_after_the_timeout(nats_url: str) -> None:
    nc = Client()
    await nc.connect(nats_url)
    try:
        sink = await nc.subscribe("cwtest.sink")  # a listener that never answers: no 503 either
        await nc.flush()
        publisher = Publisher(nc, 0.3, lambda: None)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match=r"1 of 1 messages not acknowledged within 0.3s"):
            await publisher.send([("cwtest.sink", b"x", None)], "the sink")
        assert 0.3 <= time.monotonic() - t0 < 1.0
        msg = await sink.next_msg(timeout=1)
        await nc.publish(msg.reply, b'{"stream":"S","seq":1}')  # a late ack: ignored
        await nc.flush()
        await asyncio.sleep(0.1)
        assert not publisher._awaiting and not publisher._deadlines
    finally:
        await nc.close()


async def test_acknowledged_batches_leave_nothing_behind(nats_url: str) -> None:
    nc = Client()
    await nc.connect(nats_url)
    try:
        sink = await nc.subscribe("cwtest.echo")

        async def answer() -> None:
            async for msg in sink.messages:
                await nc.publish(msg.reply, b'{"stream":"S","seq":7}')

        responder = asyncio.create_task(answer())
        await nc.flush()
        publisher = Publisher(nc, 5.0, lambda: None)
        batches = await asyncio.gather(
            *(publisher.send([("cwtest.echo", b"x", {"Nats-Msg-Id": str(i)})] * 3, "echo") for i in range(200))
        )
        assert all(b.seq == 7 and b.error is None for b in batches)
        assert not publisher._awaiting
        await asyncio.sleep(0.2)  # a few scans
        assert not publisher._deadlines and publisher._scanning is None
        responder.cancel()
    finally:
        await nc.close()
