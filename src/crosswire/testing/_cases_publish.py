"""Conformance cases about publishing: what arrives, how often, and what is refused."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from .._envelope import Event, decode_event, encode_event
from .._exceptions import ClosedError, ConfigurationError, CrosswireError
from .._transports.base import Transport
from ._context import CaseContext
from ._context import event_id as _id
from ._helpers import Collector, Namespace, assert_no_more, collect, next_delivery

__all__ = [
    "bad_input",
    "concurrent_publishers",
    "payload_and_metadata_intact",
    "publish_dedup",
    "publisher_close",
    "topic_isolation",
]


async def payload_and_metadata_intact(ctx: CaseContext) -> None:
    """100 events with every envelope field set arrive byte-identical."""
    transport, ns = ctx.transport, ctx.ns
    etype = ns.type("payload")
    sub = await transport.subscribe(etype, ns.group())
    sizes = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 200_000]
    sent: list[Event[Any]] = []
    rng = random.Random(7)
    for i in range(100):
        size = sizes[i] if i < len(sizes) else rng.randrange(0, 2048)
        sent.append(
            Event(
                specversion="1.0",
                id=f"{ns.prefix}-{i}",
                source=f"/tests/{ns.prefix}",
                type=etype,
                subject=f"subject-{i} ünïcödé",
                time="2026-11-28T10:00:00.123456789Z",
                datacontenttype="application/octet-stream",
                dataschema="urn:schema:test:1",
                data=os.urandom(size),
                correlationid=f"corr-{i}",
                causationid=f"cause-{i}",
                traceparent=f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01",
                tracestate="vendor=value",
                partitionkey=None,
                idempotencykey=f"idem-{i}",
                deadline=1_795_860_000_000 + i,
                extensions={"flag": i % 2 == 0, "num": -(2**40) + i, "raw": b"\x00\xff", "text": "x" * i},
            )
        )
    for start in range(0, 100, 10):
        await transport.publish(sent[start : start + 10])
    got = await collect(sub, 100, ctx.timeout, ack=True)
    by_id = {e.id: e for e in sent}
    seen = Counter(_id(d) for d in got)
    duplicates = [i for i, c in seen.items() if c > 1]
    assert not duplicates, f"delivered more than once: {duplicates[:5]}"
    for delivery in got:
        event = delivery.event
        assert event is not None
        want = by_id.get(event.id)
        assert want is not None, f"unexpected event id {event.id!r}"
        assert delivery.attempt == 1, f"first delivery has attempt {delivery.attempt}"
        assert delivery.decode_error is None
        assert encode_event(event) == encode_event(want), f"event {event.id} changed in transit"
        assert decode_event(delivery.raw) == want, f"raw bytes of {event.id} do not decode to it"
    await assert_no_more(sub, ctx.quiet, "all 100 were acked")
    await sub.close()


async def concurrent_publishers(ctx: CaseContext) -> None:
    """20 concurrent publishers x 500 events finish; all 10,000 arrive exactly once."""
    transport, ns = ctx.transport, ctx.ns
    etype, publishers, per = ns.type("pub"), 20, 500
    sub = await transport.subscribe(etype, ns.group(), prefetch=512)
    collector = Collector(sub).start()
    sent: list[str] = []

    async def publisher(p: int) -> None:
        batch: list[Event[Any]] = []
        for i in range(per):
            event = Event.new(etype, f"{p}:{i}".encode(), stamp_time=False)
            sent.append(event.id)
            batch.append(event)
            if len(batch) == (1 if i % 7 == 0 else 25):
                await transport.publish(batch)
                batch = []
        if batch:
            await transport.publish(batch)

    async with asyncio.timeout(ctx.timeout):
        await asyncio.gather(*(publisher(p) for p in range(publishers)))
    total = publishers * per
    await collector.wait_count(total, ctx.timeout)
    await asyncio.sleep(ctx.quiet)
    await collector.stop()
    ids = Counter(_id(d) for d in collector.deliveries)
    assert set(ids) == set(sent), f"{len(set(sent) - set(ids))} published events never arrived"
    assert len(collector.deliveries) == total, f"{len(collector.deliveries) - total} extra deliveries"


async def publish_dedup(ctx: CaseContext) -> None:
    """Publishing an id again (in a later or the same batch) stores it once."""
    transport, ns = ctx.transport, ctx.ns
    etype = ns.type("dedup")
    sub = await transport.subscribe(etype, ns.group())
    e1, e2, e3 = (Event.new(etype, str(i).encode()) for i in range(3))
    await transport.publish([e1])
    await transport.publish([e1, e2])
    await transport.publish([e2, e3, e3])
    got = await collect(sub, 3, ctx.timeout, ack=True)
    assert sorted(_id(d) for d in got) == sorted([e1.id, e2.id, e3.id])
    await assert_no_more(sub, ctx.quiet, "a duplicate id was stored twice")
    await sub.close()


async def topic_isolation(ctx: CaseContext) -> None:
    """A pattern sees only matching types; ``*`` is one token, ``>`` one or more."""
    transport, ns = ctx.transport, ctx.ns
    created, cancelled = ns.type("order", "created"), ns.type("order", "cancelled")
    created_eu, payment = ns.type("order", "created", "eu"), ns.type("payment", "created")
    other = Namespace().type("order", "created")  # another namespace entirely
    expect: dict[str, set[str]] = {created: {created}}
    if ctx.features.wildcards:
        expect.update(
            {
                ns.type("order", "*"): {created, cancelled},
                ns.type("order", ">"): {created, cancelled, created_eu},
                ns.type("*", "created"): {created, payment},
                ns.type(">"): {created, cancelled, created_eu, payment},
            }
        )
    subs = {pattern: await transport.subscribe(pattern, ns.group(f"p{i}")) for i, pattern in enumerate(expect)}
    per = 5
    events = [
        Event.new(t, f"{t}:{i}".encode()) for i in range(per) for t in (created, cancelled, created_eu, payment, other)
    ]
    await transport.publish(events)
    for pattern, types in expect.items():
        sub = subs[pattern]
        got = await collect(sub, per * len(types), ctx.timeout, ack=True)
        seen = {d.event.type for d in got if d.event is not None}
        assert seen == types, f"pattern {pattern} saw {sorted(seen)}, expected {sorted(types)}"
        await assert_no_more(sub, ctx.quiet, f"pattern {pattern} got a non-matching event")
        await sub.close()


async def publisher_close(ctx: CaseContext) -> None:
    """``close()`` while publishes are in flight flushes them: after reopening, every
    event of every publish started before ``close()`` is stored, once; later publishes
    raise ``ClosedError``; nothing hangs."""
    ns = ctx.ns
    etype, group, publishers, per_batch = ns.type("pubclose"), ns.group(), 20, 25
    # the group exists before anything is published, so it is owed every stored event
    sub = await ctx.transport.subscribe(etype, group, ack_wait=ctx.ack_wait)
    await sub.close()

    publisher = await ctx.reopen()
    closing = False
    before: list[Event[Any]] = []  # every event of a publish() called before close()
    in_flight = at_close = 0
    first_returned = asyncio.Event()

    async def publish_until_closed(p: int) -> None:
        nonlocal in_flight
        for b in itertools.count():
            if closing:
                return
            batch = [Event.new(etype, f"{p}:{b}:{i}".encode(), stamp_time=False) for i in range(per_batch)]
            before.extend(batch)
            in_flight += 1
            try:
                await publisher.publish(batch)
            except CrosswireError:
                if closing:
                    return  # in flight at close(): it may report a failure, but must be stored
                first_returned.set()  # stop waiting: the error is raised from gather below
                raise
            finally:
                in_flight -= 1
            first_returned.set()

    tasks = [asyncio.create_task(publish_until_closed(p)) for p in range(publishers)]
    try:
        async with asyncio.timeout(ctx.timeout):
            await first_returned.wait()
            closing = True
            at_close = in_flight
            await publisher.close()  # without waiting for the publishes in flight
    except TimeoutError:
        await publisher.close()
        raise AssertionError(f"no publish returned, or close() did not finish, within {ctx.timeout}s") from None
    finally:
        closing = True
    try:
        async with asyncio.timeout(ctx.timeout):
            await asyncio.gather(*tasks)
    except TimeoutError:
        raise AssertionError(f"publishes in flight at close() did not end within {ctx.timeout}s") from None
    try:
        await publisher.publish([Event.new(etype, b"late")])
    except ClosedError:
        pass
    else:
        raise AssertionError("publish() after close() returned; expected ClosedError")

    reader = await ctx.reopen()
    try:
        sub = await reader.subscribe(etype, group, prefetch=512, ack_wait=ctx.ack_wait)
        collector = Collector(sub).start()
        want = {e.id for e in before}
        seen: Counter[str] = Counter()

        def stored() -> bool:
            seen.clear()
            seen.update(_id(d) for d in collector.deliveries)
            return want <= seen.keys()

        try:
            await collector.wait_for(stored, ctx.timeout, "every event published before close()")
        except AssertionError:
            lost = len(want - seen.keys())
            raise AssertionError(
                f"{lost} of {len(want)} events published before close() are not stored "
                f"({at_close} publishes were in flight at close()): close() did not flush them"
            ) from None
        await asyncio.sleep(ctx.quiet)
        await collector.stop()
        stored()
        assert seen.keys() <= want, "the group got events that were never published before close()"
        twice = [i for i, c in seen.items() if c > 1]
        assert not twice, f"{len(twice)} events stored more than once, e.g. {twice[0]}"
    finally:
        await reader.close()


async def bad_input(ctx: CaseContext) -> None:
    """Invalid patterns, groups, limits and events are refused at the call with
    ``ConfigurationError``, and a batch holding one bad event is refused whole."""
    transport, ns = ctx.transport, ctx.ns
    etype = ns.type("bad")
    patterns = ["", " ", f"{etype}.", f"{ns.prefix}..bad", f"{etype} x", f"{etype}.>.x", f"{etype}.a*", f"{etype}.>x"]
    for pattern in patterns:
        await _refused(f"subscribe({pattern!r})", transport.subscribe(pattern, ns.group()))
    await _refused("subscribe with an empty group", transport.subscribe(etype, ""))
    await _refused("subscribe with prefetch=0", transport.subscribe(etype, ns.group(), prefetch=0))
    await _refused("subscribe with ack_wait=0", transport.subscribe(etype, ns.group(), ack_wait=0))

    sub = await transport.subscribe(f"{ns.prefix}.>", ns.group(), ack_wait=ctx.ack_wait)
    good = Event.new(etype, b"good")
    not_events: list[object] = ["an event", {"type": etype}, b"\x81", None]
    for thing in not_events:
        await _refused(f"publish([{thing!r}])", _publish_any(transport, [good, thing]))
    await _refused("publish of a wildcard type", transport.publish([good, Event.new(f"{etype}.*")]))
    await _refused("publish of an empty token", transport.publish([good, Event.new(f"{etype}..x")]))
    await assert_no_more(sub, ctx.quiet, "a batch holding a bad event must be refused whole")
    await transport.publish([good])  # the transport still works
    delivery = await next_delivery(sub, ctx.timeout, "a valid event after the refused ones")
    assert _id(delivery) == good.id
    await delivery.ack()
    await sub.close()


async def _publish_any(transport: Transport, events: list[object]) -> None:
    await transport.publish(events)  # type: ignore[arg-type]  # deliberately not Events


async def _refused(what: str, call: Awaitable[object]) -> None:
    try:
        result = await call
    except ConfigurationError:
        return
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}, not ConfigurationError") from None
    close = getattr(result, "close", None)
    if close is not None:
        await close()
    raise AssertionError(f"{what} was accepted; expected ConfigurationError")
