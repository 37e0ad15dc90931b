"""A hung worker is replaced without a gap (real worker processes).

A handler that ignores its deadline keeps that delivery's credit, and the protocol
gives it back only when the connection ends. Healthy events must not wait for that:
the pool starts a replacement while the hung process serves on, routes new deliveries
to it once it is ready, and retires the hung process after what it still runs for the
node has finished.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import crosswire
from crosswire import ErrorCode
from crosswire._types import Attempt
from crosswire._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec
from crosswire.testing import eventually

PoolFactory = Callable[..., WorkerPool]
# test.hang ignores its deadline; a Rust handler's future is dropped at its deadline
HANG_RUNTIMES = ["python", pytest.param("go", marks=pytest.mark.e2e)]


def attempt(type: str, payload: dict[str, Any] | None = None, *, timeout: float) -> Attempt:
    data = msgspec.msgpack.encode(payload) if payload is not None else None
    event = crosswire.Event.new(type, data, datacontenttype="application/msgpack")
    return Attempt(event=event, binding=f"w:{type}", deadline=time.monotonic() + timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie is not alive
        return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_healthy_events_are_not_delayed_past_their_deadline_by_hung_siblings(
    make_pool: PoolFactory, runtime: str
) -> None:
    # two hangs take all the credit; hang_grace (5 s) is far past the healthy events'
    # deadline (2 s): before, they waited for the hung credit until hang_grace and timed out
    pool = make_pool(runtime, "--max-in-flight", "2", hang_grace=5.0)
    await pool.start()
    first_pid = pool.pid
    assert first_pid is not None
    hangs = [asyncio.create_task(pool.handle(attempt("test.hang", {"ms": 60000}, timeout=0.3))) for _ in range(2)]
    await eventually(lambda: pool.statistics().in_flight == 2, "two hung deliveries", 10.0)
    start = time.monotonic()
    echoes = await asyncio.gather(*(pool.handle(attempt("test.echo", timeout=2.0)) for _ in range(20)))
    took = time.monotonic() - start
    assert [o.error for o in echoes] == [None] * 20, [o.error for o in echoes if o.error][:2]
    assert took < 2.0
    for hung in await asyncio.gather(*hangs):
        assert hung.error is not None and hung.error.code is ErrorCode.TIMEOUT
    stats = pool.statistics()
    assert (stats.hung, stats.restarts, stats.state) == (1, 1, "ready")
    assert pool.pid != first_pid
    # the hung process had only fenced deliveries left: it is gone
    await eventually(lambda: not alive(first_pid), "the hung process retired", 10.0)


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_deliveries_on_a_hung_process_still_finish_with_their_result(
    make_pool: PoolFactory, runtime: str
) -> None:
    # a slow but healthy delivery shares the process with a hung one: it is not lost to
    # the restart (before: worker_lost, at deadline + hang_grace); the retired process
    # gets nothing new and ends after it
    pool = make_pool(runtime, "--max-in-flight", "3", hang_grace=0.3)
    await pool.start()
    first_pid = pool.pid
    assert first_pid is not None
    slow = asyncio.create_task(pool.handle(attempt("test.sleep", {"ms": 2000}, timeout=10)))
    hung = await pool.handle(attempt("test.hang", {"ms": 60000}, timeout=0.2))
    assert hung.error is not None and hung.error.code is ErrorCode.TIMEOUT
    await eventually(lambda: pool.statistics().restarts == 1, "a replacement", 10.0)
    assert pool.pid != first_pid and alive(first_pid)  # the retiring process runs the slow delivery
    assert (await pool.handle(attempt("test.echo", timeout=2.0))).ok  # served by the replacement
    out = await slow
    assert out.ok, out.error
    await eventually(lambda: not alive(first_pid), "the hung process retired", 10.0)
    stats = pool.statistics()
    assert (stats.hung, stats.restarts, stats.lost) == (1, 1, 1)  # lost: the fenced hang, whose caller is gone


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_events_keep_their_deadline_through_the_node_while_siblings_hang(
    runtime: str, worker_argv: list[str]
) -> None:
    # one attempt each: an event delayed past its deadline by the hangs is dead-lettered.
    # The echoes arrive 1.5 s after the hangs, which hold all the credit until their
    # deadline (2 s): then the worker is replaced, long before the echoes' deadline (3.5 s)
    # — before, they waited for the hung credit until hang_grace (5 s)
    name = f"testworker-{runtime}"
    app = crosswire.App("hung")
    app.worker(
        name,
        command=[*worker_argv, "--name", name, "--max-in-flight", "2"],
        timeout=2.0,
        retry=crosswire.Retry(max_attempts=1),
        hang_grace=5.0,
    )
    async with crosswire.Node(app) as node:
        for _ in range(2):
            await node.submit("test.hang", {"ms": 60000})
        await eventually(lambda: node.statistics().workers[name].in_flight == 2, "two hung deliveries", 10.0)
        await asyncio.sleep(1.5)
        for _ in range(30):
            await node.submit("test.echo")
        await asyncio.wait_for(node.wait_idle(), 30)
        stats = node.statistics()
    assert stats.bindings[f"{name}:test.echo"].handled == 30
    assert stats.bindings[f"{name}:test.echo"].dead_lettered == 0
    assert stats.bindings[f"{name}:test.hang"].dead_lettered == 2
    assert stats.workers[name].hung == 1


async def test_a_replacement_that_fails_to_start_falls_back_to_a_restart(
    hub: WorkerHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the second process (the replacement) exits at once; the hung one is retired all
    # the same and the worker restarted as after a loss: the third process serves
    count = tmp_path / "spawns"
    script = tmp_path / "worker.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(($(cat "{count}" 2>/dev/null || echo 0) + 1)); echo $n > "{count}"\n'
        '[ "$n" = 2 ] && { echo "not today" >&2; exit 1; }\n'
        f'exec "{sys.executable}" -m crosswire.testworker --name flaky --max-in-flight 1\n'
    )
    script.chmod(0o755)
    spec = WorkerSpec(
        name="flaky", command=(str(script),), options=WorkerOptions(hang_grace=5.0, restart_backoff_initial=0.05)
    )
    pool = WorkerPool(spec, hub)
    try:
        await pool.start()
        first_pid = pool.pid
        assert first_pid is not None
        hung = await pool.handle(attempt("test.hang", {"ms": 60000}, timeout=0.2))
        assert hung.error is not None and hung.error.code is ErrorCode.TIMEOUT
        out = await pool.handle(attempt("test.echo", timeout=10))
        assert out.ok, out.error
        assert count.read_text().strip() == "3"
        stats = pool.statistics()
        assert (stats.hung, stats.restarts, stats.state) == (1, 1, "ready")
        await eventually(lambda: not alive(first_pid), "the hung process retired", 10.0)
        assert any("replacement failed" in r.getMessage() for r in caplog.records)
    finally:
        await pool.close()
