"""Size limits on a real nats-server: max_payload counts headers too; an oversized
event is refused before it reaches the server; readiness follows the connection; a
poison event near the limit is still dead-lettered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import crosswire
from crosswire import Event, PayloadTooLargeError
from crosswire._transports.jetstream.publish import ce_headers, message_size
from crosswire.jetstream import EmbeddedServer, JetStreamTransport
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


def sized(etype: str, total: int, **attrs: str) -> Event[bytes]:
    """An event whose MessagePack envelope is exactly ``total`` bytes."""
    event: Event[bytes] = Event.new(etype, b"", **attrs)  # type: ignore[arg-type]
    event.data = b"x" * total
    event.data = b"x" * (2 * total - len(crosswire.encode_event(event)))
    assert len(crosswire.encode_event(event)) == total
    return event


async def test_an_event_that_fits_only_without_its_headers_is_refused_and_the_connection_stays_up(
    transport: JetStreamTransport,
) -> None:
    limit = transport.connection.max_payload
    # binary content mode: the body is the data, the attributes travel as headers
    big = Event.new("big.one", b"x" * (limit - 100), subject="s" * 300)
    body = big.data or b""
    assert len(body) < limit < message_size(body, ce_headers(big))  # the headers push it over
    sub = await transport.subscribe("big.one", "g")
    with pytest.raises(PayloadTooLargeError) as info:
        await transport.publish([big])
    assert info.value.limit == limit and info.value.size > limit
    assert str(limit) in str(info.value) and str(info.value.size) in str(info.value)
    await asyncio.sleep(0.3)  # a server that saw it would have closed the connection by now
    assert transport.connected and transport.reconnects == 0
    small = Event.new("big.one", b"fine")
    await transport.publish([small])
    it = sub.__aiter__()
    async with asyncio.timeout(5):
        delivery = await anext(it)
    assert delivery.event is not None and delivery.event.id == small.id
    await delivery.ack()


async def test_node_ready_follows_the_connection(tmp_path: Path) -> None:
    app = crosswire.App("ready")

    @app.handler("r.x")
    async def handle(event: crosswire.Event[bytes]) -> None:
        pass

    async with EmbeddedServer(tmp_path / "data") as server:
        transport = JetStreamTransport(server.url, stream="READY", subject_prefix="ready")
        async with crosswire.Node(app, transport=transport) as node:
            assert node.ready
            await server.kill()
            await eventually(lambda: not node.ready, "node not ready while its broker is gone")
            await server.start()
            await eventually(lambda: node.ready, "node ready again once reconnected")


async def test_a_poison_event_near_max_payload_is_still_dead_lettered(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    app = crosswire.App("limits")
    runs = 0

    @app.handler("poison.big", retry=crosswire.Retry(max_attempts=2, initial=0.05))
    async def handle(event: crosswire.Event[bytes]) -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("always fails " + "!" * 3000)

    transport = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, cloudevents_headers=False)
    async with crosswire.Node(app, transport=transport) as node:
        limit = transport.connection.max_payload
        poison = sized("poison.big", limit - 300)
        await transport.publish([poison])
        store = transport.dead_letter_store()

        async def lettered() -> bool:
            return bool(await store.list())

        await eventually(lettered, "the poison event dead-lettered (does its letter fit?)", 15, interval=0.1)
        [letter] = await store.list()
        assert runs == 2
        assert letter.event is not None and letter.event.id == poison.id
        assert letter.event.extensions["cwtruncated"] == len(poison.data or b"")
        assert len(letter.event.data or b"") < len(poison.data or b"")
        assert "event data: kept" in letter.error.details["truncated"]
        assert [a.number for a in letter.attempts] == [1, 2]
        assert node.ready


async def test_prefetch_is_bounded_in_bytes_as_well_as_in_events(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    budget = 1024 * 1024
    t = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, prefetch_bytes=budget)
    async with t:
        events = [Event.new("bulk.x", b"b" * 256 * 1024) for _ in range(24)]  # 6 MiB
        for i in range(0, len(events), 4):
            await t.publish(events[i : i + 4])
        sub = await t.subscribe("bulk.x", "g", prefetch=1000)
        await eventually(lambda: sub.statistics()["received"] > 0, "the first deliveries")
        await asyncio.sleep(0.5)  # give the broker time to send more than the budget
        held = sub.statistics()["held_bytes"]
        assert 0 < held <= budget + t.connection.max_payload, f"holds {held} bytes"
        it = sub.__aiter__()
        got: set[str] = set()
        async with asyncio.timeout(10):
            while len(got) < len(events):  # settling frees the budget: the rest comes
                d = await anext(it)
                assert sub.statistics()["held_bytes"] <= budget + t.connection.max_payload
                assert d.event is not None
                got.add(d.event.id)
                await d.ack()
        assert got == {e.id for e in events}
