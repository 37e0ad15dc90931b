"""WorkerPool against real conformance workers (Python, Go, Rust) over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import crosswire
from crosswire import ErrorCode, VersionMismatchError
from crosswire._types import Attempt, Outcome
from crosswire._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec

PoolFactory = Callable[..., WorkerPool]


def attempt(
    type: str,
    payload: dict[str, Any] | None = None,
    *,
    number: int = 1,
    timeout: float | None = None,
    **fields: Any,
) -> Attempt:
    data = msgspec.msgpack.encode(payload) if payload is not None else None
    event = crosswire.Event.new(type, data, datacontenttype="application/msgpack", **fields)
    deadline = time.monotonic() + timeout if timeout is not None else None
    return Attempt(event=event, binding=f"w:{type}", number=number, deadline=deadline)


async def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def retry_after_sent(outcome: Outcome) -> float | None:
    assert outcome.error is not None
    return outcome.error.retry_after


async def test_happy_path_and_emitted_events(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    types = await pool.start()
    assert set(types) >= {
        "test.echo",
        "test.fail_transient",
        "test.fail_permanent",
        "test.sleep",
        "test.emit",
        "test.panic",
    }
    assert pool.state == "ready"

    outcomes = await asyncio.gather(*(pool.handle(attempt("test.echo", {"i": i})) for i in range(50)))
    assert [o.error for o in outcomes] == [None] * 50
    assert all(o.start_ns > 0 for o in outcomes)

    parent = attempt(
        "test.emit",
        {"k": "v"},
        key="order-7",
        correlation_id="corr-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    out = await pool.handle(parent)
    assert out.ok, out.error
    assert len(out.emitted) == 1
    child = out.emitted[0]
    assert child.type == "test.emitted"
    assert child.data == parent.event.data
    assert child.datacontenttype == "application/msgpack"
    assert child.source == f"testworker-{runtime}"
    assert child.id and child.id != parent.event.id
    assert child.correlationid == "corr-1"
    assert child.causationid == parent.event.id
    assert child.partitionkey == "order-7"
    assert child.traceparent == parent.event.traceparent
    assert child.time is not None

    # no correlation id on the parent: the child correlates to the parent's id
    out = await pool.handle(attempt("test.emit", {}))
    assert out.emitted[0].correlationid == out.emitted[0].causationid

    stats = pool.statistics()
    assert stats.delivered == stats.results == 52
    assert stats.in_flight == 0 and stats.lost == 0 and stats.restarts == 0
    assert stats.pid == pool.pid


async def test_transient_error_then_success(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    for number in (1, 2):
        out = await pool.handle(attempt("test.fail_transient", {"fail_until": 3}, number=number))
        assert out.error is not None
        assert out.error.code is ErrorCode.UNAVAILABLE
        assert out.error.retryable is True
        assert out.error.retry_after == pytest.approx(0.01)
        assert out.error.message == f"transient failure on attempt {number}"
        assert out.error.runtime == runtime
    out = await pool.handle(attempt("test.fail_transient", {"fail_until": 3}, number=3))
    assert out.ok, out.error


async def test_permanent_error_carries_the_workers_envelope(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    out = await pool.handle(attempt("test.fail_permanent"))
    assert out.error is not None
    assert out.error.code is ErrorCode.INVALID_ARGUMENT
    assert out.error.retryable is False
    assert out.error.message == "permanent failure requested"
    assert out.error.runtime == runtime


async def test_deadline_becomes_timeout(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    started = time.monotonic()
    out = await pool.handle(attempt("test.sleep", {"ms": 5000}, timeout=0.3))
    elapsed = time.monotonic() - started
    assert out.error is not None
    assert out.error.code is ErrorCode.TIMEOUT
    assert out.error.retryable is True
    assert out.error.runtime == runtime  # the worker's own deadline fired, not the node's
    assert 0.25 < elapsed < 1.5
    # the worker is still serving
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_panic_is_handler_error_and_worker_survives(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    pid = pool.pid
    out = await pool.handle(attempt("test.panic"))
    assert out.error is not None
    assert out.error.code is ErrorCode.HANDLER_ERROR
    assert out.error.retryable is True
    assert out.error.runtime == runtime
    assert (await pool.handle(attempt("test.echo"))).ok
    assert pool.pid == pid and pool.statistics().restarts == 0


async def test_credit_bounds_deliveries_in_flight(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime, "--max-in-flight", "4")
    await pool.start()
    peak = 0
    waited = 0

    async def sample() -> None:
        nonlocal peak, waited
        while True:
            stats = pool.statistics()
            peak = max(peak, stats.in_flight)
            waited = max(waited, stats.waiting)
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    outcomes = await asyncio.gather(*(pool.handle(attempt("test.sleep", {"ms": 100})) for _ in range(16)))
    elapsed = time.monotonic() - started
    sampler.cancel()
    assert all(o.ok for o in outcomes)
    assert peak == 4
    assert waited >= 8
    assert elapsed >= 0.39  # 16 sleeps of 100 ms, 4 at a time


async def test_sigkill_mid_flight_loses_nothing(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime, "--max-in-flight", "256")
    await pool.start()
    first_pid = pool.pid
    assert first_pid is not None
    attempts = [attempt("test.sleep", {"ms": 3000, "i": i}) for i in range(200)]
    tasks = [asyncio.create_task(pool.handle(a)) for a in attempts]
    await wait_for(lambda: pool.statistics().in_flight == 200, what="200 deliveries in flight")
    os.kill(first_pid, signal.SIGKILL)

    outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert len(outcomes) == 200
    for out in outcomes:
        assert out.error is not None, "a delivery to a killed worker was reported ok"
        assert out.error.code is ErrorCode.WORKER_LOST
        assert out.error.retryable is True
        assert out.error.runtime == "node"
    assert "killed by signal 9" in outcomes[0].error.message  # type: ignore[union-attr]

    await wait_for(lambda: pool.state == "ready" and pool.statistics().restarts == 1, what="restart")
    assert pool.pid != first_pid
    retried = [Attempt(event=a.event, binding=a.binding, number=2) for a in attempts]
    for a in retried:
        a.event = msgspec.structs.replace(a.event, data=msgspec.msgpack.encode({"ms": 10}))
    outcomes = await asyncio.wait_for(asyncio.gather(*(pool.handle(a) for a in retried)), 20)
    assert [o.error for o in outcomes] == [None] * 200
    stats = pool.statistics()
    assert stats.lost == 200 and stats.in_flight == 0
    assert stats.delivered == 400 and stats.results == 200


async def test_sigstop_is_detected_by_heartbeat_silence(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime, heartbeat_interval=0.2)
    await pool.start()
    pid = pool.pid
    assert pid is not None
    pending = asyncio.create_task(pool.handle(attempt("test.sleep", {"ms": 5000})))
    await wait_for(lambda: pool.statistics().in_flight == 1, what="one delivery in flight")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        out = await asyncio.wait_for(pending, 5)
        silent_for = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert out.error is not None and out.error.code is ErrorCode.WORKER_LOST
    assert "missed 3 heartbeats" in out.error.message
    assert 0.5 < silent_for < 2.5
    await wait_for(lambda: pool.state == "ready" and pool.pid != pid, what="restart after SIGSTOP")
    assert pool.statistics().restarts == 1
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_version_mismatch_is_rejected_naming_both_sets(
    make_pool: PoolFactory, runtime: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(runtime, "--protocol-version", "2", ready_timeout=10)
    caplog.set_level(logging.WARNING)
    with pytest.raises(VersionMismatchError) as info:
        await pool.start()
    assert "unsupported protocol versions: worker speaks [2], node speaks [1]" in str(info.value)
    assert pool.state == "failed"
    # the worker says why on stderr, forwarded to its logger
    worker_lines = [r.getMessage() for r in caplog.records if r.name == f"crosswire.worker.{pool.spec.name}"]
    assert any(
        "rejected by node: unsupported protocol versions: worker speaks [2], node speaks [1]" in line
        for line in worker_lines
    ), worker_lines


async def test_drain_finishes_in_flight_work(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    pending = [asyncio.create_task(pool.handle(attempt("test.sleep", {"ms": 200}))) for _ in range(5)]
    await wait_for(lambda: pool.statistics().in_flight == 5, what="five in flight")
    assert await pool.drain(5.0) is True
    assert [(await p).error for p in pending] == [None] * 5
    assert pool.state == "stopped"
    assert pool.returncode == 0
    late = await pool.handle(attempt("test.echo"))
    assert late.error is not None and late.error.code is ErrorCode.CANCELLED


async def test_sigterm_drains_the_worker_on_its_own(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime)
    await pool.start()
    pending = asyncio.create_task(pool.handle(attempt("test.sleep", {"ms": 300})))
    await wait_for(lambda: pool.statistics().in_flight == 1, what="one in flight")
    await pool.close()  # SIGTERM: the worker finishes what it has, then says goodbye
    assert (await pending).ok
    assert pool.returncode == 0
    assert pool.state == "stopped"


async def test_worker_that_exits_is_restarted(make_pool: PoolFactory) -> None:
    pool: WorkerPool = make_pool("python", restart_backoff_initial=0.05)
    await pool.start()
    for n in range(1, 3):
        pid = pool.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda pid=pid: pool.state == "ready" and pool.pid != pid, what=f"restart {n}")
        assert pool.statistics().restarts == n
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_worker_that_dies_at_start_fails_start_with_its_stderr(
    hub: WorkerHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "crosswire.worker.dies")
    script = (
        "import sys; print('starting'); print('loading config'); "
        "print('config file missing', file=sys.stderr); sys.exit(3)"
    )
    pool = WorkerPool(WorkerSpec(name="dies", command=(sys.executable, "-c", script)), hub)
    with pytest.raises(crosswire.ProtocolError) as info:
        await pool.start()
    assert "exited before it connected" in str(info.value)
    assert "exited with code 3: config file missing" in str(info.value)
    assert pool.state == "failed"
    # stdout and stderr went to the worker's logger, line by line
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "crosswire.worker.dies"]
    assert (logging.INFO, "starting") in lines
    assert (logging.INFO, "loading config") in lines
    assert (logging.WARNING, "config file missing") in lines
    await pool.close()


async def test_missing_executable_fails_start_clearly(hub: WorkerHub) -> None:
    pool = WorkerPool(WorkerSpec(name="missing", command=("/nonexistent/worker",)), hub)
    with pytest.raises(crosswire.ProtocolError, match="cannot start '/nonexistent/worker'"):
        await pool.start()
    await pool.close()


async def test_worker_that_never_says_hello_times_out(hub: WorkerHub) -> None:
    pool = WorkerPool(
        WorkerSpec(
            name="mute",
            command=(sys.executable, "-c", "import time; time.sleep(60)"),
            options=WorkerOptions(ready_timeout=0.5),
        ),
        hub,
    )
    started = time.monotonic()
    with pytest.raises(crosswire.ProtocolError, match=r"was not ready within 0\.5 s"):
        await pool.start()
    assert time.monotonic() - started < 3
    assert pool.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pool.pid, 0)  # killed, not left behind
    await pool.close()


async def test_event_over_the_workers_max_frame_is_not_sent(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime, "--max-frame", "4096")
    await pool.start()
    big = attempt("test.echo", {"blob": b"x" * 8000})
    out = await pool.handle(big)
    assert out.error is not None and out.error.code is ErrorCode.INVALID_ARGUMENT
    assert out.error.retryable is False and out.error.runtime == "node"
    assert "> its max_frame 4096" in out.error.message
    stats = pool.statistics()
    assert stats.delivered == 0 and stats.in_flight == 0
    assert (await pool.handle(attempt("test.echo", {"blob": b"x" * 1000}))).ok
    assert pool.statistics().restarts == 0


async def test_a_supervisor_crash_fails_the_pool_loudly(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "crosswire.worker")
    pool = make_pool("python")

    async def broken_serve(session: object) -> str:
        raise RuntimeError("supervisor bug")

    monkeypatch.setattr(pool, "_serve", broken_serve)  # fault injection: a bug past the first start
    await pool.start()
    await wait_for(lambda: pool.state == "failed", what="the pool to fail")
    assert any(r.exc_info and "supervisor bug" in str(r.exc_info[1]) for r in caplog.records)
    out = await pool.handle(attempt("test.echo"))
    assert out.error is not None and out.error.code is ErrorCode.CANCELLED
