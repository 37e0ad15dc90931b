"""The node on the memory transport: what a user of App/Node sees."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import msgspec
import pytest

import crosswire
from crosswire import App, ErrorCode, Event, Node, Reject, Retry, RetryLater

from .recording import RecordingTransport


class Order(msgspec.Struct):
    id: int
    qty: int


FAST = Retry(max_attempts=3, initial=0.001, max_delay=0.01, jitter=0)


async def test_the_readme_example_runs() -> None:
    app = App("orders")
    reserved: list[int] = []

    @app.handler("order.created", timeout=2.0, retry=Retry(max_attempts=5), concurrency=32)
    async def reserve_stock(event: Event[Order]) -> None:
        reserved.append(event.payload.id)

    async with Node(app) as node:
        await node.submit("order.created", Order(id=42, qty=1), key="order-42")
        await node.wait_idle(5)
    assert reserved == [42]
    assert node.state is crosswire.State.STOPPED


@pytest.mark.parametrize("kind", ["struct", "dataclass", "dict", "bytes"])
async def test_payload_decodes_into_the_annotated_type(kind: str) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    app = App("decode")
    got: list[Any] = []
    annotation: Any = {"struct": Order, "dataclass": Point, "dict": dict[str, int], "bytes": bytes}[kind]
    payload: Any = {"struct": Order(1, 2), "dataclass": Point(3, 4), "dict": {"a": 1}, "bytes": b"\x00raw"}[kind]

    async def handle(event: Event[Any]) -> None:
        got.append(event.payload)

    handle.__annotations__["event"] = Event[annotation]
    app.handler("t.x")(handle)
    async with Node(app) as node:
        await node.submit("t.x", payload)
        await node.wait_idle(5)
    assert got == [payload]


async def test_undecodable_payload_is_dead_lettered_without_retry() -> None:
    app = App("bad")
    calls = 0

    @app.handler("order.created", retry=FAST)
    async def h(event: Event[Order]) -> None:
        nonlocal calls
        calls += 1

    async with Node(app) as node:
        await node.submit("order.created", {"id": "not-an-int"})
        await node.wait_idle(5)
        letters = await node.dead_letters.list()
    assert calls == 0
    assert len(letters) == 1
    assert letters[0].error.code is ErrorCode.INVALID_ARGUMENT
    assert not letters[0].error.retryable
    assert "does not decode as Order" in letters[0].error.message
    assert len(letters[0].attempts) == 1


async def test_sync_handlers_run_in_threads() -> None:
    app = App("sync")
    threads: set[int] = set()

    @app.handler("t.sync", concurrency=4)
    def blocking(event: Event[bytes]) -> None:
        time.sleep(0.01)
        threads.add(threading.get_ident())

    async with Node(app) as node:
        for _ in range(8):
            await node.submit("t.sync", b"x")
        await node.wait_idle(5)
    assert threading.get_ident() not in threads
    assert len(threads) >= 2


async def test_fan_out_settles_each_binding_on_its_own() -> None:
    app = App("fan")
    seen: list[str] = []

    @app.handler("order.created", name="a")
    async def a(event: Event[Any]) -> None:
        seen.append("a")

    @app.handler("order.*", name="b", retry=FAST)
    async def b(event: Event[Any]) -> None:
        raise Reject("b never wants it")

    @app.handler("order.>", name="c")
    async def c(event: Event[Any]) -> None:
        seen.append("c")

    @app.handler("invoice.created", name="d")
    async def d(event: Event[Any]) -> None:
        seen.append("d")

    transport = RecordingTransport()
    async with Node(app, transport) as node:
        await node.submit("order.created", b"1")
        await node.wait_idle(5)
        letters = await node.dead_letters.list()
    assert sorted(seen) == ["a", "c"]
    assert [letter.binding for letter in letters] == ["b"]
    assert len(transport.log.of("ack")) == 2
    assert len(transport.log.of("terminate")) == 1


async def test_retry_then_success_and_retry_after_is_honoured() -> None:
    app = App("retry")
    times: list[float] = []

    @app.handler("t.flaky", retry=Retry(max_attempts=4, initial=0.001, jitter=0))
    async def flaky(event: Event[Any]) -> None:
        times.append(time.monotonic())
        if event.attempt == 1:
            raise RetryLater(after=0.2)
        if event.attempt == 2:
            raise RuntimeError("boom")

    async with Node(app) as node:
        await node.submit("t.flaky", b"")
        await node.wait_idle(5)
        assert await node.dead_letters.list() == []
        stats = node.statistics().bindings["flaky"]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.19  # retry_after wins over the 1 ms backoff
    assert stats.handled == 1 and stats.retried == 2


async def test_gives_up_after_max_attempts_with_history() -> None:
    app = App("giveup")
    calls = 0

    @app.handler("t.bad", retry=FAST)
    async def bad(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"down on attempt {event.attempt}")

    async with Node(app) as node:
        event = await node.submit("t.bad", b"payload")
        await node.wait_idle(5)
        (letter,) = await node.dead_letters.list()
    assert calls == 3
    assert letter.event is not None and letter.event.id == event.id and letter.event.data == b"payload"
    assert letter.error.code is ErrorCode.HANDLER_ERROR
    assert [a.number for a in letter.attempts] == [1, 2, 3]
    assert "down on attempt 3" in letter.error.message


async def test_timeout_is_an_error_envelope_and_retried() -> None:
    app = App("timeout")
    attempts: list[int] = []

    @app.handler("t.slow", timeout=0.05, retry=Retry(max_attempts=2, initial=0.001))
    async def slow(event: Event[Any]) -> None:
        attempts.append(event.attempt)
        await asyncio.sleep(10)

    async with Node(app) as node:
        await node.submit("t.slow", b"")
        await node.wait_idle(5)
        (letter,) = await node.dead_letters.list()
    assert attempts == [1, 2]
    assert letter.error.code is ErrorCode.TIMEOUT and letter.error.retryable


async def test_event_deadline_travels_and_bounds_the_attempt() -> None:
    app = App("deadline")
    seen: list[int | None] = []

    @app.handler("t.deadline", timeout=30, retry=Retry(max_attempts=1))
    async def h(event: Event[Any]) -> None:
        seen.append(event.deadline)
        await asyncio.sleep(5)

    async with Node(app) as node:
        t0 = time.monotonic()
        await node.submit("t.deadline", b"", deadline=0.1)
        await node.wait_idle(5)
        elapsed = time.monotonic() - t0
        (letter,) = await node.dead_letters.list()
    assert seen[0] is not None
    assert elapsed < 2
    assert letter.error.code is ErrorCode.TIMEOUT


async def test_per_key_order_with_parallel_keys() -> None:
    app = App("order")
    seen: dict[str, list[int]] = {}
    running = 0
    peak = 0

    @app.handler("t.ordered", concurrency=16)
    async def h(event: Event[dict[str, int]]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        seen.setdefault(event.key or "", []).append(event.payload["n"])
        running -= 1

    async with Node(app) as node:
        for n in range(400):
            await node.submit("t.ordered", {"n": n}, key=f"k{n % 8}")
        await node.wait_idle(10)
    assert set(seen) == {f"k{i}" for i in range(8)}
    for key, ns in seen.items():
        assert ns == sorted(ns), f"key {key} out of order"
        assert len(ns) == 50
    assert peak > 1  # different keys ran in parallel


async def test_dedup_runs_a_completed_event_once() -> None:
    app = App("dedup")
    calls = 0

    @app.handler("t.pay")
    async def pay(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1

    async with Node(app) as node:
        await node.submit("t.pay", b"", idempotency_key="pay-1")
        await node.wait_idle(5)
        await node.submit("t.pay", b"", idempotency_key="pay-1")  # a new event id, same key
        await node.wait_idle(5)
        stats = node.statistics().bindings["pay"]
    assert calls == 1
    assert stats.deduplicated == 1 and stats.handled == 2


async def test_concurrent_duplicates_run_once() -> None:
    app = App("dedup2")
    calls = 0

    @app.handler("t.once", concurrency=8)
    async def once(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)

    async with Node(app) as node:
        await asyncio.gather(*(node.submit("t.once", b"", idempotency_key="same") for _ in range(5)))
        await node.wait_idle(5)
    assert calls == 1


async def test_breaker_opens_and_waits_instead_of_losing_events() -> None:
    app = App("breaker")
    failing = True
    calls = 0

    @app.handler(
        "t.dep",
        retry=Retry(max_attempts=50, initial=0.001, max_delay=0.005),
        breaker=crosswire.Breaker(minimum_calls=3, reset_after=0.2),
        concurrency=1,
    )
    async def dep(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        if failing:
            raise ConnectionError("dependency down")

    async with Node(app) as node:
        await node.submit("t.dep", b"")
        await asyncio.sleep(0.1)
        breaker = node.statistics().bindings["dep"].breaker
        assert breaker.state == "open"
        calls_while_open = calls
        await asyncio.sleep(0.05)
        assert calls == calls_while_open  # open: no calls go through
        failing = False
        await node.wait_idle(5)
        stats = node.statistics().bindings["dep"]
    assert stats.handled == 1 and stats.dead_lettered == 0
    assert stats.breaker.state == "closed"
    assert stats.breaker.times_opened >= 1


async def test_backpressure_blocks_then_raises() -> None:
    app = App("bp")
    gate = asyncio.Event()

    @app.handler("t.slow", concurrency=1)
    async def slow(event: Event[Any]) -> None:
        await gate.wait()

    async with Node(app, max_pending=3, submit_timeout=0.1) as node:
        for _ in range(3):
            await node.submit("t.slow", b"")
        with pytest.raises(crosswire.BackpressureError, match="stayed full"):
            await node.submit("t.slow", b"")
        gate.set()
        await node.wait_idle(5)
        await node.submit("t.slow", b"")  # capacity is back
        await node.wait_idle(5)
        assert node.statistics().bindings["slow"].handled == 4


async def test_backpressure_reject_policy() -> None:
    app = App("bp2")
    gate = asyncio.Event()

    @app.handler("t.slow")
    async def slow(event: Event[Any]) -> None:
        await gate.wait()

    async with Node(app, max_pending=1, on_full="reject") as node:
        await node.submit("t.slow", b"")
        with pytest.raises(crosswire.BackpressureError, match="rejected"):
            await node.submit("t.slow", b"")
        gate.set()
        await node.wait_idle(5)


async def test_unroutable_type_on_memory_is_an_error_not_a_silent_drop() -> None:
    app = App("none")

    @app.handler("t.a")
    async def a(event: Event[Any]) -> None: ...

    async with Node(app) as node:
        with pytest.raises(crosswire.ConfigurationError, match=r"no handler for event type 't\.b'"):
            await node.submit("t.b", b"")
        with pytest.raises(ValueError, match="whitespace"):
            await node.submit("t b", b"")


async def test_emitted_events_carry_lineage_and_are_handled() -> None:
    app = App("emit")
    children: list[Event[Any]] = []

    @app.handler("order.created")
    async def created(event: Event[Any]) -> Event[Any]:
        return Event.new("order.validated", event.data)

    @app.handler("order.validated")
    async def validated(event: Event[Any]) -> None:
        children.append(event)

    async with Node(app) as node:
        parent = await node.submit("order.created", b"x", key="order-1")
        await node.wait_idle(5)
    (child,) = children
    assert child.causationid == parent.id
    assert child.correlationid == parent.id
    assert child.partitionkey == "order-1"
    assert child.source == "/emit"


async def test_lifecycle_hooks_and_states() -> None:
    app = App("life")
    order: list[str] = []

    @app.on_init
    async def init() -> None:
        order.append("init")

    @app.on_warmup
    async def warm() -> None:
        order.append("warmup")

    @app.on_shutdown
    async def bye() -> None:
        order.append("shutdown")

    @app.handler("t.x")
    async def h(event: Event[Any]) -> None: ...

    node = Node(app)
    assert node.state is crosswire.State.REGISTERED
    async with node:
        assert node.ready
        assert order == ["init", "warmup"]
    assert order == ["init", "warmup", "shutdown"]
    assert [s.value for s in node.lifecycle.history] == [
        "registered",
        "initializing",
        "warming",
        "ready",
        "draining",
        "stopped",
    ]
    with pytest.raises(crosswire.ConfigurationError, match="register everything before start"):
        app.handler("t.y")(h)


async def test_failed_init_hook_fails_the_start_cleanly() -> None:
    app = App("failing")

    @app.on_init
    async def init() -> None:
        raise RuntimeError("database unreachable")

    node = Node(app)
    with pytest.raises(RuntimeError, match="database unreachable"):
        await node.start()
    assert node.state is crosswire.State.STOPPED
    assert crosswire.State.FAILED in node.lifecycle.history


async def test_drain_finishes_in_flight_work() -> None:
    app = App("drain")
    done: list[int] = []

    @app.handler("t.work", concurrency=8)
    async def work(event: Event[dict[str, int]]) -> None:
        await asyncio.sleep(0.05)
        done.append(event.payload["n"])

    transport = RecordingTransport()
    node = Node(app, transport)
    await node.start()
    for n in range(50):
        await node.submit("t.work", {"n": n})
    report = await node.drain(timeout=10)
    assert not report.deadline_missed
    assert sorted(done) == list(range(50))
    assert len(transport.log.of("ack")) == 50


async def test_drain_deadline_missed_hands_back_and_never_acks() -> None:
    app = App("drain2")
    started = 0

    @app.handler("t.stuck", concurrency=2)
    async def stuck(event: Event[Any]) -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(60)

    transport = RecordingTransport()
    node = Node(app, transport)
    await node.start()
    for _ in range(6):
        await node.submit("t.stuck", b"")
    await asyncio.sleep(0.05)
    report = await node.drain(timeout=0.2)
    assert report.deadline_missed
    assert report.returned == 6
    assert transport.log.of("ack") == []
    assert len(transport.log.of("retry")) == 6  # every one handed back for redelivery


async def test_dead_letter_replay_is_targeted_idempotent_and_recorded() -> None:
    app = App("replay")
    healthy: list[str] = []
    fixed = False

    @app.handler("t.job", name="flaky", retry=FAST)
    async def flaky(event: Event[Any]) -> None:
        if not fixed:
            raise Reject("not yet")

    @app.handler("t.job", name="healthy")
    async def ok(event: Event[Any]) -> None:
        healthy.append(event.id)

    async with Node(app) as node:
        await node.submit("t.job", b"1")
        await node.wait_idle(5)
        (letter,) = await node.dead_letters.list()
        fixed = True
        result = await node.dead_letters.replay(letter.id)
        assert result.replayed == [letter.id]
        again = await node.dead_letters.replay(letter.id)
        assert again.replayed == [] and "already replayed" in again.skipped[letter.id]
        await node.wait_idle(5)
        stored = await node.dead_letters.get(letter.id)
        with pytest.raises(ValueError, match="needs a letter id"):
            await node.dead_letters.replay()
        assert await node.dead_letters.purge() == 1
        assert await node.dead_letters.list() == []
    assert len(healthy) == 1  # the replay was aimed at "flaky" only
    assert stored is not None and len(stored.replays) == 1
    assert stored.replays[0].event_id.endswith(".r1")


def test_bad_configuration_fails_at_registration() -> None:
    app = App("cfg")
    with pytest.raises(crosswire.ConfigurationError, match="concurrency"):
        app.handler("t.x", concurrency=0)
    with pytest.raises(crosswire.ConfigurationError, match="max_attempts"):
        Retry(max_attempts=0)
    with pytest.raises(crosswire.ConfigurationError, match=r"whole tokens|last token"):
        app.handler("t.>.x")

    with pytest.raises(crosswire.ConfigurationError, match="exactly one required argument"):

        @app.handler("t.y")
        async def two(a: Event[Any], b: int) -> None: ...


async def test_statistics_carry_the_dedup_stores_own() -> None:
    app = App("stats")
    ran: list[str] = []

    @app.handler("stats.ping")
    async def ping(event: Event) -> None:
        ran.append(event.id)

    async with Node(app) as node:
        for i in range(3):
            await node.submit("stats.ping", idempotency_key=f"k{i % 2}")
        await node.wait_idle(5)
        stats = node.statistics()
    assert len(ran) == 2  # the third shares k0: skipped
    assert stats.idempotency.keys == 2
