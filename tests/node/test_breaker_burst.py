"""The circuit breaker under a burst of failures, with the defaults most users keep.

4,000 events at once on the memory transport: 75 % healthy, 5 % always failing
(poison), 20 % failing twice then succeeding (flaky). With the default ``Breaker()`` and
``Retry()`` the burst must settle completely — every poison event dead-lettered after
exactly ``max_attempts`` handler runs, every flaky one handled — within 3x the time it
takes with ``breaker=False``, and a healthy event submitted during the burst is handled
within 1 s. When the downstream really is down, the breaker stops the storm: no attempt
is spent while it is open, and traffic resumes when the downstream is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from crosswire import App, Event, Node, Retry

N = 4_000


def _kind(i: int) -> str:
    r = i % 20
    return "poison" if r == 0 else ("flaky" if r <= 4 else "healthy")


async def _burst(breaker: bool) -> tuple[float, Counter[str], Counter[str], float]:
    """Returns (seconds to settle, handler runs per event id, terminal states by kind,
    seconds for a healthy probe submitted mid-burst)."""
    app = App("burst")
    runs: Counter[str] = Counter()
    probe_done = asyncio.Event()

    @app.handler("burst.work", breaker=breaker)
    async def work(event: Event[Any]) -> None:
        runs[event.id] += 1
        await asyncio.sleep(0)  # a real handler awaits something
        kind = event.extensions.get("kind")
        if kind == "probe":
            probe_done.set()
        elif kind == "poison" or (kind == "flaky" and event.attempt <= 2):
            raise ConnectionError(f"{kind} failure")

    async with Node(app) as node:
        t0 = time.monotonic()
        submitted = [node.submit("burst.work", b"", id=f"e{i}", extensions={"kind": _kind(i)}) for i in range(N)]
        await asyncio.gather(*submitted)
        await asyncio.sleep(0.05)  # the burst is being worked on
        p0 = time.monotonic()
        await node.submit("burst.work", b"", id="probe", extensions={"kind": "probe"})
        async with asyncio.timeout(30):
            await probe_done.wait()
        probe_latency = time.monotonic() - p0
        await node.wait_idle(60)
        elapsed = time.monotonic() - t0
        letters = await node.dead_letters.list(limit=10_000)
    states: Counter[str] = Counter()
    dead = {letter.event.id for letter in letters if letter.event is not None}
    for i in range(N):
        states[f"{_kind(i)}:{'dead' if f'e{i}' in dead else 'handled'}"] += 1
    return elapsed, runs, states, probe_latency


async def test_a_poison_burst_settles_with_the_default_breaker() -> None:
    baseline, _, base_states, _ = await _burst(breaker=False)
    elapsed, runs, states, probe = await _burst(breaker=True)
    assert (
        states
        == base_states
        == Counter({"healthy:handled": N * 15 // 20, "flaky:handled": N * 4 // 20, "poison:dead": N // 20})
    )
    max_attempts = Retry().max_attempts
    for i in range(N):
        expected = {"poison": max_attempts, "flaky": 3, "healthy": 1}[_kind(i)]
        assert runs[f"e{i}"] == expected, f"e{i} ({_kind(i)}) ran {runs[f'e{i}']} times"
    assert probe < 1.0, f"a healthy event waited {probe:.2f}s behind the burst"
    assert elapsed <= 3 * max(baseline, 0.5), f"settled in {elapsed:.2f}s, {elapsed / baseline:.1f}x breaker=False"


async def test_a_dead_downstream_opens_the_breaker_and_spends_no_attempts() -> None:
    app = App("down")
    calls = 0
    down = True

    @app.handler(
        "down.work",
        retry=Retry(max_attempts=10_000, initial=0.001, max_delay=0.01),
        concurrency=4,
    )
    async def work(event: Event[Any]) -> None:
        nonlocal calls
        calls += 1
        if down:
            raise ConnectionError("downstream down")

    async with Node(app) as node:
        await asyncio.gather(*(node.submit("down.work", b"", id=f"d{i}") for i in range(50)))
        deadline = time.monotonic() + 5
        while node.statistics().bindings["work"].breaker.state != "open":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the breaker never opened while every call failed"
            await asyncio.sleep(0.01)
        opened_at_calls = calls
        await asyncio.sleep(1.0)  # well inside reset_after (5 s): open, nothing runs
        assert calls == opened_at_calls, f"{calls - opened_at_calls} attempts ran while the breaker was open"
        stats = node.statistics().bindings["work"]
        assert stats.dead_lettered == 0
        down = False
        await node.wait_idle(15)  # half-open after 5 s; the first success closes it
        stats = node.statistics().bindings["work"]
    assert stats.handled == 50 and stats.dead_lettered == 0
    assert stats.breaker is not None and stats.breaker.state == "closed"
