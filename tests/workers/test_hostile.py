"""The worker boundary against hostile and broken peers (real worker processes).

Impostors racing a restart, hung handlers, unauthenticated floods, deep nesting,
reconnects with other types, and deliveries racing a worker's death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import crosswire
from crosswire import ErrorCode
from crosswire._types import Attempt
from crosswire._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec
from crosswire._workers.frames import (
    DEFAULT_MAX_FRAME,
    ErrorFrame,
    Hello,
    Init,
    Ready,
    Reject,
    Welcome,
    decode_frame,
    encode_frame,
)

PoolFactory = Callable[..., WorkerPool]


def attempt(type: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None) -> Attempt:
    data = msgspec.msgpack.encode(payload) if payload is not None else None
    event = crosswire.Event.new(type, data, datacontenttype="application/msgpack")
    deadline = time.monotonic() + timeout if timeout is not None else None
    return Attempt(event=event, binding=f"w:{type}", deadline=deadline)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


def hello(name: str, **fields: Any) -> Hello:
    base: dict[str, Any] = {
        "versions": [1],
        "name": name,
        "runtime": "python",
        "types": ["test.echo"],
        "max_in_flight": 4,
        "max_frame": DEFAULT_MAX_FRAME,
    }
    base.update(fields)
    return Hello(**base)


async def first_answer(path: str, frame: Hello, timeout: float = 3.0) -> object | None:
    """Connect, send ``frame``, return the first frame the node answers (None if it closed)."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(encode_frame(frame))
        await writer.drain()
        buf = b""
        async with asyncio.timeout(timeout):
            while True:
                decoded = decode_frame(buf)
                if decoded is not None:
                    return decoded[0]
                chunk = await reader.read(65536)
                if not chunk:
                    return None
                buf += chunk
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# --- 5. only the spawned process takes a spawned worker's slot -------------------------


