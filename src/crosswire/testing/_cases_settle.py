"""Conformance cases about settlement: retry, lease expiry, terminate, late settlement."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from .._envelope import Event
from .._transports.base import Delivery
from ._context import CaseContext
from ._context import event_id as _id
from ._helpers import Collector, assert_no_more, collect, describe, next_delivery

__all__ = [
    "resend_on_error",
    "redelivery_after_ack_wait",
    "continue_after_repeated_errors",
    "terminate_never_redelivers",
    "ack_after_close_harmless",
    "ack_after_transport_close",
]


async def resend_on_error(ctx: CaseContext) -> None:
    """``retry(after)`` redelivers the same event as attempt 2, no sooner than ``after``."""
    transport, ns = ctx.transport, ctx.ns
    etype, delay, n = ns.type("resend"), 0.25, 10
    sub = await transport.subscribe(etype, ns.group(), ack_wait=ctx.ack_wait)
    events = [Event.new(etype, f"e{i}".encode()) for i in range(n)]
    await transport.publish(events)
    retried_at: dict[str, float] = {}
    first = await collect(sub, n, ctx.timeout)
    for delivery in first:
        assert delivery.attempt == 1
        retried_at[_id(delivery)] = time.monotonic()
        await delivery.retry(delay)
    again = await collect(sub, n, ctx.timeout)
    arrived = time.monotonic()
    by_id = {e.id: e for e in events}
    for delivery in again:
        event_id = _id(delivery)
        assert event_id in retried_at, f"redelivered {event_id} was never retried"
        assert delivery.attempt == 2, f"redelivery of {event_id} has attempt {delivery.attempt}"
        assert delivery.event == by_id[event_id], "redelivered event differs"
        await delivery.ack()
    assert {_id(d) for d in again} == set(by_id), "not every retried event came back"
    earliest = min(retried_at.values())
    assert arrived - earliest >= delay - 0.005, "redelivered sooner than the retry delay"
    await assert_no_more(sub, ctx.quiet, "all were acked after the retry")
    await sub.close()


async def redelivery_after_ack_wait(ctx: CaseContext) -> None:
    """An unsettled delivery comes back as attempt 2 once its lease (ack_wait) ends;
    an ``in_progress`` sent within the lease renews it for a whole ack_wait."""
    transport, ns = ctx.transport, ctx.ns
    etype, ack_wait, tries = ns.type("lease"), 2.0, 3  # margin for the in-progress ack on a loaded broker
    sub = await transport.subscribe(etype, ns.group(), ack_wait=ack_wait)
    overruns: list[str] = []
    for _ in range(tries):
        event = Event.new(etype)
        # The lease cannot start before the publish: timing from here, not from when this
        # task got the delivery (it may have waited in a queue), keeps the check honest.
        published = time.monotonic()
        await transport.publish([event])
        first = await next_delivery(sub, ctx.timeout)
        received = time.monotonic()
        assert _id(first) == event.id, f"expected {event.id} (attempt 1), got {describe(first)}"
        await asyncio.sleep(max(0.0, published + ack_wait * 0.5 - time.monotonic()))
        renewed = time.monotonic()
        await first.in_progress()
        again = await next_delivery(sub, ctx.timeout, "the redelivery after ack_wait")
        came_back = time.monotonic()
        assert _id(again) == event.id, f"expected {event.id} again, got {describe(again)}"
        assert again.attempt == 2, f"redelivery after ack_wait has attempt {again.attempt}"
        await first.ack()  # late: harmless
        await again.ack()
        if renewed - published <= ack_wait * 0.8:
            # in time: the broker had at least 0.2 x ack_wait to get the in-progress ack
            assert came_back - renewed >= ack_wait * 0.95, (
                f"in_progress did not extend the lease: redelivered {came_back - renewed:.2f}s after "
                f"in_progress, which was sent {renewed - published:.2f}s after publishing "
                f"(received {received - published:.2f}s after publishing; lease {ack_wait}s)"
            )
            break
        # This task ran too late to renew within the lease: not a transport fault, but
        # nothing was checked either. Try again with a fresh event; fail if it never fits.
        overruns.append(f"{renewed - published:.2f}s")
    else:
        raise AssertionError(
            f"in_progress was never checked: in {tries} tries the loop sent it only after "
            f"{', '.join(overruns)} of a {ack_wait}s lease (need <= {ack_wait * 0.8:.1f}s)"
        )
    await assert_no_more(sub, ctx.quiet)
    await sub.close()


async def continue_after_repeated_errors(ctx: CaseContext) -> None:
    """Each event fails three times, then succeeds: attempts 1..4, then never again."""
    transport, ns = ctx.transport, ctx.ns
    etype, n, fails = ns.type("errors"), 50, 3
    sub = await transport.subscribe(etype, ns.group(), prefetch=16, ack_wait=ctx.ack_wait)
    attempts: dict[str, list[int]] = defaultdict(list)

    async def handle(delivery: Delivery) -> None:
        attempts[_id(delivery)].append(delivery.attempt)
        if delivery.attempt <= fails:
            await delivery.retry(0.01)
        else:
            await delivery.ack()

    collector = Collector(sub, handle).start()
    events = [Event.new(etype, str(i).encode()) for i in range(n)]
    await transport.publish(events)
    await collector.wait_count(n * (fails + 1), ctx.timeout)
    await asyncio.sleep(ctx.quiet)
    await collector.stop()
    assert set(attempts) == {e.id for e in events}, f"{len(set(attempts) ^ {e.id for e in events})} ids differ"
    wrong = {k: v for k, v in attempts.items() if v != list(range(1, fails + 2))}
    assert not wrong, f"attempt sequences differ from 1..{fails + 1}: {list(wrong.items())[:3]}"


async def terminate_never_redelivers(ctx: CaseContext) -> None:
    """A terminated delivery never comes back, not after retry delays nor ack_wait."""
    transport, ns = ctx.transport, ctx.ns
    # long enough that the terminations land before the lease ends, even under the x20 stress
    etype, n, ack_wait = ns.type("term"), 10, 2.0
    sub = await transport.subscribe(etype, ns.group(), ack_wait=ack_wait)
    events = [Event.new(etype, str(i).encode()) for i in range(n)]
    await transport.publish(events)
    got = await collect(sub, n, ctx.timeout)
    for delivery in got:
        await delivery.terminate()
        await delivery.ack()  # second settlement: ignored
        await delivery.retry(0)
    marker = Event.new(etype, b"marker")
    await transport.publish([marker])
    after = await next_delivery(sub, ctx.timeout, "the marker")
    assert _id(after) == marker.id, "a terminated event came back"
    await after.ack()
    await assert_no_more(sub, ack_wait * 2, "a terminated event came back after ack_wait")
    await sub.close()


async def ack_after_close_harmless(ctx: CaseContext) -> None:
    """Settling after the subscription closed raises nothing; the group goes on."""
    transport, ns = ctx.transport, ctx.ns
    etype, group = ns.type("late"), ns.group()
    sub = await transport.subscribe(etype, group, ack_wait=ctx.ack_wait)
    first = Event.new(etype, b"first")
    await transport.publish([first])
    delivery = await next_delivery(sub, ctx.timeout)
    await sub.close()
    await sub.close()  # idempotent
    await delivery.ack()
    await delivery.in_progress()
    await delivery.retry(0)
    await delivery.terminate()
    sub = await transport.subscribe(etype, group, ack_wait=ctx.ack_wait)
    second = Event.new(etype, b"second")
    await transport.publish([second])
    seen: list[str] = []
    iterator = sub.__aiter__()
    try:
        async with asyncio.timeout(ctx.timeout):
            while second.id not in seen:
                d = await anext(iterator)
                seen.append(_id(d))
                await d.ack()
    except TimeoutError:
        raise AssertionError(f"the reopened group did not deliver a new event (saw {seen})") from None
    assert set(seen) <= {first.id, second.id}, f"unexpected events: {seen}"
    assert seen.count(second.id) == 1
    await sub.close()


async def ack_after_transport_close(ctx: CaseContext) -> None:
    """Settling after the transport itself closed raises nothing (and closing it twice,
    here and in the fixture, is harmless)."""
    transport, ns = ctx.transport, ctx.ns
    sub = await transport.subscribe(ns.type("x"), ns.group(), ack_wait=ctx.ack_wait)
    await transport.publish([Event.new(ns.type("x"))])
    delivery = await next_delivery(sub, ctx.timeout)
    await transport.close()
    await delivery.ack()
    await delivery.retry(0)
    await delivery.terminate()
    await sub.close()
