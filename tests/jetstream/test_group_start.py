"""Where a new consumer group starts (docs/transports.md, docs/jetstream.md): on a
stream others already consume, a new group gets only events published after it was
created; ``start`` says otherwise per group ("all", "new", a time); an existing
group keeps its position."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from crosswire import ConfigurationError, Event
from crosswire.jetstream import JetStreamTransport

pytestmark = pytest.mark.nats


def ev(type_: str, i: int) -> Event[object]:
    return Event.new(type_, f"payload-{i}".encode())  # type: ignore[arg-type]


async def take_ids(sub: object, n: int, timeout: float = 5.0) -> list[str]:
    ids: list[str] = []
    it = sub.__aiter__()  # type: ignore[attr-defined]
    async with asyncio.timeout(timeout):
        while len(ids) < n:
            d = await anext(it)
            await d.ack()
            ids.append(d.event.id)
    return ids


async def nothing_within(sub: object, seconds: float) -> None:
    it = sub.__aiter__()  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(seconds):
            d = await anext(it)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected delivery {d!r}")


async def running_system(transport: JetStreamTransport, n: int) -> list[Event[object]]:
    """A stream with events that a first group has consumed."""
    early = [ev("start.x", i) for i in range(n)]
    await transport.publish(early)
    first = await transport.subscribe("start.x", "first")
    await take_ids(first, n)
    await first.close()
    return early


async def test_a_group_added_to_a_running_system_gets_only_new_events(
    transport: JetStreamTransport, nats_url: str
) -> None:
    await running_system(transport, 5)
    # a node started later (its transport sees a stream that is consumed) adds a group
    later = JetStreamTransport(nats_url, stream=transport.stream, subject_prefix=transport.subject_prefix)
    async with later:
        sub = await later.subscribe("start.x", "added")
        await nothing_within(sub, 0.5)
        fresh = ev("start.x", 99)
        await transport.publish([fresh])
        assert await take_ids(sub, 1) == [fresh.id]
        await nothing_within(sub, 0.3)


async def test_start_all_replays_the_stream_for_a_new_group(transport: JetStreamTransport, nats_url: str) -> None:
    early = await running_system(transport, 5)
    later = JetStreamTransport(nats_url, stream=transport.stream, subject_prefix=transport.subject_prefix)
    async with later:
        sub = await later.subscribe("start.x", "replayer", start="all")
        assert await take_ids(sub, 5) == [e.id for e in early]


async def test_start_from_a_time(transport: JetStreamTransport) -> None:
    await transport.publish([ev("start.x", i) for i in range(3)])
    await asyncio.sleep(0.05)
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    after = [ev("start.x", 10 + i) for i in range(2)]
    await transport.publish(after)
    sub = await transport.subscribe("start.x", "since", start=since)
    assert await take_ids(sub, 2) == [e.id for e in after]
    await nothing_within(sub, 0.3)


async def test_per_group_start_on_the_transport_and_an_existing_group_keeps_its_position(
    transport: JetStreamTransport, nats_url: str
) -> None:
    early = await running_system(transport, 3)
    later = JetStreamTransport(
        nats_url,
        stream=transport.stream,
        subject_prefix=transport.subject_prefix,
        group_start="new",
        group_starts={"audit": "all"},
    )
    async with later:
        audit = await later.subscribe("start.x", "audit")
        assert await take_ids(audit, 3) == [e.id for e in early]
        await audit.close()
        # the group exists now: asking for "all" again does not replay it
        again = await later.subscribe("start.x", "audit", start="all")
        await nothing_within(again, 0.5)
    with pytest.raises(ConfigurationError, match="time zone"):
        JetStreamTransport(nats_url, group_start=datetime(2026, 1, 1))
    with pytest.raises(ConfigurationError, match="'new', 'all' or a datetime"):
        JetStreamTransport(nats_url, group_starts={"g": "latest"})  # type: ignore[dict-item]
