"""A burst of retried events through a worker with little credit stays fast.

20 events through a worker with ``max_in_flight=4``, each failing its first attempt
with ``unavailable`` and a ``retry_after`` of 0.01 s (``RetryLater``): every retry must
be handed to the worker as soon as credit frees up, not after some unrelated timer —
with the breaker off, and with the default breaker too, which does not count a failure
that names its own ``retry_after`` (the handler paces that event; crosswire/_policies/
breaker.py). Without that rule the 20 failures opened the breaker and every retry
waited 5 s (``reset_after``).
"""

from __future__ import annotations

import asyncio
import time

import crosswire

EVENTS = 20


async def _burst(argv: list[str], runtime: str, **options: object) -> tuple[float, crosswire.NodeStatistics]:
    name = f"testworker-{runtime}"
    app = crosswire.App("credit")
    app.worker(
        name,
        command=[*argv, "--name", name, "--max-in-flight", "4"],
        timeout=5.0,
        retry=crosswire.Retry(max_attempts=3, initial=0.01, jitter=0.0),
        **options,  # type: ignore[arg-type]
    )
    async with crosswire.Node(app) as node:
        started = time.monotonic()
        for _ in range(EVENTS):
            await node.submit("test.fail_transient", {"fail_until": 2})
        await asyncio.wait_for(node.wait_idle(), 20)
        elapsed = time.monotonic() - started
        stats = node.statistics()
    binding = stats.bindings[f"{name}:test.fail_transient"]
    assert (binding.handled, binding.retried, binding.dead_lettered) == (EVENTS, EVENTS, 0)
    return elapsed, stats


async def test_retries_wait_only_for_credit(runtime: str, worker_argv: list[str]) -> None:
    elapsed, _ = await _burst(worker_argv, runtime, breaker=False)
    # ~40 round trips and one 10 ms retry delay; 5 s (a timeout-sized wait) is the failure
    assert elapsed < 1.0, f"{EVENTS} events retried once took {elapsed:.3f} s"


async def test_a_burst_of_paced_retries_does_not_open_the_default_breaker(runtime: str, worker_argv: list[str]) -> None:
    elapsed, stats = await _burst(worker_argv, runtime)
    breaker = stats.bindings[f"testworker-{runtime}:test.fail_transient"].breaker
    assert breaker is not None and breaker.times_opened == 0
    assert elapsed < 1.0, f"{EVENTS} events retried once took {elapsed:.3f} s"
