"""JetStreamTransport against a real nats-server: publish, consume, settle."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from crosswire import ConfigurationError, Event, TransportError, decode_event
from crosswire._binary import from_binary
from crosswire.jetstream import JetStreamDelivery, JetStreamTransport, consumer_name
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


def ev(type_: str, i: int = 0, **kw: str) -> Event[object]:
    return Event.new(type_, f"payload-{i}".encode(), **kw)  # type: ignore[arg-type]


async def take(sub: object, n: int, timeout: float = 10.0, *, ack: bool = False) -> list[JetStreamDelivery]:
    got: list[JetStreamDelivery] = []
    it = sub.__aiter__()  # type: ignore[attr-defined]
    async with asyncio.timeout(timeout):
        while len(got) < n:
            got.append(await anext(it))
            if ack:
                await got[-1].ack()
    return got


async def nothing_within(sub: object, seconds: float) -> None:
    it = sub.__aiter__()  # type: ignore[attr-defined]
    try:
        async with asyncio.timeout(seconds):
            d = await anext(it)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected delivery {d!r}")


async def stream_count(t: JetStreamTransport) -> int:
    info = await t.jetstream.stream_info(t.stream)
    return int(info.state.messages)


async def test_publish_then_consume_in_order(transport: JetStreamTransport) -> None:
    events = [ev("order.created", i, key="k1") for i in range(50)]
    await transport.publish(events)
    assert await stream_count(transport) == 50
    sub = await transport.subscribe("order.created", "g1", prefetch=16)
    got = await take(sub, 50, ack=True)  # prefetch 16 < 50: acks make room for more
    assert [d.event.id for d in got if d.event] == [e.id for e in events]
    assert all(d.attempt == 1 for d in got)
    assert got[0].raw == __import__("crosswire").encode_event(events[0])
    await nothing_within(sub, 0.3)
    await sub.close()


async def test_headers_carry_msg_id_and_cloudevents_attributes(transport: JetStreamTransport) -> None:
    event = Event.new(
        "order.created",
        b"x",
        key="order-42",
        subject="orders/42",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    await transport.publish([event])
    msg = await transport.jetstream.get_msg(transport.stream, seq=1)
    headers = msg.headers or {}
    assert headers["Nats-Msg-Id"] == event.id
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == event.id
    assert headers["ce-source"] == event.source
    assert headers["ce-type"] == "order.created"
    assert headers["ce-time"] == event.time
    assert headers["ce-subject"] == "orders/42"
    assert headers["ce-partitionkey"] == "order-42"
    assert headers["ce-traceparent"] == event.traceparent
    assert msg.subject == f"{transport.subject_prefix}.order.created"
    assert (msg.data or b"") == (event.data or b"")  # binary content mode: the body is the data
    assert from_binary(msg.headers, msg.data or b"") == event


async def test_without_cloudevents_headers_only_the_msg_id_is_sent(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, cloudevents_headers=False) as t:
        event = ev("plain.x", 1)
        await t.publish([event])
        await t.publish([event])
        msg = await t.jetstream.get_msg(stream, seq=1)
        assert msg.headers == {"Nats-Msg-Id": event.id}
        assert decode_event(msg.data or b"") == event
        assert (await t.jetstream.stream_info(stream)).state.messages == 1
        await t.jetstream.delete_stream(stream)


async def test_republish_same_id_is_stored_once(transport: JetStreamTransport) -> None:
    events = [ev("a.b", i) for i in range(20)]
    await transport.publish(events)
    await transport.publish(events)  # e.g. the caller never saw the acks and retried
    await transport.publish(events[5:10])
    assert await stream_count(transport) == 20


async def test_publish_whose_ack_was_lost_is_stored_once(transport: JetStreamTransport, nats_url: str) -> None:
    # The first attempt reaches the broker but its ack never reaches the publisher:
    # published with a reply inbox nobody listens on.
    event = ev("pay.charge", 1)
    nc = await nats.connect(nats_url)
    from crosswire._transports.jetstream.publish import ce_headers as _ce_headers

    await nc.publish(
        transport.subject_for(event.type),
        __import__("crosswire").encode_event(event),
        reply="_INBOX.lost-ack",
        headers=_ce_headers(event),
    )
    await nc.flush()
    await nc.close()
    # The publisher retries with the same id and this time gets the ack.
    await transport.publish([event])
    assert await stream_count(transport) == 1
    sub = await transport.subscribe("pay.charge", "g")
    [d] = await take(sub, 1)
    assert d.event is not None and d.event.id == event.id
    await d.ack()
    await nothing_within(sub, 0.5)


async def test_late_consumer_gets_earlier_events(transport: JetStreamTransport) -> None:
    early = [ev("late.x", i) for i in range(10)]
    await transport.publish(early)
    first = await transport.subscribe("late.x", "first")
    for d in await take(first, 10):
        await d.ack()
    late = await transport.subscribe("late.x", "late")  # joins after everything was handled
    got = await take(late, 10)
    assert {d.event.id for d in got if d.event} == {e.id for e in early}


async def test_one_group_shares_work_between_two_subscriptions(transport: JetStreamTransport) -> None:
    # Two subscriptions of one group, as two nodes would have.
    a = await transport.subscribe("work.*", "workers", prefetch=8)
    b = await transport.subscribe("work.*", "workers", prefetch=8)
    events = [ev("work.item", i) for i in range(200)]
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def run(name: str, sub: object) -> None:
        async for d in sub:  # type: ignore[attr-defined]
            assert d.event is not None
            seen[name].append(d.event.id)
            await asyncio.sleep(0.002)  # a slow handler, so neither takes everything
            await d.ack()

    tasks = [asyncio.create_task(run("a", a)), asyncio.create_task(run("b", b))]
    await transport.publish(events)
    await eventually(lambda: len(seen["a"]) + len(seen["b"]) >= 200, "200 deliveries")
    await asyncio.sleep(0.3)
    await a.close()
    await b.close()
    await asyncio.gather(*tasks)
    assert sorted(seen["a"] + seen["b"]) == sorted(e.id for e in events)  # each exactly once
    assert seen["a"] and seen["b"], f"work not shared: a={len(seen['a'])} b={len(seen['b'])}"


@pytest.mark.parametrize(("max_ack_pending", "expected"), [(None, 8), (16, 16)])
async def test_max_ack_pending_is_per_group(
    nats_url: str, names: tuple[str, str], max_ack_pending: int | None, expected: int
) -> None:
    stream, prefix = names
    async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, max_ack_pending=max_ack_pending) as t:
        await t.publish([ev("map.x", i) for i in range(40)])
        subs = [await t.subscribe("map.x", "g", prefetch=8, ack_wait=30) for _ in range(2)]
        await asyncio.sleep(1.0)  # nothing is acked: each holds what the broker let it have
        held = [s.statistics()["unsettled"] for s in subs]
        assert sum(held) == expected, held
        assert all(h <= 8 for h in held)  # prefetch still bounds each subscription
        for s in subs:
            await s.close()
        await t.jetstream.delete_stream(stream)


async def test_each_group_gets_every_event(transport: JetStreamTransport) -> None:
    events = [ev("fan.out", i) for i in range(5)]
    await transport.publish(events)
    g1 = await transport.subscribe("fan.>", "g1")
    g2 = await transport.subscribe("fan.*", "g2")
    for sub in (g1, g2):
        got = await take(sub, 5)
        assert [d.event.id for d in got if d.event] == [e.id for e in events]


async def test_retry_redelivers_as_next_attempt_after_delay(transport: JetStreamTransport) -> None:
    await transport.publish([ev("r.t", 1)])
    sub = await transport.subscribe("r.t", "g", ack_wait=10)
    [d1] = await take(sub, 1)
    started = time.monotonic()
    await d1.retry(0.5)
    [d2] = await take(sub, 1, timeout=5)
    assert time.monotonic() - started >= 0.45
    assert d2.attempt == 2 and d2.event is not None and d1.event is not None
    assert d2.event.id == d1.event.id
    await d2.terminate()
    await nothing_within(sub, 0.5)


async def test_unsettled_delivery_comes_back_after_ack_wait(transport: JetStreamTransport) -> None:
    await transport.publish([ev("w.t", 1)])
    sub = await transport.subscribe("w.t", "g", ack_wait=0.5)
    [d1] = await take(sub, 1)
    [d2] = await take(sub, 1, timeout=5)  # never settled d1
    assert d2.attempt == 2 and d1.superseded and not d2.superseded
    await d1.ack()  # stale: must not settle the newer delivery (JetStream acks by sequence)
    [d3] = await take(sub, 1, timeout=5)  # d2 left unsettled: it comes back
    assert d3.attempt == 3
    await d3.ack()
    await d2.ack()  # superseded by d3: a no-op too
    await nothing_within(sub, 1.0)


async def test_in_progress_extends_the_lease(transport: JetStreamTransport) -> None:
    await transport.publish([ev("p.t", 1)])
    sub = await transport.subscribe("p.t", "g", ack_wait=0.6)
    [d] = await take(sub, 1)
    for _ in range(4):
        await asyncio.sleep(0.3)
        await d.in_progress()
    await d.ack()
    await nothing_within(sub, 1.0)


async def test_stale_settlement_from_a_sibling_subscription_is_dropped(
    transport: JetStreamTransport,
) -> None:
    await transport.publish([ev("sib.t", 1)])
    a = await transport.subscribe("sib.t", "g", ack_wait=0.5)
    b = await transport.subscribe("sib.t", "g", ack_wait=0.5)
    first = await take_any([a, b])
    second = await take_any([a, b], timeout=5)  # first's lease ran out
    assert second.attempt == 2 and first.superseded
    await first.terminate()  # stale
    third = await take_any([a, b], timeout=5)
    assert third.attempt == 3
    await third.ack()


async def take_any(subs: list[object], timeout: float = 10.0) -> JetStreamDelivery:
    iterators = [s.__aiter__() for s in subs]  # type: ignore[attr-defined]
    tasks = [asyncio.ensure_future(anext(it)) for it in iterators]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        assert done, f"no delivery within {timeout}s"
        return next(iter(done)).result()  # type: ignore[no-any-return]
    finally:
        for t in tasks:
            t.cancel()


async def test_first_settlement_stands(transport: JetStreamTransport) -> None:
    await transport.publish([ev("s.t", 1)])
    sub = await transport.subscribe("s.t", "g", ack_wait=10)
    [d] = await take(sub, 1)
    await d.ack()
    await d.retry(0)  # no-op: already acked
    await d.terminate()
    assert d.settled
    await nothing_within(sub, 0.6)


async def test_undecodable_bytes_become_a_delivery_with_decode_error(
    transport: JetStreamTransport,
) -> None:
    await transport.jetstream.publish(transport.subject_for("bad.bytes"), b"\xc1not msgpack")
    sub = await transport.subscribe("bad.bytes", "g")
    [d] = await take(sub, 1)
    assert d.event is None
    assert d.raw == b"\xc1not msgpack"
    assert d.decode_error and "malformed" in d.decode_error
    await d.terminate()


async def test_a_message_without_a_jetstream_reply_subject_is_an_error_not_attempt_1(
    transport: JetStreamTransport,
) -> None:
    sub = await transport.subscribe("odd.reply", "g")
    # A plain NATS message on the subscription's inbox: no $JS.ACK reply subject, so no
    # delivery count nor stream sequence exists for it.
    await transport.connection.publish(sub._inbox, b"x", reply="not.a.jetstream.ack")
    [d] = await take(sub, 1)
    assert d.event is None
    assert d.decode_error is not None
    assert "'not.a.jetstream.ack' is not a JetStream ack subject" in d.decode_error
    await d.terminate()


async def test_close_returns_unsettled_deliveries_at_once(transport: JetStreamTransport) -> None:
    await transport.publish([ev("c.t", i) for i in range(3)])
    first = await transport.subscribe("c.t", "g", ack_wait=30)
    await take(first, 3)
    await first.close()  # nothing settled: must come back now, not after 30 s
    second = await transport.subscribe("c.t", "g", ack_wait=30)
    got = await take(second, 3, timeout=5)
    # delivered twice, but handed back unstarted: still the first attempt
    assert [(d.num_delivered, d.attempt) for d in got] == [(2, 1)] * 3


async def test_invalid_names_are_refused_clearly(transport: JetStreamTransport) -> None:
    with pytest.raises(ConfigurationError, match="not a valid NATS subject"):
        await transport.publish([ev("has space", 1)])
    with pytest.raises(ConfigurationError, match="not a valid NATS subject"):
        await transport.subscribe("a..b", "g")
    with pytest.raises(ConfigurationError, match="group"):
        await transport.subscribe("a.b", "")
    with pytest.raises(ConfigurationError, match="stream name"):
        JetStreamTransport("nats://127.0.0.1:1", stream="bad.name")


def test_consumer_names_are_safe_and_distinct() -> None:
    assert consumer_name("orders_reserve") == "orders_reserve"
    dotted = consumer_name("orders.pricing:order.created")
    assert all(c.isalnum() or c in "_-" for c in dotted)
    assert dotted != consumer_name("orders_pricing_order_created")
    assert dotted == consumer_name("orders.pricing:order.created")


async def test_publish_to_unreachable_broker_raises_transport_error() -> None:
    t = JetStreamTransport("nats://127.0.0.1:1", connect_timeout=0.5)
    with pytest.raises(TransportError, match="cannot connect"):
        await t.start()


async def test_publish_before_start_is_refused() -> None:
    t = JetStreamTransport("nats://127.0.0.1:1")
    with pytest.raises(__import__("crosswire").ClosedError):
        await t.publish([ev("x.y")])


async def test_unconfirmed_acks_are_bounded(nats_url: str, names: tuple[str, str]) -> None:
    """At most ack_window acks are ever unconfirmed by the server: a killed node can
    have no more handled-but-unacknowledged events than that (docs/jetstream.md)."""
    stream, prefix = names
    t = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, ack_window=4)
    async with t:
        await t.publish([ev("win.x", i) for i in range(200)])
        sub = await t.subscribe("win.x", "g", prefetch=256)
        confirmer = sub.confirmer
        assert confirmer is not None
        most = 0
        for d in await take(sub, 200):
            await d.ack()
            most = max(most, confirmer.unconfirmed)
        assert 0 < most <= 4
        await eventually(lambda: confirmer.unconfirmed == 0, "every ack confirmed", timeout=5)
