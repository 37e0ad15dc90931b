"""End to end through crosswire.Node: events submitted to the node, handled by worker
processes (Python, Go, Rust), settled by the node's policies."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

import crosswire
from crosswire import ErrorCode


def app_with_worker(argv: list[str], runtime: str, *args: str, **options: object) -> tuple[crosswire.App, str]:
    name = f"testworker-{runtime}"
    app = crosswire.App("e2e")
    app.worker(name, command=[*argv, "--name", name, *args], **options)  # type: ignore[arg-type]
    return app, name


async def test_transient_failures_are_retried_until_success(runtime: str, worker_argv: list[str]) -> None:
    app, name = app_with_worker(worker_argv, runtime, timeout=5.0, retry=crosswire.Retry(max_attempts=5, initial=0.01))
    async with crosswire.Node(app) as node:
        await node.submit("test.fail_transient", {"fail_until": 3})
        await asyncio.wait_for(node.wait_idle(), 20)
        stats = node.statistics().bindings[f"{name}:test.fail_transient"]
        assert stats.runtime == runtime
        assert (stats.handled, stats.failed_attempts, stats.retried, stats.dead_lettered) == (1, 2, 2, 0)
        assert await node.dead_letters.list() == []


async def test_permanent_failure_is_dead_lettered_with_the_workers_error(runtime: str, worker_argv: list[str]) -> None:
    app, name = app_with_worker(worker_argv, runtime, timeout=5.0, retry=crosswire.Retry(max_attempts=5, initial=0.01))
    async with crosswire.Node(app) as node:
        event = await node.submit("test.fail_permanent", {})
        await asyncio.wait_for(node.wait_idle(), 20)
        letters = await node.dead_letters.list()
        assert len(letters) == 1
        letter = letters[0]
        assert letter.binding == f"{name}:test.fail_permanent"
        assert letter.event is not None and letter.event.id == event.id
        assert letter.error.code is ErrorCode.INVALID_ARGUMENT
        assert letter.error.retryable is False
        assert letter.error.message == "permanent failure requested"
        assert letter.error.runtime == runtime
        assert len(letter.attempts) == 1  # never retried


async def test_emitted_events_are_submitted_and_handled(runtime: str, worker_argv: list[str]) -> None:
    app, _ = app_with_worker(worker_argv, runtime, timeout=5.0)
    seen: list[crosswire.Event[object]] = []

    @app.handler("test.emitted")
    async def collect(event: crosswire.Event) -> None:  # type: ignore[type-arg]
        seen.append(event)

    async with crosswire.Node(app) as node:
        parent = await node.submit("test.emit", {"n": 1}, key="k-1")
        await asyncio.wait_for(node.wait_idle(), 20)
    assert len(seen) == 1
    child = seen[0]
    assert child.causationid == parent.id
    assert child.correlationid == parent.id
    assert child.partitionkey == "k-1"
    assert child.data == parent.data


async def test_sigkill_under_load_loses_nothing(runtime: str, worker_argv: list[str]) -> None:
    count = 300
    app, name = app_with_worker(
        worker_argv,
        runtime,
        "--max-in-flight",
        "64",
        timeout=10.0,
        retry=crosswire.Retry(max_attempts=5, initial=0.05),
        concurrency=64,
        restart_backoff_initial=0.05,
    )
    async with crosswire.Node(app) as node:
        pool = node._pools[0]
        for i in range(count):
            await node.submit("test.sleep", {"ms": 50}, id=f"evt-{i:04d}")
        deadline = time.monotonic() + 10
        while pool.statistics().in_flight < 32 or pool.statistics().results < 64:
            assert time.monotonic() < deadline, "the worker never got busy"
            await asyncio.sleep(0.005)
        pid = pool.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(node.wait_idle(), 60)
        stats = node.statistics()
        binding = stats.bindings[f"{name}:test.sleep"]
        worker = stats.workers[name]
        assert worker.restarts == 1
        assert worker.lost >= 32  # the ones in flight at the kill came back as worker_lost ...
        assert binding.handled == count  # ... and every event was handled ok exactly once
        assert binding.dead_lettered == 0
        assert binding.failed_attempts == worker.lost
        assert stats.pending == 0
        assert await node.dead_letters.list() == []


@pytest.mark.parametrize("runtime", ["python"])
async def test_node_reports_a_rejected_worker_at_start(runtime: str, worker_argv: list[str]) -> None:
    app, _ = app_with_worker(worker_argv, runtime, "--protocol-version", "7")
    node = crosswire.Node(app)
    with pytest.raises(crosswire.VersionMismatchError, match=r"worker speaks \[7\], node speaks \[1\]"):
        await node.start()
