"""Conformance cases about consuming: groups, competing consumers, per-key order, closing."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict

from .._envelope import Event
from .._transports.base import Delivery, Subscription
from ._context import CaseContext
from ._context import event_id as _id
from ._context import event_seq as _seq
from ._helpers import Collector, assert_no_more, collect, next_delivery

__all__ = [
    "concurrent_subscribe",
    "consumer_groups",
    "per_key_order",
    "unacked_held_back_when_ordered",
    "concurrent_close",
    "continue_after_close_and_reopen",
]


async def _next(subscription: Subscription) -> Delivery:
    return await anext(subscription.__aiter__())


async def concurrent_subscribe(ctx: CaseContext) -> None:
    """5,000 events over 50 consumers of one group: each handled exactly once."""
    transport, ns = ctx.transport, ctx.ns
    etype, group, total = ns.type("work"), ns.group(), 5000
    subs = await asyncio.gather(*(transport.subscribe(etype, group, prefetch=32) for _ in range(50)))
    collectors = [Collector(s).start() for s in subs]
    events = [Event.new(etype, str(i).encode(), stamp_time=False) for i in range(total)]
    for start in range(0, total, 250):
        await transport.publish(events[start : start + 250])

    def count() -> int:
        return sum(len(c.deliveries) for c in collectors)

    await collectors[0].wait_for(lambda: count() >= total, ctx.timeout, f"{total} deliveries")
    await asyncio.sleep(ctx.quiet)
    ids = Counter(_id(d) for c in collectors for d in c.deliveries)
    assert set(ids) == {e.id for e in events}, f"{total - len(ids)} events never arrived"
    duplicates = [i for i, c in ids.items() if c > 1]
    assert not duplicates, f"{len(duplicates)} events delivered more than once"
    await asyncio.gather(*(c.stop() for c in collectors))


async def consumer_groups(ctx: CaseContext) -> None:
    """Two groups each get every event; the three members of one group split it."""
    transport, ns = ctx.transport, ctx.ns
    etype, n = ns.type("groups"), 300
    shared = await asyncio.gather(*(transport.subscribe(etype, ns.group("shared"), prefetch=10) for _ in range(3)))
    solo = await transport.subscribe(etype, ns.group("solo"), prefetch=10)

    async def slow_ack(delivery: Delivery) -> None:
        await asyncio.sleep(0.001)
        await delivery.ack()

    members = [Collector(s, slow_ack).start() for s in shared]
    alone = Collector(solo, slow_ack).start()
    events = [Event.new(etype, str(i).encode()) for i in range(n)]
    for start in range(0, n, 50):
        await transport.publish(events[start : start + 50])
    await alone.wait_count(n, ctx.timeout)
    await members[0].wait_for(
        lambda: sum(len(m.deliveries) for m in members) >= n, ctx.timeout, f"{n} shared deliveries"
    )
    await asyncio.sleep(ctx.quiet)
    await asyncio.gather(alone.stop(), *(m.stop() for m in members))
    want = {e.id for e in events}
    solo_ids = [_id(d) for d in alone.deliveries]
    assert sorted(solo_ids) == sorted(want), "the single-member group did not get every event once"
    shared_ids = [_id(d) for m in members for d in m.deliveries]
    assert sorted(shared_ids) == sorted(want), "the shared group did not get every event once"
    counts = [len(m.deliveries) for m in members]
    assert all(c > 0 for c in counts), f"members did not split the work: {counts}"


async def per_key_order(ctx: CaseContext) -> None:
    """1,000 events over 16 keys, 4 competing consumers each handling up to 16
    deliveries concurrently: each key's events are handled one at a time, in
    publish order, while keys interleave."""
    transport, ns = ctx.transport, ctx.ns
    etype, group, n, nkeys = ns.type("keys"), ns.group(), 1000, 16
    subs = await asyncio.gather(
        *(transport.subscribe(etype, group, prefetch=16, ack_wait=ctx.timeout * 2) for _ in range(4))
    )
    busy: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    arrival: list[str] = []
    overlap: list[str] = []
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()
    done = 0
    max_busy = 0
    rng = random.Random(11)

    async def handle(delivery: Delivery) -> None:
        nonlocal max_busy, done
        try:
            event = delivery.event
            assert event is not None
            assert event.partitionkey is not None
            key = event.partitionkey
            if key in busy:
                overlap.append(key)
            busy.add(key)
            max_busy = max(max_busy, len(busy))
            arrival.append(key)
            order[key].append(_seq(delivery))
            await asyncio.sleep(rng.random() * 0.003)
            busy.discard(key)
            await delivery.ack()
            done += 1
        except BaseException as exc:  # surfaced below, with the test's message
            failures.append(exc)
            raise

    async def spawn(delivery: Delivery) -> None:
        # like a dispatcher: do not wait for one delivery before taking the next
        task = asyncio.create_task(handle(delivery))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    collectors = [Collector(s, spawn).start() for s in subs]
    events = [Event.new(etype, key=f"k{i % nkeys}", extensions={"seq": i}, stamp_time=False) for i in range(n)]
    for start in range(0, n, 100):
        await transport.publish(events[start : start + 100])
    try:
        await collectors[0].wait_for(lambda: done >= n or bool(failures), ctx.timeout, f"{n} acks")
    finally:
        await asyncio.gather(*(c.stop() for c in collectors))
        for task in list(tasks):
            task.cancel()
    assert not failures, f"handler failed: {failures[0]!r}"
    assert not overlap, f"keys in flight twice at once: {sorted(set(overlap))[:5]}"
    for key, seqs in order.items():
        assert seqs == sorted(seqs), f"key {key} out of order: {seqs[:20]}"
    assert sum(len(s) for s in order.values()) == n, "events lost or duplicated"
    switches = sum(1 for a, b in itertools.pairwise(arrival) if a != b)
    assert switches > nkeys, f"keys did not interleave ({switches} switches)"
    assert max_busy > 1, "keys were never handled concurrently"


async def unacked_held_back_when_ordered(ctx: CaseContext) -> None:
    """The next event of a key waits while the previous one is unsettled or retried."""
    transport, ns = ctx.transport, ctx.ns
    etype = ns.type("ordered")
    sub = await transport.subscribe(etype, ns.group(), prefetch=10, ack_wait=ctx.timeout * 2)
    a1 = Event.new(etype, b"a1", key="a")
    a2 = Event.new(etype, b"a2", key="a")
    b1 = Event.new(etype, b"b1", key="b")
    await transport.publish([a1, a2, b1])
    first = await collect(sub, 2, ctx.timeout)
    by_id = {_id(d): d for d in first}
    assert set(by_id) == {a1.id, b1.id}, "a2 was delivered while a1 was unsettled"
    await assert_no_more(sub, ctx.quiet, "a2 must wait for a1")
    await by_id[b1.id].ack()
    await assert_no_more(sub, ctx.quiet, "a2 must wait for a1 even after b1 is acked")
    if ctx.features.redelivery:
        await by_id[a1.id].retry(0.05)
        again = await next_delivery(sub, ctx.timeout, "a1's retry")
        assert _id(again) == a1.id, "a2 overtook a1 while a1 was being retried"
        assert again.attempt == 2
        await again.ack()
    else:
        await by_id[a1.id].ack()
    last = await next_delivery(sub, ctx.timeout, "a2 once a1 was settled")
    assert _id(last) == a2.id
    await last.ack()
    await assert_no_more(sub, ctx.quiet)
    await sub.close()


async def concurrent_close(ctx: CaseContext) -> None:
    """50 subscriptions (10 groups) closed at once: closes finish, pending iterations
    end, and each group still has every unacked event for its next subscription."""
    transport, ns = ctx.transport, ctx.ns
    etype, n = ns.type("close"), 20
    groups = [ns.group(f"g{i}") for i in range(10)]
    subs = await asyncio.gather(
        *(transport.subscribe(etype, g, ack_wait=ctx.ack_wait) for g in groups for _ in range(5))
    )
    pending = [asyncio.create_task(_next(s)) for s in subs[::5]]
    events = [Event.new(etype, str(i).encode()) for i in range(n)]
    await transport.publish(events)
    await asyncio.sleep(0.05)
    try:
        async with asyncio.timeout(ctx.timeout):
            await asyncio.gather(*(s.close() for s in subs))
            results = await asyncio.gather(*pending, return_exceptions=True)
    except TimeoutError:
        raise AssertionError("closing 50 subscriptions concurrently did not finish") from None
    for result in results:
        assert isinstance(result, (StopAsyncIteration, Delivery)), f"pending iteration: {result!r}"
    for sub in subs[:3]:
        await assert_no_more(sub, 0.05, "a closed subscription must not deliver")
    for group in groups:
        sub = await transport.subscribe(etype, group, ack_wait=ctx.ack_wait)
        got = await collect(sub, n, ctx.timeout, ack=True)
        assert {_id(d) for d in got} == {e.id for e in events}, f"group {group} lost events"
        await sub.close()


async def continue_after_close_and_reopen(ctx: CaseContext) -> None:
    """5,000 events consumed in 5 rounds of open/close: nothing lost, and only
    deliveries left unsettled at a close come again."""
    transport, ns = ctx.transport, ctx.ns
    etype, group, total, rounds, per_round, left = ns.type("reopen"), ns.group(), 5000, 5, 1000, 5
    sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=ctx.ack_wait)
    events = [Event.new(etype, str(i).encode(), stamp_time=False) for i in range(total)]
    for start in range(0, total, 500):
        await transport.publish(events[start : start + 500])
    acked: set[str] = set()
    unsettled: set[str] = set()
    delivered: set[str] = set()

    def check(delivery: Delivery) -> str:
        event_id = _id(delivery)
        assert event_id not in acked, f"{event_id} redelivered after it was acked"
        if event_id in delivered:
            assert event_id in unsettled, f"{event_id} redelivered but was never left unsettled"
        delivered.add(event_id)
        return event_id

    for round_no in range(rounds):
        if round_no:
            sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=ctx.ack_wait)
        # ack as they come, but leave the last few of each round unsettled at close
        got = 0
        iterator = sub.__aiter__()
        try:
            async with asyncio.timeout(ctx.timeout):
                while got < per_round:
                    delivery = await anext(iterator)
                    got += 1
                    event_id = check(delivery)
                    if got <= per_round - left:
                        await delivery.ack()
                        acked.add(event_id)
                    else:
                        unsettled.add(event_id)
        except TimeoutError:
            raise AssertionError(f"round {round_no}: {got} of {per_round} deliveries") from None
        await sub.close()
    sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=ctx.ack_wait)
    iterator = sub.__aiter__()
    try:
        async with asyncio.timeout(ctx.timeout):
            while len(acked) < total:
                delivery = await anext(iterator)
                event_id = check(delivery)
                await delivery.ack()
                acked.add(event_id)
    except TimeoutError:
        raise AssertionError(f"after reopening, only {len(acked)} of {total} events were acked") from None
    assert acked == {e.id for e in events}
    await assert_no_more(sub, ctx.quiet)
    await sub.close()
