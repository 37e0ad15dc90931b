"""The dispatcher on its own: bounded concurrency, per-key order, backpressure on
``put``, and what cancellation and ``drain_queued`` leave behind."""

from __future__ import annotations

import asyncio

import pytest

from crosswire._dispatcher import Dispatcher

Item = tuple[str | None, int]


def _dispatcher(
    process: object, *, concurrency: int = 4, capacity: int = 8, errors: list[BaseException] | None = None
) -> Dispatcher[Item]:
    return Dispatcher(
        process,  # type: ignore[arg-type]
        lambda item: item[0],
        concurrency=concurrency,
        capacity=capacity,
        on_error=lambda item, exc: (errors if errors is not None else []).append(exc),
    )


async def test_every_item_runs_once_and_keys_keep_their_order() -> None:
    seen: dict[str | None, list[int]] = {}
    running: dict[str, int] = {}
    overlap: list[str] = []

    async def process(item: Item) -> None:
        key, n = item
        if key is not None:
            running[key] = running.get(key, 0) + 1
            if running[key] > 1:
                overlap.append(key)
        await asyncio.sleep(0.0005 * (n % 3))
        seen.setdefault(key, []).append(n)
        if key is not None:
            running[key] -= 1

    d = _dispatcher(process, concurrency=8, capacity=16)
    d.start()
    items = [(f"k{i % 5}" if i % 4 else None, i) for i in range(400)]
    for item in items:
        await d.put(item)
    await asyncio.wait_for(d.wait_idle(), 10)
    await d.stop()
    assert not overlap
    assert d.processed == 400
    for key, ns in seen.items():
        expected = [n for k, n in items if k == key]
        assert (sorted(ns) if key is None else ns) == expected


async def test_put_waits_while_full_and_resumes_when_room() -> None:
    gate = asyncio.Event()

    async def process(item: Item) -> None:
        await gate.wait()

    d = _dispatcher(process, concurrency=2, capacity=3)
    d.start()
    for i in range(5):  # two running, three queued
        await d.put((None, i))
    await asyncio.sleep(0)
    blocked = asyncio.ensure_future(d.put((None, 99)))
    await asyncio.sleep(0.01)
    assert not blocked.done() and d.depth == 3
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await asyncio.wait_for(d.wait_idle(), 5)
    assert d.processed == 6
    await d.stop()


async def test_a_cancelled_put_is_not_counted_and_passes_its_room_on() -> None:
    gate = asyncio.Event()

    async def process(item: Item) -> None:
        await gate.wait()

    d = _dispatcher(process, concurrency=1, capacity=1)
    d.start()
    await d.put((None, 0))
    await asyncio.sleep(0)  # taken: running
    await d.put((None, 1))  # queued: full
    first = asyncio.ensure_future(d.put((None, 2)))
    second = asyncio.ensure_future(d.put((None, 3)))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    gate.set()
    await asyncio.wait_for(second, 5)
    await asyncio.wait_for(d.wait_idle(), 5)
    assert d.processed == 3  # 0, 1 and 3; the cancelled put never entered
    await d.stop()


async def test_drain_queued_returns_what_never_ran_and_idles() -> None:
    gate = asyncio.Event()
    ran: list[int] = []

    async def process(item: Item) -> None:
        ran.append(item[1])
        await gate.wait()

    d = _dispatcher(process, concurrency=1, capacity=8)
    d.start()
    for i in range(4):
        await d.put(("same", i))
    await asyncio.sleep(0.01)
    left = d.drain_queued()
    assert [n for _, n in left] == [1, 2, 3] and ran == [0]
    gate.set()
    await asyncio.wait_for(d.wait_idle(), 5)
    await d.stop()
    assert ran == [0]


async def test_an_error_in_process_is_reported_and_the_worker_carries_on() -> None:
    errors: list[BaseException] = []

    async def process(item: Item) -> None:
        if item[1] == 1:
            raise RuntimeError("boom")

    d = _dispatcher(process, concurrency=1, capacity=4, errors=errors)
    d.start()
    for i in range(3):
        await d.put((None, i))
    await asyncio.wait_for(d.wait_idle(), 5)
    await d.stop()
    assert d.processed == 3 and [str(e) for e in errors] == ["boom"]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_stop_cancels_idle_workers(concurrency: int) -> None:
    async def process(item: Item) -> None:
        return None

    d = _dispatcher(process, concurrency=concurrency)
    d.start()
    await asyncio.sleep(0)
    await asyncio.wait_for(d.stop(), 5)
    await d.put((None, 1))  # no workers: it stays queued
    assert d.depth == 1


async def test_put_nowait_queues_while_there_is_room_and_refuses_when_full() -> None:
    release = asyncio.Event()
    ran: list[int] = []

    async def process(item: Item) -> None:
        await release.wait()
        ran.append(item[1])

    d = _dispatcher(process, concurrency=1, capacity=2)
    d.start()
    try:
        assert d.put_nowait((None, 1))
        await asyncio.sleep(0)  # the worker takes item 1 and waits on it
        assert d.put_nowait((None, 2)) and d.put_nowait((None, 3))
        assert not d.put_nowait((None, 4))  # full: refused, nothing queued or counted
        assert d.depth == 2
        release.set()
        await asyncio.wait_for(d.wait_idle(), 5)
        assert ran == [1, 2, 3]
    finally:
        await d.stop()
