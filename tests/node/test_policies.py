"""One policy shape, user middleware in its documented slot, extension points that are
checked at registration, and one vocabulary for submit and Event.new."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

import crosswire
import crosswire.stores
import crosswire.transports
from crosswire import (
    App,
    Attempt,
    BackpressureError,
    Breaker,
    ConfigurationError,
    Dedup,
    ErrorCode,
    ErrorInfo,
    Event,
    Handler,
    Node,
    Outcome,
    Retry,
    Timeout,
)


def _recorder(name: str, seen: list[str]) -> crosswire.Middleware:
    def middleware(inner: Handler) -> Handler:
        async def wrapped(attempt: Attempt) -> Outcome:
            seen.append(f">{name}")
            outcome = await inner(attempt)
            seen.append(f"<{name}")
            return outcome

        return wrapped

    return middleware


class Tag:
    """A middleware of the policy shape: a frozen config with ``layer``."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def layer(self, inner: Handler) -> Handler:
        return _recorder(self.name, self.seen)(inner)


async def test_middleware_runs_in_the_documented_order_inside_the_timeout() -> None:
    seen: list[str] = []
    app = App("mw", middleware=[_recorder("app", seen)])

    @app.handler("t.x", timeout=0.2, middleware=[Tag("first", seen), _recorder("second", seen)])
    async def h(event: Event[Any]) -> None:
        seen.append("handler")
        if event.attempt == 1:
            await asyncio.sleep(5)  # the timeout bounds middleware and handler together

    async with Node(app) as node:
        await node.submit("t.x", b"")
        await node.wait_idle(5)
        stats = node.statistics().bindings["h"]
    assert stats.handled == 1 and stats.retried == 1
    # attempt 2 ran through every layer, app-wide outermost, the handler's own in order
    assert seen[-7:] == [">app", ">first", ">second", "handler", "<second", "<first", "<app"]


async def test_middleware_can_fail_an_attempt_and_the_retry_policy_decides() -> None:
    def refuse(inner: Handler) -> Handler:
        async def wrapped(attempt: Attempt) -> Outcome:
            if attempt.number < 3:
                return Outcome(error=ErrorInfo.of(ErrorCode.UNAVAILABLE, "injected"))
            return await inner(attempt)

        return wrapped

    app = App("fault")
    runs = 0

    @app.handler("t.x", middleware=[refuse], retry=Retry(initial=0.001, jitter=0))
    async def h(event: Event[Any]) -> None:
        nonlocal runs
        runs += 1

    async with Node(app) as node:
        await node.submit("t.x", b"")
        await node.wait_idle(5)
    assert runs == 1


class EveryOther:
    """A user's own RetryPolicy: not a Retry, just the protocol."""

    max_attempts = 4

    def __init__(self) -> None:
        self.asked: list[int] = []

    def next_delay(self, attempt: int, error: ErrorInfo) -> float | None:
        self.asked.append(attempt)
        return 0.001 if attempt < self.max_attempts else None


async def test_a_custom_retry_policy_is_accepted_and_consulted() -> None:
    policy = EveryOther()
    app = App("custom")

    @app.handler("t.x", retry=policy)
    async def h(event: Event[Any]) -> None:
        raise RuntimeError("always")

    async with Node(app) as node:
        await node.submit("t.x", b"")
        await node.wait_idle(5)
        (letter,) = await node.dead_letters.list()
    assert policy.asked == [1, 2, 3, 4]
    assert [a.number for a in letter.attempts] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"middleware": ["not callable"]}, "middleware"),
        ({"middleware": [int]}, "middleware"),
        ({"retry": "3"}, "RetryPolicy"),
        ({"timeout": "30"}, "timeout"),
        ({"breaker": 5}, "breaker"),
        ({"dedup": "yes"}, "dedup"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
def test_bad_policies_are_configuration_errors_at_registration(kwargs: dict[str, Any], message: str) -> None:
    app = App("bad")
    with pytest.raises(ConfigurationError, match=message):

        @app.handler("t.x", **kwargs)
        async def h(event: Event[Any]) -> None: ...


def test_policy_configs_validate_when_built() -> None:
    with pytest.raises(ConfigurationError, match="failure_rate"):
        Breaker(failure_rate=0)
    with pytest.raises(ConfigurationError, match="max_attempts"):
        Retry(max_attempts=0)
    with pytest.raises(ConfigurationError, match="lease"):
        Dedup(lease=0)


def test_app_wide_middleware_is_checked_too() -> None:
    with pytest.raises(ConfigurationError, match="middleware"):
        App("bad", middleware=[42])  # type: ignore[list-item]


def test_worker_option_typos_fail_at_registration() -> None:
    app = App("w")
    with pytest.raises(ConfigurationError, match="heartbeat_intervall"):
        app.worker("w", command=["./w"], heartbeat_intervall=1.0)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="ready_timeout"):
        app.worker("w", command=["./w"], ready_timeout=-1.0)
    app.worker("w", command=["./w"], ready_timeout=5.0, heartbeat_interval=0.5)
    assert app.workers[0].options.ready_timeout == 5.0


