"""The ack confirmer: round trips shared by the acks of the moment, one waiter's
cancellation leaving the others waiting, a round trip the server does not answer
failing each waiter, and a waiter that came during a round trip having the next one asked
at once (a bounded number in flight)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from crosswire._transports.jetstream import connection
from crosswire._transports.jetstream.connection import Confirmer


class _Server:
    """A connection whose round trips (``flush``) end when the test says."""

    def __init__(self) -> None:
        self.trips: list[asyncio.Future[None]] = []

    async def flush(self, timeout: float) -> None:
        trip = asyncio.get_running_loop().create_future()
        self.trips.append(trip)
        await trip

    async def answer(self, error: BaseException | None = None) -> None:
        for _ in range(5):  # the round trip's task starts
            await asyncio.sleep(0)
        trip = next(t for t in self.trips if not t.done())  # the oldest: PONGs come in order
        if error is None:
            trip.set_result(None)
        else:
            trip.set_exception(error)
        for _ in range(20):  # its waiters wake
            await asyncio.sleep(0)


async def test_waiters_share_a_round_trip_and_a_cancelled_one_takes_nothing_away() -> None:
    server = _Server()
    confirmer = Confirmer(server, 5.0, limit=1)  # type: ignore[arg-type]

    async def ack() -> None:
        if confirmer.acked():  # over the limit: wait, as a delivery's ack does
            await confirmer.wait()

    acks = [asyncio.create_task(ack()) for _ in range(4)]
    await asyncio.sleep(0)
    assert [a.done() for a in acks] == [True, False, False, False]
    acks[1].cancel()
    await server.answer()
    assert len(server.trips) == 1  # one round trip for all of them
    assert acks[1].cancelled() and all(a.done() and a.exception() is None for a in acks[2:])
    assert confirmer.unconfirmed == 0


async def test_an_unanswered_round_trip_fails_each_waiter() -> None:
    server = _Server()
    confirmer = Confirmer(server, 5.0, limit=0)  # type: ignore[arg-type]

    async def ack() -> None:
        if confirmer.acked():
            await confirmer.wait()

    acks: list[Any] = [asyncio.create_task(ack()) for _ in range(2)]
    await server.answer(TimeoutError())
    for waiter in acks:
        with pytest.raises(TimeoutError, match="did not confirm the acks in time"):
            await waiter
    assert confirmer.unconfirmed == 2  # not confirmed: still counted, and asked again
    assert len(server.trips) == 2
    await server.answer()
    assert confirmer.unconfirmed == 0


async def test_a_round_trip_on_a_closed_connection_ends_its_task_without_an_error() -> None:
    """The round trip's task fails by its result, not an exception: when a program's
    loop closes before the task's callbacks run, nothing is left to be reported as
    "Task exception was never retrieved" (it was, at the end of a CI run)."""
    server = _Server()
    confirmer = Confirmer(server, 5.0, limit=0)  # type: ignore[arg-type]
    assert confirmer.acked()
    for _ in range(3):
        await asyncio.sleep(0)
    tasks = list(connection._flushes)  # the round trip's, and the one of the flush it awaits
    assert tasks
    await server.answer(nats.errors.ConnectionClosedError())
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert [t.exception() for t in tasks] == [None] * len(tasks)
    assert confirmer.unconfirmed == 1  # not confirmed


async def test_a_waiter_during_a_round_trip_has_the_next_asked_at_once() -> None:
    server = _Server()
    confirmer = Confirmer(server, 5.0, limit=0)  # type: ignore[arg-type]
    confirmer.acked()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(server.trips) == 1  # in flight
    confirmer.acked()  # written after that round trip's PING
    late = asyncio.create_task(confirmer.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(server.trips) == 2  # asked at once, not after the first one ends
    await server.answer()
    assert not late.done() and confirmer.unconfirmed == 1  # the first one does not cover it
    await server.answer()
    assert late.done() and late.exception() is None
    assert confirmer.unconfirmed == 0 and len(server.trips) == 2


async def test_round_trips_in_flight_are_bounded_and_later_waiters_share_the_next() -> None:
    from crosswire._transports.jetstream.connection import _IN_FLIGHT

    server = _Server()
    confirmer = Confirmer(server, 5.0, limit=0)  # type: ignore[arg-type]
    waiters = []
    for _ in range(_IN_FLIGHT + 3):  # one ack and one waiter per loop step
        confirmer.acked()
        waiters.append(asyncio.create_task(confirmer.wait()))
        for _ in range(5):
            await asyncio.sleep(0)
    assert len(server.trips) == _IN_FLIGHT  # the last waiters wait for a free one
    for _ in range(_IN_FLIGHT):
        await server.answer()
    assert len(server.trips) == _IN_FLIGHT + 1  # one round trip for the three that waited
    await server.answer()
    assert all(w.done() and w.exception() is None for w in waiters)
    assert confirmer.unconfirmed == 0
