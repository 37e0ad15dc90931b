"""A burst of retried events through a worker with little credit stays fast.

20 events through a worker with ``max_in_flight=4``, each failing its first attempt
with ``unavailable`` (retryable, ``retry_after`` 0.01 s): every retry must be handed to
the worker as soon as credit frees up, not after some unrelated timer. The one thing
that may hold the retries is the binding's circuit breaker: 20 failed calls are its
``minimum_calls`` at a 100 % failure rate, so it opens and the retries wait in it for
``reset_after`` (spec: crosswire/_policies/breaker.py) — a wait that is the breaker's,
not the worker's credit.
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


async def test_a_burst_of_retries_waits_in_the_breaker_for_reset_after(runtime: str, worker_argv: list[str]) -> None:
    breaker = crosswire.Breaker(reset_after=0.5)
    elapsed, stats = await _burst(worker_argv, runtime, breaker=breaker)
    opened = stats.bindings[f"testworker-{runtime}:test.fail_transient"].breaker
    assert opened is not None and opened.times_opened == 1
    # the retries waited for reset_after (0.5 s), and for nothing else
    assert 0.45 <= elapsed < 1.5, f"took {elapsed:.3f} s"
