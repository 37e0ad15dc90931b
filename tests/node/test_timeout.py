"""The timeout layer on its own: one loop timer for the earliest deadline of the
attempts running, rescheduled for an earlier event deadline; a handler that swallows
the cancellation; cancellation from outside stays the caller's."""

from __future__ import annotations

import asyncio
import contextlib
import time

from crosswire import Attempt, ErrorCode, Event, Outcome, Timeout


def _attempt(deadline_in: float | None = None) -> Attempt:
    """An attempt of a fresh event; ``deadline_in``: the event's own deadline, seconds from now."""
    return Attempt(event=Event.new("t.x", b"", deadline=deadline_in), binding="b")


async def test_each_attempt_ends_at_its_own_deadline_even_when_an_earlier_one_arrives_later() -> None:
    async def slow(attempt: Attempt) -> Outcome:
        await asyncio.sleep(10)
        return Outcome()

    timed = Timeout(2.0).layer(slow)
    t0 = time.monotonic()
    long_one = asyncio.ensure_future(timed(_attempt()))  # due in 2 s: the timer is set for it
    await asyncio.sleep(0.01)
    short_one = asyncio.ensure_future(timed(_attempt(deadline_in=0.2)))  # due earlier
    short = await asyncio.wait_for(short_one, 5)
    short_took = time.monotonic() - t0
    long = await asyncio.wait_for(long_one, 5)
    long_took = time.monotonic() - t0
    assert short.error is not None and short.error.code is ErrorCode.TIMEOUT
    assert long.error is not None and long.error.code is ErrorCode.TIMEOUT
    assert 0.15 < short_took < 1.5, short_took
    assert 1.9 < long_took < 4.0, long_took


async def test_attempts_that_finish_in_time_are_untouched_and_later_ones_still_time_out() -> None:
    async def quick(attempt: Attempt) -> Outcome:
        await asyncio.sleep(0)
        return Outcome()

    async def slow(attempt: Attempt) -> Outcome:
        await asyncio.sleep(10)
        return Outcome()

    layer = Timeout(0.2)
    fast, hung = layer.layer(quick), layer.layer(slow)
    outcomes = await asyncio.gather(*(fast(_attempt()) for _ in range(200)))
    assert all(o.error is None for o in outcomes)
    late = await asyncio.wait_for(hung(_attempt()), 5)
    assert late.error is not None and late.error.code is ErrorCode.TIMEOUT


async def test_a_handler_that_swallows_the_cancellation_keeps_its_result_and_the_task_is_not_left_cancelling() -> None:
    async def stubborn(attempt: Attempt) -> Outcome:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return Outcome()

    timed = Timeout(0.05).layer(stubborn)

    async def run() -> tuple[Outcome, int]:
        outcome = await timed(_attempt())
        task = asyncio.current_task()
        assert task is not None
        return outcome, task.cancelling()

    outcome, cancelling = await asyncio.wait_for(run(), 5)
    assert outcome.error is None and cancelling == 0


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    started = asyncio.Event()

    async def slow(attempt: Attempt) -> Outcome:
        started.set()
        await asyncio.sleep(10)
        return Outcome()

    task = asyncio.ensure_future(Timeout(5.0).layer(slow)(_attempt()))
    await started.wait()
    task.cancel()
    done = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)


class _OffsetClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock is not time.monotonic(), as uvloop's is not."""

    def time(self) -> float:
        return time.monotonic() + 1000.0


def test_the_deadline_is_kept_on_the_loops_own_clock_when_it_is_not_monotonic() -> None:
    async def slow(attempt: Attempt) -> Outcome:
        await asyncio.sleep(10)
        return Outcome()

    async def main() -> tuple[Outcome, float]:
        t0 = time.monotonic()
        outcome = await asyncio.wait_for(Timeout(0.3).layer(slow)(_attempt()), 5)
        return outcome, time.monotonic() - t0

    loop = _OffsetClockLoop()
    try:
        outcome, took = loop.run_until_complete(main())
    finally:
        loop.close()
    assert outcome.error is not None and outcome.error.code is ErrorCode.TIMEOUT
    assert 0.25 < took < 3.0, took  # not at once (a monotonic deadline read as loop time), not never