async def test_impostor_cannot_take_a_restarting_workers_slot(
    make_pool: PoolFactory, runtime: str, hub: WorkerHub
) -> None:
    pool = make_pool(runtime, restart_backoff_initial=0.2)
    await pool.start()
    old_pid = pool.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    answers: list[str] = []
    # hammer the restart window with hello frames naming the worker, without its token
    while not (pool.state == "ready" and pool.pid not in (None, old_pid)):
        answer = await first_answer(hub.path, hello(pool.name))
        answers.append(type(answer).__name__)
        assert not isinstance(answer, Welcome), f"an impostor was welcomed as {pool.name!r}"
        if isinstance(answer, Reject) and "token" not in answer.reason:
            await asyncio.sleep(0.001)
        assert len(answers) < 20000, "the real worker never came back"
    assert "Reject" in answers
    assert pool.statistics().restarts == 1
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_impostor_with_a_wrong_token_is_rejected_and_the_real_worker_starts(
    make_pool: PoolFactory, hub: WorkerHub
) -> None:
    pool = make_pool("python", name="guarded")
    start = asyncio.create_task(pool.start())
    answer = await first_answer(hub.path, hello("guarded", token="x" * 43))
    assert isinstance(answer, Reject) and answer.reason == "worker 'guarded': wrong token"
    answer = await first_answer(hub.path, hello("guarded"))
    assert isinstance(answer, Reject) and answer.reason == "worker 'guarded': missing token"
    assert await start == pool.types  # the impostors did not fail the start
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_external_worker_with_a_token(hub: WorkerHub) -> None:
    token = "s3cret-token-for-ext-worker"
    pool = WorkerPool(WorkerSpec(name="ext", options=WorkerOptions(token=token, ready_timeout=20)), hub)
    start = asyncio.create_task(pool.start())
    answer = await first_answer(hub.path, hello("ext"))
    assert isinstance(answer, Reject) and answer.reason == "worker 'ext': missing token"
    env = {**os.environ, "CROSSWIRE_SOCKET": hub.path, "CROSSWIRE_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crosswire.testworker", "--name", "ext", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.wait_for(start, 20)
        assert (await pool.handle(attempt("test.echo"))).ok
    finally:
        await pool.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# --- 2. a hung worker's credit is reclaimed ------------------------------------------

# test.hang ignores the deadline; the Rust SDK drops a handler's future at its deadline,
# so a Rust handler cannot hang this way (spec/conformance-worker.md)
HANG_RUNTIMES = ["python", pytest.param("go", marks=pytest.mark.e2e)]


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_hung_worker_is_restarted_and_its_credit_reclaimed(
    make_pool: PoolFactory, runtime: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "crosswire.worker")
    # max_in_flight 1: one hung delivery holds all the credit
    pool = make_pool(runtime, "--max-in-flight", "1", hang_grace=0.5, restart_backoff_initial=0.05)
    await pool.start()
    first_pid = pool.pid
    hung = await pool.handle(attempt("test.hang", {"ms": 60000}, timeout=0.3))
    assert hung.error is not None and hung.error.code is ErrorCode.TIMEOUT
    # the worker still holds the credit; after deadline + hang_grace it is restarted
    await wait_for(lambda: pool.statistics().hung == 1, what="the worker declared hung")
    await wait_for(lambda: pool.state == "ready" and pool.pid != first_pid, what="a restarted worker")
    stats = pool.statistics()
    assert stats.restarts == 1 and stats.credit == 1
    assert (await pool.handle(attempt("test.echo", timeout=5))).ok
    assert any("worker hung: delivery 1 still unanswered" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_late_result_after_timeout_is_ignored(make_pool: PoolFactory, runtime: str) -> None:
    pool = make_pool(runtime, hang_grace=5.0)
    await pool.start()
    # the handler overruns its deadline but answers before hang_grace: the late result
    # frees the credit and is counted, nothing else
    out = await pool.handle(attempt("test.hang", {"ms": 900}, timeout=0.2))
    assert out.error is not None and out.error.code is ErrorCode.TIMEOUT
    await wait_for(lambda: pool.statistics().late == 1, what="the late result")
    stats = pool.statistics()
    assert (stats.in_flight, stats.hung, stats.restarts, stats.state) == (0, 0, 0, "ready")
    assert (await pool.handle(attempt("test.echo", timeout=5))).ok


# --- 4. deeply nested MessagePack is malformed, not a crash --------------------------


def deep_frame(depth: int = 100_000, t: str = "heartbeat") -> bytes:
    """A frame whose body map holds ``depth`` nested arrays under an unknown key."""
    body = b"\x82\xa1t" + msgspec.msgpack.encode(t) + b"\xa1x" + b"\x91" * depth + b"\xc0"
    return len(body).to_bytes(4, "big") + body


async def frames_until_closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> list[object]:
    buf = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            buf += chunk
    out: list[object] = []
    while (decoded := decode_frame(buf)) is not None:
        out.append(decoded[0])
        buf = buf[decoded[1] :]
    return out


async def test_deep_first_frame_gets_an_error_frame_naming_the_limit(
    hub: WorkerHub, make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "crosswire")
    reader, writer = await asyncio.open_unix_connection(hub.path)
    writer.write(deep_frame(3000))  # 3000 levels: still under the pre-hello frame limit
    await writer.drain()
    frames = await frames_until_closed(reader)
    writer.close()
    assert len(frames) == 1 and isinstance(frames[0], ErrorFrame), frames
    assert "nesting limit" in frames[0].message
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    # the hub keeps serving real workers
    pool = make_pool("python")
    await pool.start()
    assert (await pool.handle(attempt("test.echo"))).ok


async def test_deep_frame_after_the_handshake_ends_the_session_at_once(hub: WorkerHub) -> None:
    pool = WorkerPool(WorkerSpec(name="deep", options=WorkerOptions(ready_timeout=10, heartbeat_interval=5.0)), hub)
    start = asyncio.create_task(pool.start())
    reader, writer = await asyncio.open_unix_connection(hub.path)
    writer.write(encode_frame(hello("deep")))
    await writer.drain()
    buf = b""
    while not any(isinstance(f, Init) for f in _decode_all(buf)):
        buf += await asyncio.wait_for(reader.read(65536), 5)
    writer.write(encode_frame(Ready()))
    await writer.drain()
    await asyncio.wait_for(start, 5)
    sent = time.monotonic()
    writer.write(deep_frame())
    await writer.drain()
    try:
        frames = await frames_until_closed(reader)
        # the node answers at once with an error frame, well before 3 heartbeat intervals (15 s)
        assert time.monotonic() - sent < 2.0
        errors = [f for f in frames if isinstance(f, ErrorFrame)]
        assert errors and "nesting limit" in errors[-1].message
        await wait_for(lambda: pool.state == "initializing", timeout=2, what="the session ended")
    finally:
        writer.close()
        await pool.close()


def _decode_all(buf: bytes) -> list[object]:
    out: list[object] = []
    while (decoded := decode_frame(buf)) is not None:
        out.append(decoded[0])
        buf = buf[decoded[1] :]
    return out


async def test_worker_sdk_refuses_deep_frames_with_an_error_frame(runtime: str, worker_argv: list[str]) -> None:
    directory = tempfile.mkdtemp(prefix="cw-deep-")
    path = os.path.join(directory, "n.sock")
    conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    server = await asyncio.start_unix_server(lambda r, w: conns.put_nowait((r, w)), path=path)
    proc = await asyncio.create_subprocess_exec(
        *worker_argv,
        env={**os.environ, "CROSSWIRE_SOCKET": path},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        reader, writer = await asyncio.wait_for(conns.get(), 10)
        buf = b""
        while not any(isinstance(f, Hello) for f in _decode_all(buf)):
            buf += await asyncio.wait_for(reader.read(65536), 5)
        writer.write(encode_frame(Welcome(version=1, max_frame=DEFAULT_MAX_FRAME, heartbeat_ms=1000, node="n")))
        writer.write(deep_frame())
        await writer.drain()
        frames = await frames_until_closed(reader, 10)
        assert proc.stderr is not None
        stderr = (await asyncio.wait_for(proc.stderr.read(), 10)).decode()
        code = await asyncio.wait_for(proc.wait(), 10)
        assert code != 0
        assert "nesting limit" in stderr, stderr
        errors = [f for f in frames if isinstance(f, ErrorFrame)]
        assert errors and "nesting limit" in errors[-1].message, frames
        assert "RecursionError" not in stderr and "Traceback" not in stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        server.close()
