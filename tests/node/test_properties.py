"""Property: for any schedule of handler failures, timeouts and retry hints, every
submitted event ends exactly once — handled and acked, or dead-lettered and
terminated — attempts never exceed the policy, and nothing is acked before its
handler returned."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crosswire
from crosswire import App, ErrorCode, Event, Fail, Node, Retry, RetryLater

from .recording import RecordingTransport

BEHAVIOURS = ("ok", "raise", "permanent", "timeout", "retry_later", "unavailable")

CODES = {
    "raise": "handler_error",
    "permanent": "invalid_argument",
    "timeout": "timeout",
    "retry_later": "unavailable",
    "unavailable": "unavailable",
}

plans = st.lists(
    st.lists(st.sampled_from(BEHAVIOURS), min_size=0, max_size=5),
    min_size=1,
    max_size=25,
)


def expected(plan: list[str], max_attempts: int) -> tuple[str, int]:
    """(terminal state, attempts made) that the policy must produce for one event."""
    for n in range(1, max_attempts + 1):
        behaviour = plan[n - 1] if n <= len(plan) else "ok"
        if behaviour == "ok":
            return "handled", n
        if behaviour == "permanent":
            return "dead", n
    return "dead", max_attempts


async def run(plans_: list[list[str]], max_attempts: int, concurrency: int, keyed: bool) -> None:
    app = App("prop")
    calls: dict[str, list[int]] = {}
    returned_at: dict[str, float] = {}
    plan_of: dict[str, list[str]] = {}

    @app.handler(
        "p.event",
        timeout=0.02,
        concurrency=concurrency,
        retry=Retry(max_attempts=max_attempts, initial=0.0005, max_delay=0.002, jitter=0.5),
        breaker=False,
    )
    async def handle(event: Event[Any]) -> None:
        calls.setdefault(event.id, []).append(event.attempt)
        plan = plan_of[event.id]
        behaviour = plan[event.attempt - 1] if event.attempt <= len(plan) else "ok"
        try:
            if behaviour == "raise":
                raise RuntimeError("boom")
            if behaviour == "permanent":
                raise Fail(ErrorCode.INVALID_ARGUMENT, "bad")
            if behaviour == "timeout":
                await asyncio.sleep(1)
            if behaviour == "retry_later":
                raise RetryLater(after=0.001)
            if behaviour == "unavailable":
                raise Fail(ErrorCode.UNAVAILABLE, "later", retry_after=0.0)
        finally:
            returned_at[f"{event.id}/{event.attempt}"] = time.monotonic()

    transport = RecordingTransport()
    async with Node(app, transport) as node:
        ids = []
        for i, plan in enumerate(plans_):
            event = Event.new("p.event", b"", key=f"k{i % 3}" if keyed else None)
            plan_of[event.id] = plan
            ids.append(event.id)
            await node.submit_events([event])
        await node.wait_idle(30)
        letters = {letter.event.id: letter for letter in await node.dead_letters.list() if letter.event}

    acks = transport.log.of("ack")
    terms = transport.log.of("terminate")
    for event_id, plan in zip(ids, plans_, strict=True):
        state, attempts = expected(plan, max_attempts)
        assert calls[event_id] == list(range(1, attempts + 1)), (plan, calls[event_id])
        assert len(calls[event_id]) <= max_attempts
        if state == "handled":
            assert acks.count(event_id) == 1 and terms.count(event_id) == 0, plan
            assert event_id not in letters
        else:
            assert acks.count(event_id) == 0 and terms.count(event_id) == 1, plan
            assert len(letters[event_id].attempts) == attempts
            last = plan[attempts - 1]
            assert letters[event_id].error.code.value == CODES[last], (plan, letters[event_id].error)
    for what, event_id, attempt, at in transport.log.entries:
        if what == "ack":
            assert returned_at[f"{event_id}/{attempt}"] <= at, "acked before the handler returned"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=plans, max_attempts=st.integers(1, 4), concurrency=st.integers(1, 8), keyed=st.booleans())
def test_every_event_ends_exactly_once(
    plans: list[list[str]], max_attempts: int, concurrency: int, keyed: bool
) -> None:
    asyncio.run(run(plans, max_attempts, concurrency, keyed))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(20, 200), drain_after=st.floats(0.0, 0.05))
def test_drain_under_load_loses_nothing(n: int, drain_after: float) -> None:
    async def scenario() -> None:
        app = App("drainprop")
        handled: list[str] = []

        @app.handler("d.event", concurrency=8, retry=Retry(max_attempts=5, initial=0.001))
        async def handle(event: Event[Any]) -> None:
            await asyncio.sleep(0.001)
            if event.attempt == 1 and hash(event.id) % 5 == 0:
                raise RuntimeError("transient")
            handled.append(event.id)

        transport = RecordingTransport()
        node = Node(app, transport)
        await node.start()
        ids = [(await node.submit("d.event", b"x")).id for _ in range(n)]
        await asyncio.sleep(drain_after)
        report = await node.drain(timeout=20)
        assert not report.deadline_missed
        assert sorted(handled) == sorted(ids)
        assert sorted(transport.log.of("ack")) == sorted(ids)
        assert node.state is crosswire.State.STOPPED

    asyncio.run(scenario())
