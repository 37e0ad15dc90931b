"""Soak: repeated worker kills under sustained load (``make soak``; not in ``make test``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from test_node_workers import app_with_worker

import crosswire

pytestmark = pytest.mark.soak


@pytest.mark.parametrize("kills", [10])
async def test_repeated_sigkill_under_load_loses_nothing(runtime: str, worker_argv: list[str], kills: int) -> None:
    count = 3000
    app, name = app_with_worker(
        worker_argv,
        runtime,
        "--max-in-flight",
        "64",
        timeout=10.0,
        retry=crosswire.Retry(max_attempts=kills + 5, initial=0.02, max_delay=0.2),
        concurrency=64,
        restart_backoff_initial=0.05,
        restart_backoff_max=0.2,
    )
    async with crosswire.Node(app, max_pending=None) as node:
        pool = node._pools[0]
        for i in range(count):
            await node.submit("test.sleep", {"ms": 20}, id=f"soak-{i:05d}")
        for _ in range(kills):
            deadline = time.monotonic() + 20
            while pool.statistics().in_flight < 16:
                if node.statistics().pending == 0:
                    break
                assert time.monotonic() < deadline, "the worker never got busy again"
                await asyncio.sleep(0.005)
            pid = pool.pid
            if pid is None or node.statistics().pending == 0:
                break
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.15)
        await asyncio.wait_for(node.wait_idle(), 120)
        stats = node.statistics()
        binding = stats.bindings[f"{name}:test.sleep"]
        assert binding.handled == count
        assert binding.dead_lettered == 0
        assert stats.workers[name].restarts >= 3
        assert binding.failed_attempts == stats.workers[name].lost