async def test_registration_after_start_is_refused() -> None:
    app = App("late")

    @app.handler("t.x")
    async def h(event: Event[Any]) -> None: ...

    decorator = app.handler("t.y")
    async with Node(app):
        with pytest.raises(ConfigurationError, match="running"):
            app.handler("t.z")
        with pytest.raises(ConfigurationError, match="running"):
            decorator(h)  # a decorator made before start, applied after it
        with pytest.raises(ConfigurationError, match="running"):
            app.worker("w", command=["./w"])


def test_every_policy_has_the_same_shape() -> None:
    for policy in (Timeout(1.0), Retry(), Breaker(), Dedup(store=crosswire.stores.MemoryIdempotencyStore())):
        assert isinstance(policy, crosswire.Layer), policy
        with pytest.raises((AttributeError, TypeError)):
            policy.extra = 1  # type: ignore[attr-defined]  # frozen


class Order(msgspec.Struct):
    order_id: int
    sku: str


def test_event_new_encodes_a_struct_or_fails_at_once() -> None:
    event = Event.new("order.created", Order(4242, "A-1"))
    assert event.datacontenttype == "application/msgpack"
    assert msgspec.msgpack.decode(event.data or b"", type=Order) == Order(4242, "A-1")
    with pytest.raises(ValueError, match="cannot be encoded"):
        Event.new("order.created", object())
    with pytest.raises(ValueError, match="cannot be encoded"):
        Event.new("order.created", {"n": 2**70})


async def test_event_new_with_a_struct_reaches_a_typed_handler() -> None:
    app = App("typed")
    got: list[Order] = []

    @app.handler("order.created")
    async def h(event: Event[Order]) -> None:
        got.append(event.payload)

    async with Node(app) as node:
        await node.submit_events([Event.new("order.created", Order(7, "B-2"))])
        await node.wait_idle(5)
    assert got == [Order(7, "B-2")]


async def test_submit_and_event_new_share_names_and_units() -> None:
    before = time.time()
    a = Event.new("t.x", b"", correlation_id="c", idempotency_key="k", deadline=10.0)
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    b = Event.new("t.x", b"", deadline=in_an_hour)
    assert a.correlationid == "c" and a.idempotencykey == "k"
    assert a.deadline is not None and before + 9 <= a.deadline / 1000 <= time.time() + 11
    assert b.deadline == int(in_an_hour.timestamp() * 1000)
    with pytest.raises(ValueError, match="timezone"):
        Event.new("t.x", b"", deadline=datetime.now())

    app = App("same")

    @app.handler("t.x")
    async def h(event: Event[Any]) -> None: ...

    async with Node(app) as node:
        c = await node.submit("t.x", b"", correlation_id="c", idempotency_key="k", deadline=in_an_hour)
    assert c.deadline == b.deadline and c.correlationid == "c" and c.idempotencykey == "k"


async def test_pending_is_bounded_in_bytes_too() -> None:
    app = App("bytes")
    release = asyncio.Event()

    @app.handler("t.big", concurrency=1)
    async def h(event: Event[Any]) -> None:
        await release.wait()

    async with Node(app, max_pending_bytes=4 * 512 * 1024, submit_timeout=0.3) as node:
        body = b"x" * 512 * 1024
        for _ in range(4):
            await node.submit("t.big", body)
        assert node.statistics().pending_bytes == 4 * 512 * 1024
        with pytest.raises(BackpressureError, match="bytes"):
            await node.submit("t.big", body)
        release.set()
        await node.wait_idle(5)
        assert node.statistics().pending_bytes == 0


def test_in_process_transports_get_a_byte_bound_by_default() -> None:
    node = Node(App("defaults"))
    assert node._pending.max_bytes == 128 * 1024 * 1024


class _DyingSubscription(crosswire.transports.Subscription):
    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        await asyncio.sleep(0.05)
        raise ConnectionResetError("the broker went away")

    async def close(self) -> None:
        return None


class _DyingTransport(crosswire.MemoryTransport):
    async def subscribe(self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0) -> Any:
        return _DyingSubscription()


async def test_a_consumer_that_dies_makes_the_node_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    app = App("deaf")

    @app.handler("t.x")
    async def h(event: Event[Any]) -> None: ...

    node = Node(app, _DyingTransport())
    await node.start()
    try:
        assert node.ready
        deadline = time.monotonic() + 5
        while node.ready:
            assert time.monotonic() < deadline, "the node still says ready after its consumer died"
            await asyncio.sleep(0.01)
        assert node.state is crosswire.State.FAILED
        assert "the broker went away" in caplog.text
    finally:
        await node.drain(1)


async def test_replay_refuses_a_letter_whose_data_was_cut() -> None:
    from crosswire._deadletter import MemoryDeadLetterStore
    from crosswire._replay import TRUNCATED, DeadLetters

    store = MemoryDeadLetterStore()
    published: list[Event[Any]] = []

    async def publish(events: Any) -> None:
        published.extend(events)

    cut = Event.new("t.big", b"x" * 10, extensions={TRUNCATED: 2_000_000})
    whole = Event.new("t.big", b"y")
    error = ErrorInfo.of(ErrorCode.HANDLER_ERROR, "boom")
    for event in (cut, whole):
        await store.put(crosswire.DeadLetter(id=f"b/{event.id}", binding="b", event=event, error=error))
    result = await DeadLetters(store, publish).replay(all=True)
    assert result.replayed == [f"b/{whole.id}"]
    assert "2000000 bytes" in result.skipped[f"b/{cut.id}"]
    assert [e.data for e in published] == [b"y"]
