"""Soak: repeated worker kills under sustained load (``make soak``; not in ``make test``)."""

from __future__ import annotations

import asyncio
import contextlib
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


@pytest.mark.parametrize("rounds", [10])
async def test_hostile_peers_repeated_keep_rss_bounded(rounds: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Every hostile case of tests/workers/test_hostile.py, ``rounds`` times, against one node
    process: floods of unauthenticated peers (full-size and small partial frames),
    oversized headers, 100k-deep frames, and impostor hellos racing the real worker's
    restart. Reports the node's RSS before and after."""
    from test_hostile import (
        RSS_BOUND_MB,
        HostileNode,
        deep_frame,
        first_answer,
        flood,
        hello,
    )

    from crosswire._workers.frames import Welcome

    node = await HostileNode.start()
    try:
        before = node.rss
        peak = 0.0
        for _ in range(rounds):
            grown, _ = await flood(node)
            peak = max(peak, grown)
            for _ in range(50):
                reader, writer = await asyncio.open_unix_connection(node.path)
                with contextlib.suppress(OSError):  # the node closes as soon as it has seen enough
                    writer.write(deep_frame(3000))
                    writer.write(b"\xff\xff\xff\xff")
                    await writer.drain()
                    await reader.read()
                writer.close()
            assert node.proc.stdin is not None and node.proc.stdout is not None
            node.proc.stdin.write(b"pid\n")
            await node.proc.stdin.drain()
            _, pid, _restarts = (await node.proc.stdout.readline()).decode().split()
            os.kill(int(pid), signal.SIGKILL)
            for _ in range(200):  # impostors hammer the restart window
                answer = await first_answer(node.path, hello("real"))
                assert not isinstance(answer, Welcome)
            live, state = await node.live_connections()
            while state != "ready":
                await asyncio.sleep(0.05)
                live, state = await node.live_connections()
            assert live == 1, live
        after = node.rss
        with capsys.disabled():
            print(
                f"\nhostile peers x{rounds}: node RSS {before:.1f} MB before, {after:.1f} MB after "
                f"(peak growth in one flood {peak:.1f} MB; bound {RSS_BOUND_MB:g} MB)"
            )
        assert after - before < RSS_BOUND_MB
    finally:
        await node.stop()
