"""The pull subscription's own queue: deliveries go to whichever iterator waits, and
an iterator cancelled after it was woken takes no wake-up away from another."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_iterators_of_one_subscription_lose_no_wake_up() -> None:
    from types import SimpleNamespace

    from crosswire._transports.jetstream.headers import Client
    from crosswire._transports.jetstream.pull import JetStreamSubscription

    sub = JetStreamSubscription(Client(), "S", "C", 8, latest={}, on_close=lambda s: None)
    got: list[tuple[str, Any]] = []

    async def take(name: str) -> None:
        async for delivery in sub:
            got.append((name, delivery))

    first, second = asyncio.create_task(take("first")), asyncio.create_task(take("second"))
    await asyncio.sleep(0)  # both wait
    one = SimpleNamespace(superseded=False)
    sub._put(one)  # type: ignore[arg-type]
    first.cancel()  # woken, but gone before it takes anything
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert got == [("second", one)]
    two, stale = SimpleNamespace(superseded=False), SimpleNamespace(superseded=True)
    sub._put(stale)  # type: ignore[arg-type]
    sub._put(two)  # type: ignore[arg-type]
    sub._put(None)
    async with asyncio.timeout(2):
        await second
    assert got == [("second", one), ("second", two)]  # a superseded one is skipped
    assert first.cancelled()
