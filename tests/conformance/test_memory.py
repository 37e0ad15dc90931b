"""MemoryTransport specifics the universal suite does not cover: argument checks,
lifecycle errors, statistics, zero-copy isolation, the dedup window and prefetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crosswire import ClosedError, ConfigurationError, Event
from crosswire._envelope import decode_event
from crosswire._transports.memory import MemoryTransport
from crosswire.testing import assert_no_more, collect, next_delivery


@pytest.fixture
async def transport() -> AsyncIterator[MemoryTransport]:
    async with MemoryTransport() as t:
        yield t


async def test_not_started_and_closed_are_errors() -> None:
    t = MemoryTransport()
    with pytest.raises(ClosedError, match="not started"):
        await t.publish([Event.new("a")])
    with pytest.raises(ClosedError, match="not started"):
        await t.subscribe("a", "g")
    await t.start()
    await t.start()  # idempotent
    await t.close()
    await t.close()  # idempotent
    with pytest.raises(ClosedError, match="closed"):
        await t.publish([Event.new("a")])
    with pytest.raises(ClosedError, match="cannot be restarted"):
        await t.start()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "a..b"}, "empty token"),
        ({"group": ""}, "group"),
        ({"prefetch": 0}, "prefetch"),
        ({"ack_wait": 0}, "ack_wait"),
    ],
)
async def test_subscribe_checks_its_arguments(
    transport: MemoryTransport, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"pattern": "a.b", "group": "g", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        await transport.subscribe(**args)  # type: ignore[arg-type]


async def test_publish_refuses_a_wildcard_type_and_accepts_nothing(transport: MemoryTransport) -> None:
    sub = await transport.subscribe(">", "g")
    with pytest.raises(ConfigurationError, match="wildcard"):
        await transport.publish([Event.new("a.ok"), Event.new("a.*")])
    await assert_no_more(sub, 0.05, "a batch with an invalid type must be refused whole")
    assert transport.statistics().published == 0


async def test_events_before_the_group_existed_are_not_delivered(transport: MemoryTransport) -> None:
    await transport.publish([Event.new("a")])
    sub = await transport.subscribe("a", "late")
    await assert_no_more(sub, 0.05)
    after = Event.new("a")
    await transport.publish([after])
    assert (await next_delivery(sub, 1)).event == after


async def test_each_group_gets_its_own_object_sharing_the_data(transport: MemoryTransport) -> None:
    one = await transport.subscribe("a", "one")
    two = await transport.subscribe("a", "two")
    event = Event.new("a", b"x" * 1000)
    await transport.publish([event])
    d1, d2 = await next_delivery(one, 1), await next_delivery(two, 1)
    assert d1.event is not None
    assert d2.event is not None
    assert d1.event is not d2.event
    assert d1.event is not event
    assert d1.event.data is event.data  # zero-copy: the payload bytes are shared
    d1.event.with_payload("for one")
    with pytest.raises(AttributeError):
        _ = d2.event.payload
    assert decode_event(d2.raw) == event


async def test_prefetch_bounds_unsettled_deliveries(transport: MemoryTransport) -> None:
    sub = await transport.subscribe("a", "g", prefetch=3)
    await transport.publish([Event.new("a") for _ in range(5)])
    first = await collect(sub, 3, 1)
    await assert_no_more(sub, 0.05, "prefetch=3 and three are unsettled")
    stats = transport.statistics().groups[0]
    assert (stats.in_flight, stats.pending) == (3, 2)
    await first[0].ack()
    await next_delivery(sub, 1)


async def test_statistics(transport: MemoryTransport) -> None:
    sub = await transport.subscribe("s.>", "g", ack_wait=5)
    held = Event.new("s.a", key="k")
    await transport.publish([held, Event.new("s.a", key="k"), Event.new("s.b"), held])
    stats = transport.statistics()
    assert (stats.published, stats.deduplicated) == (3, 1)
    (group,) = stats.groups
    assert (group.pattern, group.group, group.subscriptions) == ("s.>", "g", 1)
    assert (group.pending, group.held_back, group.in_flight) == (3, 1, 0)
    got = await collect(sub, 2, 1)
    await got[0].retry(10)
    group = transport.statistics().groups[0]
    assert (group.delayed, group.held_back, group.in_flight) == (1, 1, 1)
    await sub.close()
    group = transport.statistics().groups[0]
    assert (group.subscriptions, group.in_flight, group.pending) == (0, 0, 3)


async def test_dedup_window_expires() -> None:
    async with MemoryTransport(dedup_window=0.05) as t:
        sub = await t.subscribe("a", "g")
        event = Event.new("a")
        await t.publish([event])
        await asyncio.sleep(0.1)
        await t.publish([event])
        got = await collect(sub, 2, 1)
        assert [d.event for d in got] == [event, event]


async def test_dedup_remembers_a_bounded_number_of_ids() -> None:
    async with MemoryTransport(dedup_max_ids=2) as t:
        sub = await t.subscribe("a", "g")
        e1, e2, e3 = Event.new("a"), Event.new("a"), Event.new("a")
        await t.publish([e1, e2, e3, e1])  # e1 was forgotten when e3 arrived
        got = await collect(sub, 4, 1, ack=True)
        assert [d.event.id for d in got if d.event] == [e1.id, e2.id, e3.id, e1.id]
        await t.publish([e3])
        await assert_no_more(sub, 0.05, "e3 is still remembered")


async def test_transport_close_ends_iteration(transport: MemoryTransport) -> None:
    sub = await transport.subscribe("a", "g")
    waiting = asyncio.create_task(next_delivery(sub, 5))
    await asyncio.sleep(0.01)
    await transport.close()
    with pytest.raises(AssertionError, match="subscription ended"):
        await waiting


async def test_cancelled_receive_loses_nothing(transport: MemoryTransport) -> None:
    sub = await transport.subscribe("a", "g")
    for _ in range(20):
        with pytest.raises(AssertionError, match="no a delivery"):
            await next_delivery(sub, 0.001)
    event = Event.new("a")
    await transport.publish([event])
    delivery = await next_delivery(sub, 1)
    assert delivery.event == event
    assert delivery.attempt == 1


async def test_many_tasks_may_iterate_one_subscription(transport: MemoryTransport) -> None:
    sub = await transport.subscribe("a", "g", prefetch=2)
    readers = [asyncio.create_task(next_delivery(sub, 5)) for _ in range(4)]
    await asyncio.sleep(0.01)
    events = [Event.new("a") for _ in range(4)]
    await transport.publish(events)
    await asyncio.sleep(0.01)
    done = [r for r in readers if r.done()]
    assert len(done) == 2, "prefetch=2 bounds deliveries across all readers of a subscription"
    for r in done:
        await r.result().ack()
    await asyncio.sleep(0.01)
    assert all(r.done() for r in readers)
    blocked = [asyncio.create_task(next_delivery(sub, 5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    await sub.close()  # wakes every blocked reader, whether waiting for capacity or events
    for task in blocked:
        with pytest.raises(AssertionError, match="subscription ended"):
            await task
