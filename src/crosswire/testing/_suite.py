"""The universal transport suite: subclass :class:`TransportConformance` in a pytest
module, set ``features`` and provide an async ``transport`` fixture.

Every case runs under its own :class:`Namespace` (type prefix and group names), so a
durable transport can share one broker across tests, and :meth:`test_stress` can run
the whole suite many times concurrently on one transport.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from .._envelope import Event, decode_event, encode_event
from .._transports.base import Delivery, Features, Subscription, Transport
from ._helpers import Collector, Namespace, assert_no_more, collect, next_delivery

__all__ = ["TransportConformance"]

Case = Callable[[Transport, Namespace], Awaitable[None]]


def _id(delivery: Delivery) -> str:
    event = delivery.event
    assert event is not None, f"delivery did not decode: {delivery.decode_error}"
    return event.id


def _seq(delivery: Delivery) -> int:
    event = delivery.event
    assert event is not None, f"delivery did not decode: {delivery.decode_error}"
    value = event.extensions["seq"]
    assert isinstance(value, int)
    return value


class TransportConformance:
    """Behaviour every transport must show, switched by its :class:`Features`.

    Subclass it (the subclass name must start with ``Test``) and provide::

        features = Features(durable=False)

        @pytest.fixture
        async def transport(self):
            t = MyTransport(); await t.start(); yield t; await t.close()

    Tunables (class attributes): ``timeout`` bounds every wait, in seconds;
    ``quiet`` is how long "nothing more arrives" is watched; ``ack_wait`` is passed to
    subscriptions whose unsettled deliveries must come back on a durable transport.
    """

    features: ClassVar[Features] = Features()
    timeout: ClassVar[float] = 30.0
    quiet: ClassVar[float] = 0.3
    ack_wait: ClassVar[float] = 2.0
    stress_rounds: ClassVar[int] = 20

    # -- plumbing ---------------------------------------------------------------------

    def _require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self.features, n)]
        if missing:
            pytest.skip(f"transport does not declare {', '.join(missing)}")

    def _cases(self) -> list[tuple[str, tuple[str, ...], Case]]:
        """(name, required features, case) for the stress runs."""
        return [
            ("payload_and_metadata_intact", (), self.case_payload_and_metadata_intact),
            ("concurrent_subscribe", ("consumer_groups",), self.case_concurrent_subscribe),
            ("resend_on_error", ("redelivery",), self.case_resend_on_error),
            ("redelivery_after_ack_wait", ("redelivery",), self.case_redelivery_after_ack_wait),
            ("unacked_held_back_when_ordered", ("ordered_per_key",), self.case_unacked_held_back_when_ordered),
            ("continue_after_close_and_reopen", ("redelivery",), self.case_continue_after_close_and_reopen),
            ("concurrent_close", (), self.case_concurrent_close),
            ("continue_after_repeated_errors", ("redelivery",), self.case_continue_after_repeated_errors),
            ("per_key_order", ("ordered_per_key", "consumer_groups"), self.case_per_key_order),
            ("publisher_close", (), self.case_publisher_close),
            ("topic_isolation", (), self.case_topic_isolation),
            ("consumer_groups", ("consumer_groups",), self.case_consumer_groups),
            ("publish_dedup", (), self.case_publish_dedup),
            ("terminate_never_redelivers", ("redelivery",), self.case_terminate_never_redelivers),
            ("ack_after_close_harmless", (), self.case_ack_after_close_harmless),
        ]

    @staticmethod
    async def _next(subscription: Subscription) -> Delivery:
        return await anext(subscription.__aiter__())

    # -- tests ------------------------------------------------------------------------

    async def test_payload_and_metadata_intact(self, transport: Transport) -> None:
        await self.case_payload_and_metadata_intact(transport, Namespace())

    async def test_concurrent_subscribe(self, transport: Transport) -> None:
        self._require("consumer_groups")
        await self.case_concurrent_subscribe(transport, Namespace())

    async def test_resend_on_error(self, transport: Transport) -> None:
        self._require("redelivery")
        await self.case_resend_on_error(transport, Namespace())

    async def test_redelivery_after_ack_wait(self, transport: Transport) -> None:
        self._require("redelivery")
        await self.case_redelivery_after_ack_wait(transport, Namespace())

    async def test_unacked_held_back_when_ordered(self, transport: Transport) -> None:
        self._require("ordered_per_key")
        await self.case_unacked_held_back_when_ordered(transport, Namespace())

    async def test_continue_after_close_and_reopen(self, transport: Transport) -> None:
        self._require("redelivery")
        await self.case_continue_after_close_and_reopen(transport, Namespace())

    async def test_concurrent_close(self, transport: Transport) -> None:
        await self.case_concurrent_close(transport, Namespace())

    async def test_continue_after_repeated_errors(self, transport: Transport) -> None:
        self._require("redelivery")
        await self.case_continue_after_repeated_errors(transport, Namespace())

    async def test_per_key_order(self, transport: Transport) -> None:
        self._require("ordered_per_key", "consumer_groups")
        await self.case_per_key_order(transport, Namespace())

    async def test_publisher_close(self, transport: Transport) -> None:
        await self.case_publisher_close(transport, Namespace())

    async def test_topic_isolation(self, transport: Transport) -> None:
        await self.case_topic_isolation(transport, Namespace())

    async def test_consumer_groups(self, transport: Transport) -> None:
        self._require("consumer_groups")
        await self.case_consumer_groups(transport, Namespace())

    async def test_publish_dedup(self, transport: Transport) -> None:
        await self.case_publish_dedup(transport, Namespace())

    async def test_terminate_never_redelivers(self, transport: Transport) -> None:
        self._require("redelivery")
        await self.case_terminate_never_redelivers(transport, Namespace())

    async def test_ack_after_close_harmless(self, transport: Transport) -> None:
        await self.case_ack_after_close_harmless(transport, Namespace())
        # and after the transport itself closed (the fixture's close must stay idempotent)
        ns = Namespace()
        sub = await transport.subscribe(ns.type("x"), ns.group(), ack_wait=self.ack_wait)
        await transport.publish([Event.new(ns.type("x"))])
        delivery = await next_delivery(sub, self.timeout)
        await transport.close()
        await delivery.ack()
        await delivery.retry(0)
        await delivery.terminate()
        await sub.close()

    async def test_stress_x3(self, transport: Transport) -> None:
        """The whole suite, three times concurrently on one transport."""
        await self._stress(transport, 3)

    async def test_stress(self, transport: Transport) -> None:
        """The whole suite, ``stress_rounds`` times concurrently on one transport.

        A few seconds on the memory transport; a slower transport should override it
        with ``@pytest.mark.soak`` (see docs/transports.md).
        """
        await self._stress(transport, self.stress_rounds)

    async def _stress(self, transport: Transport, rounds: int) -> None:
        cases = [(name, case) for name, needs, case in self._cases() if all(getattr(self.features, n) for n in needs)]

        async def one(round_no: int, name: str, case: Case) -> None:
            ns = Namespace()
            try:
                await case(transport, ns)
            except AssertionError as exc:
                raise AssertionError(f"round {round_no} case {name} ({ns}): {exc}") from exc

        async with asyncio.TaskGroup() as tg:
            for round_no in range(rounds):
                for name, case in cases:
                    tg.create_task(one(round_no, name, case))

    # -- cases ------------------------------------------------------------------------

    async def case_payload_and_metadata_intact(self, transport: Transport, ns: Namespace) -> None:
        """100 events with every envelope field set arrive byte-identical."""
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
        got = await collect(sub, 100, self.timeout, ack=True)
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
        await assert_no_more(sub, self.quiet, "all 100 were acked")
        await sub.close()

    async def case_concurrent_subscribe(self, transport: Transport, ns: Namespace) -> None:
        """5,000 events over 50 consumers of one group: each handled exactly once."""
        etype, group, total = ns.type("work"), ns.group(), 5000
        subs = await asyncio.gather(*(transport.subscribe(etype, group, prefetch=32) for _ in range(50)))
        collectors = [Collector(s).start() for s in subs]
        events = [Event.new(etype, str(i).encode(), stamp_time=False) for i in range(total)]
        for start in range(0, total, 250):
            await transport.publish(events[start : start + 250])

        def count() -> int:
            return sum(len(c.deliveries) for c in collectors)

        await collectors[0].wait_for(lambda: count() >= total, self.timeout, f"{total} deliveries")
        await asyncio.sleep(self.quiet)
        ids = Counter(_id(d) for c in collectors for d in c.deliveries)
        assert set(ids) == {e.id for e in events}, f"{total - len(ids)} events never arrived"
        duplicates = [i for i, c in ids.items() if c > 1]
        assert not duplicates, f"{len(duplicates)} events delivered more than once"
        await asyncio.gather(*(c.stop() for c in collectors))

    async def case_resend_on_error(self, transport: Transport, ns: Namespace) -> None:
        """``retry(after)`` redelivers the same event as attempt 2, no sooner than ``after``."""
        etype, delay, n = ns.type("resend"), 0.25, 10
        sub = await transport.subscribe(etype, ns.group(), ack_wait=self.ack_wait)
        events = [Event.new(etype, f"e{i}".encode()) for i in range(n)]
        await transport.publish(events)
        retried_at: dict[str, float] = {}
        first = await collect(sub, n, self.timeout)
        for delivery in first:
            assert delivery.attempt == 1
            retried_at[_id(delivery)] = time.monotonic()
            await delivery.retry(delay)
        again = await collect(sub, n, self.timeout)
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
        await assert_no_more(sub, self.quiet, "all were acked after the retry")
        await sub.close()

    async def case_redelivery_after_ack_wait(self, transport: Transport, ns: Namespace) -> None:
        """An unsettled delivery comes back after ack_wait; ``in_progress`` postpones it."""
        etype, ack_wait = ns.type("lease"), 2.0  # margin for the in-progress ack to reach a loaded broker
        sub = await transport.subscribe(etype, ns.group(), ack_wait=ack_wait)
        await transport.publish([Event.new(etype)])
        first = await next_delivery(sub, self.timeout)
        received = time.monotonic()
        await asyncio.sleep(ack_wait * 0.6)
        extended = time.monotonic()
        await first.in_progress()
        again = await next_delivery(sub, self.timeout, "the redelivery after ack_wait")
        if extended - received < ack_wait * 0.8:  # a loaded loop may overrun the sleep: then it's moot
            assert time.monotonic() - extended >= ack_wait * 0.95, "in_progress did not extend the lease"
        assert _id(again) == _id(first)
        assert again.attempt == 2, f"redelivery after ack_wait has attempt {again.attempt}"
        await first.ack()  # late: harmless
        await again.ack()
        await assert_no_more(sub, self.quiet)
        await sub.close()

    async def case_unacked_held_back_when_ordered(self, transport: Transport, ns: Namespace) -> None:
        """The next event of a key waits while the previous one is unsettled or retried."""
        etype = ns.type("ordered")
        sub = await transport.subscribe(etype, ns.group(), prefetch=10, ack_wait=self.timeout * 2)
        a1 = Event.new(etype, b"a1", key="a")
        a2 = Event.new(etype, b"a2", key="a")
        b1 = Event.new(etype, b"b1", key="b")
        await transport.publish([a1, a2, b1])
        first = await collect(sub, 2, self.timeout)
        by_id = {_id(d): d for d in first}
        assert set(by_id) == {a1.id, b1.id}, "a2 was delivered while a1 was unsettled"
        await assert_no_more(sub, self.quiet, "a2 must wait for a1")
        await by_id[b1.id].ack()
        await assert_no_more(sub, self.quiet, "a2 must wait for a1 even after b1 is acked")
        if self.features.redelivery:
            await by_id[a1.id].retry(0.05)
            again = await next_delivery(sub, self.timeout, "a1's retry")
            assert _id(again) == a1.id, "a2 overtook a1 while a1 was being retried"
            assert again.attempt == 2
            await again.ack()
        else:
            await by_id[a1.id].ack()
        last = await next_delivery(sub, self.timeout, "a2 once a1 was settled")
        assert _id(last) == a2.id
        await last.ack()
        await assert_no_more(sub, self.quiet)
        await sub.close()

    async def case_continue_after_close_and_reopen(self, transport: Transport, ns: Namespace) -> None:
        """5,000 events consumed in 5 rounds of open/close: nothing lost, and only
        deliveries left unsettled at a close come again."""
        etype, group, total, rounds, per_round, left = ns.type("reopen"), ns.group(), 5000, 5, 1000, 5
        sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=self.ack_wait)
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
                sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=self.ack_wait)
            # ack as they come, but leave the last few of each round unsettled at close
            got = 0
            iterator = sub.__aiter__()
            try:
                async with asyncio.timeout(self.timeout):
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
        sub = await transport.subscribe(etype, group, prefetch=64, ack_wait=self.ack_wait)
        iterator = sub.__aiter__()
        try:
            async with asyncio.timeout(self.timeout):
                while len(acked) < total:
                    delivery = await anext(iterator)
                    event_id = check(delivery)
                    await delivery.ack()
                    acked.add(event_id)
        except TimeoutError:
            raise AssertionError(f"after reopening, only {len(acked)} of {total} events were acked") from None
        assert acked == {e.id for e in events}
        await assert_no_more(sub, self.quiet)
        await sub.close()

    async def case_concurrent_close(self, transport: Transport, ns: Namespace) -> None:
        """50 subscriptions (10 groups) closed at once: closes finish, pending iterations
        end, and each group still has every unacked event for its next subscription."""
        etype, n = ns.type("close"), 20
        groups = [ns.group(f"g{i}") for i in range(10)]
        subs = await asyncio.gather(
            *(transport.subscribe(etype, g, ack_wait=self.ack_wait) for g in groups for _ in range(5))
        )
        pending = [asyncio.create_task(self._next(s)) for s in subs[::5]]
        events = [Event.new(etype, str(i).encode()) for i in range(n)]
        await transport.publish(events)
        await asyncio.sleep(0.05)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*(s.close() for s in subs))
                results = await asyncio.gather(*pending, return_exceptions=True)
        except TimeoutError:
            raise AssertionError("closing 50 subscriptions concurrently did not finish") from None
        for result in results:
            assert isinstance(result, (StopAsyncIteration, Delivery)), f"pending iteration: {result!r}"
        for sub in subs[:3]:
            await assert_no_more(sub, 0.05, "a closed subscription must not deliver")
        for group in groups:
            sub = await transport.subscribe(etype, group, ack_wait=self.ack_wait)
            got = await collect(sub, n, self.timeout, ack=True)
            assert {_id(d) for d in got} == {e.id for e in events}, f"group {group} lost events"
            await sub.close()

    async def case_continue_after_repeated_errors(self, transport: Transport, ns: Namespace) -> None:
        """Each event fails three times, then succeeds: attempts 1..4, then never again."""
        etype, n, fails = ns.type("errors"), 50, 3
        sub = await transport.subscribe(etype, ns.group(), prefetch=16, ack_wait=self.ack_wait)
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
        await collector.wait_count(n * (fails + 1), self.timeout)
        await asyncio.sleep(self.quiet)
        await collector.stop()
        assert set(attempts) == {e.id for e in events}
        wrong = {k: v for k, v in attempts.items() if v != list(range(1, fails + 2))}
        assert not wrong, f"attempt sequences differ from 1..{fails + 1}: {list(wrong.items())[:3]}"

    async def case_per_key_order(self, transport: Transport, ns: Namespace) -> None:
        """1,000 events over 16 keys, 4 competing consumers each handling up to 16
        deliveries concurrently: each key's events are handled one at a time, in
        publish order, while keys interleave."""
        etype, group, n, nkeys = ns.type("keys"), ns.group(), 1000, 16
        subs = await asyncio.gather(
            *(transport.subscribe(etype, group, prefetch=16, ack_wait=self.timeout * 2) for _ in range(4))
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
            await collectors[0].wait_for(lambda: done >= n or bool(failures), self.timeout, f"{n} acks")
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

    async def case_publisher_close(self, transport: Transport, ns: Namespace) -> None:
        """20 concurrent publishers x 500 events finish; all 10,000 arrive exactly once."""
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

        async with asyncio.timeout(self.timeout):
            await asyncio.gather(*(publisher(p) for p in range(publishers)))
        total = publishers * per
        await collector.wait_count(total, self.timeout)
        await asyncio.sleep(self.quiet)
        await collector.stop()
        ids = Counter(_id(d) for d in collector.deliveries)
        assert set(ids) == set(sent), f"{len(set(sent) - set(ids))} published events never arrived"
        assert len(collector.deliveries) == total, f"{len(collector.deliveries) - total} extra deliveries"

    async def case_topic_isolation(self, transport: Transport, ns: Namespace) -> None:
        """A pattern sees only matching types; ``*`` is one token, ``>`` one or more."""
        created, cancelled = ns.type("order", "created"), ns.type("order", "cancelled")
        created_eu, payment = ns.type("order", "created", "eu"), ns.type("payment", "created")
        other = Namespace().type("order", "created")  # another namespace entirely
        expect: dict[str, set[str]] = {created: {created}}
        if self.features.wildcards:
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
            Event.new(t, f"{t}:{i}".encode())
            for i in range(per)
            for t in (created, cancelled, created_eu, payment, other)
        ]
        await transport.publish(events)
        for pattern, types in expect.items():
            sub = subs[pattern]
            got = await collect(sub, per * len(types), self.timeout, ack=True)
            seen = {d.event.type for d in got if d.event is not None}
            assert seen == types, f"pattern {pattern} saw {sorted(seen)}, expected {sorted(types)}"
            await assert_no_more(sub, self.quiet, f"pattern {pattern} got a non-matching event")
            await sub.close()

    async def case_consumer_groups(self, transport: Transport, ns: Namespace) -> None:
        """Two groups each get every event; the three members of one group split it."""
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
        await alone.wait_count(n, self.timeout)
        await members[0].wait_for(
            lambda: sum(len(m.deliveries) for m in members) >= n, self.timeout, f"{n} shared deliveries"
        )
        await asyncio.sleep(self.quiet)
        await asyncio.gather(alone.stop(), *(m.stop() for m in members))
        want = {e.id for e in events}
        solo_ids = [_id(d) for d in alone.deliveries]
        assert sorted(solo_ids) == sorted(want), "the single-member group did not get every event once"
        shared_ids = [_id(d) for m in members for d in m.deliveries]
        assert sorted(shared_ids) == sorted(want), "the shared group did not get every event once"
        counts = [len(m.deliveries) for m in members]
        assert all(c > 0 for c in counts), f"members did not split the work: {counts}"

    async def case_publish_dedup(self, transport: Transport, ns: Namespace) -> None:
        """Publishing an id again (in a later or the same batch) stores it once."""
        etype = ns.type("dedup")
        sub = await transport.subscribe(etype, ns.group())
        e1, e2, e3 = (Event.new(etype, str(i).encode()) for i in range(3))
        await transport.publish([e1])
        await transport.publish([e1, e2])
        await transport.publish([e2, e3, e3])
        got = await collect(sub, 3, self.timeout, ack=True)
        assert sorted(_id(d) for d in got) == sorted([e1.id, e2.id, e3.id])
        await assert_no_more(sub, self.quiet, "a duplicate id was stored twice")
        await sub.close()

    async def case_terminate_never_redelivers(self, transport: Transport, ns: Namespace) -> None:
        """A terminated delivery never comes back, not after retry delays nor ack_wait."""
        # long enough that the terminations land before the lease ends, even under the x20 stress
        etype, n, ack_wait = ns.type("term"), 10, 2.0
        sub = await transport.subscribe(etype, ns.group(), ack_wait=ack_wait)
        events = [Event.new(etype, str(i).encode()) for i in range(n)]
        await transport.publish(events)
        got = await collect(sub, n, self.timeout)
        for delivery in got:
            await delivery.terminate()
            await delivery.ack()  # second settlement: ignored
            await delivery.retry(0)
        marker = Event.new(etype, b"marker")
        await transport.publish([marker])
        after = await next_delivery(sub, self.timeout, "the marker")
        assert _id(after) == marker.id, "a terminated event came back"
        await after.ack()
        await assert_no_more(sub, ack_wait * 2, "a terminated event came back after ack_wait")
        await sub.close()

    async def case_ack_after_close_harmless(self, transport: Transport, ns: Namespace) -> None:
        """Settling after the subscription closed raises nothing; the group goes on."""
        etype, group = ns.type("late"), ns.group()
        sub = await transport.subscribe(etype, group, ack_wait=self.ack_wait)
        first = Event.new(etype, b"first")
        await transport.publish([first])
        delivery = await next_delivery(sub, self.timeout)
        await sub.close()
        await sub.close()  # idempotent
        await delivery.ack()
        await delivery.in_progress()
        await delivery.retry(0)
        await delivery.terminate()
        sub = await transport.subscribe(etype, group, ack_wait=self.ack_wait)
        second = Event.new(etype, b"second")
        await transport.publish([second])
        seen: list[str] = []
        iterator = sub.__aiter__()
        try:
            async with asyncio.timeout(self.timeout):
                while second.id not in seen:
                    d = await anext(iterator)
                    seen.append(_id(d))
                    await d.ack()
        except TimeoutError:
            raise AssertionError(f"the reopened group did not deliver a new event (saw {seen})") from None
        assert set(seen) <= {first.id, second.id}, f"unexpected events: {seen}"
        assert seen.count(second.id) == 1
        await sub.close()
