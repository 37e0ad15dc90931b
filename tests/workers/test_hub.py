"""The hub and the node's side of a connection against fake workers on raw sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import struct
import sys
import time
from collections.abc import Callable

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
from crosswire._workers.hub import PRE_HELLO_MAX_FRAME


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.01)


async def connect(hub: WorkerHub) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(hub.path)


async def read_frames(reader: asyncio.StreamReader, timeout: float = 5.0) -> list[object]:
    """Every frame the hub sends until it closes the connection."""
    buf = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            buf += chunk
    frames: list[object] = []
    while buf:
        decoded = decode_frame(buf)
        assert decoded is not None, f"hub sent a truncated frame: {buf!r}"
        frame, used = decoded
        frames.append(frame)
        buf = buf[used:]
    return frames


def hello(**fields: object) -> Hello:
    base: dict[str, object] = {
        "versions": [1],
        "name": "fake",
        "runtime": "python",
        "types": ["test.echo"],
        "max_in_flight": 4,
        "max_frame": DEFAULT_MAX_FRAME,
    }
    base.update(fields)
    return Hello(**base)  # type: ignore[arg-type]


async def assert_hub_still_serves(hub: WorkerHub) -> None:
    """A real worker can still connect, handshake and handle an event."""
    pool = WorkerPool(
        WorkerSpec(name="witness", command=(sys.executable, "-m", "crosswire.testworker", "--name", "witness")),
        hub,
    )
    try:
        await pool.start()
        out = await pool.handle(Attempt(event=crosswire.Event.new("test.echo"), binding="witness"))
        assert out.ok
    finally:
        await pool.close()


async def test_socket_is_private(hub: WorkerHub) -> None:
    sock_mode = stat.S_IMODE(os.stat(hub.path).st_mode)
    dir_mode = stat.S_IMODE(os.stat(os.path.dirname(hub.path)).st_mode)
    assert stat.S_ISSOCK(os.stat(hub.path).st_mode)
    assert sock_mode == 0o600
    assert dir_mode == 0o700


async def test_oversized_header_is_refused_before_reading_the_body(hub: WorkerHub) -> None:
    reader, writer = await connect(hub)
    writer.write(b"\xff\xff\xff\xff")  # 4 GiB announced, nothing else sent
    await writer.drain()
    frames = await read_frames(reader)  # the hub answers from the header alone
    # before its hello is accepted a peer may send only a small frame (PRE_HELLO_MAX_FRAME)
    assert frames == [ErrorFrame(message=f"frame too large: 4294967295 bytes > max {PRE_HELLO_MAX_FRAME}")]
    writer.close()
    await assert_hub_still_serves(hub)


async def test_truncated_frame_is_reported_and_hub_keeps_running(
    hub: WorkerHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "crosswire.worker")
    _, writer = await connect(hub)
    writer.write(struct.pack(">I", 100) + b"\x81\xa1t\xa5hello")  # 10 of 100 bytes
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    for _ in range(200):
        if any("middle of a frame" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "closed the connection in the middle of a frame (received 9 of 100 body bytes)" in m for m in messages
    ), messages
    await assert_hub_still_serves(hub)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\xc1", "malformed frame from worker (before hello)"),  # 0xc1: never used in MessagePack
        (msgspec.msgpack.encode([1, 2, 3]), "malformed frame"),
        (msgspec.msgpack.encode({"no_t": 1}), "malformed frame"),
        (msgspec.msgpack.encode({"t": "hello", "versions": "one"}), "invalid frame"),
    ],
    ids=["reserved-byte", "array", "no-type", "wrong-field-type"],
)
async def test_malformed_frames_get_a_clear_error(hub: WorkerHub, body: bytes, expected: str) -> None:
    reader, writer = await connect(hub)
    writer.write(struct.pack(">I", len(body)) + body)
    await writer.drain()
    frames = await read_frames(reader)
    assert len(frames) == 1 and isinstance(frames[0], ErrorFrame), frames
    assert expected in frames[0].message
    writer.close()
    await assert_hub_still_serves(hub)


async def test_empty_frame_is_refused(hub: WorkerHub) -> None:
    reader, writer = await connect(hub)
    writer.write(b"\x00\x00\x00\x00")
    await writer.drain()
    frames = await read_frames(reader)
    assert isinstance(frames[0], ErrorFrame) and "frame length is 0" in frames[0].message
    writer.close()


async def test_first_frame_must_be_hello(hub: WorkerHub) -> None:
    reader, writer = await connect(hub)
    writer.write(encode_frame(Ready()))
    await writer.drain()
    frames = await read_frames(reader)
    assert frames == [ErrorFrame(message="expected a hello frame first, got 'ready'")]
    writer.close()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"versions": [2, 3]}, "unsupported protocol versions: worker speaks [2, 3], node speaks [1]"),
        ({"types": []}, "hello lists no event types to handle"),
        ({"max_in_flight": 0}, "hello max_in_flight must be at least 1"),
        ({"max_frame": 1000}, "hello max_frame 1000 is below the minimum 4096"),
        ({"name": "nobody"}, "no worker named 'nobody' is configured on this node"),
    ],
    ids=["version", "no-types", "no-credit", "tiny-frames", "unknown-name"],
)
async def test_bad_hello_is_rejected_with_a_reason(hub: WorkerHub, fields: dict[str, object], reason: str) -> None:
    pool = WorkerPool(WorkerSpec(name="fake"), hub)  # external: waits for "fake" to connect
    hub.register(pool)
    reader, writer = await connect(hub)
    writer.write(encode_frame(hello(**fields)))
    await writer.drain()
    frames = await read_frames(reader)
    assert len(frames) == 1 and isinstance(frames[0], Reject), frames
    assert frames[0].reason.startswith(reason)
    writer.close()


class FakeWorker:
    """A hand-driven worker: handshake by hand, then misbehave."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = b""

    async def frame(self) -> object:
        while True:
            decoded = decode_frame(self.buf)
            if decoded is not None:
                frame, used = decoded
                self.buf = self.buf[used:]
                return frame
            chunk = await asyncio.wait_for(self.reader.read(65536), 5)
            if not chunk:
                raise EOFError
            self.buf += chunk

    async def until(self, kind: type) -> object:
        while True:
            frame = await self.frame()
            if isinstance(frame, kind):
                return frame


async def handshake(hub: WorkerHub, name: str) -> FakeWorker:
    reader, writer = await connect(hub)
    fake = FakeWorker(reader, writer)
    writer.write(encode_frame(hello(name=name)))
    welcome = await fake.frame()
    assert isinstance(welcome, Welcome) and welcome.version == 1 and welcome.node == "test-node"
    assert isinstance(await fake.until(Init), Init)
    writer.write(encode_frame(Ready()))
    return fake


async def test_external_worker_sending_an_oversized_frame_loses_its_deliveries(hub: WorkerHub) -> None:
    pool = WorkerPool(WorkerSpec(name="external", options=WorkerOptions(heartbeat_interval=5.0, ready_timeout=5)), hub)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(0.05)
    fake = await handshake(hub, "external")
    assert await start == ("test.echo",)
    pending = asyncio.create_task(pool.handle(Attempt(event=crosswire.Event.new("test.echo"), binding="external")))
    from crosswire._workers.frames import Deliver

    deliver = await fake.until(Deliver)
    assert isinstance(deliver, Deliver)
    fake.writer.write(struct.pack(">I", 10 * DEFAULT_MAX_FRAME))
    out = await asyncio.wait_for(pending, 5)
    assert out.error is not None and out.error.code is ErrorCode.WORKER_LOST
    assert f"frame too large: {10 * DEFAULT_MAX_FRAME} bytes > max {DEFAULT_MAX_FRAME}" in out.error.message
    error = await fake.until(ErrorFrame)
    assert isinstance(error, ErrorFrame) and "frame too large" in error.message
    # the pool waits for the external worker to come back
    await wait_until(lambda: pool.state == "initializing")
    fake2 = await handshake(hub, "external")
    await wait_until(lambda: pool.state == "ready")
    assert pool.statistics().restarts == 1
    fake2.writer.close()
    await pool.close()


async def test_second_connection_for_a_connected_worker_is_rejected(hub: WorkerHub) -> None:
    pool = WorkerPool(WorkerSpec(name="single", options=WorkerOptions(ready_timeout=5)), hub)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(0.05)
    fake = await handshake(hub, "single")
    await start
    reader, writer = await connect(hub)
    writer.write(encode_frame(hello(name="single")))
    frames = await read_frames(reader)
    assert frames == [Reject(reason="worker 'single' is already connected")]
    writer.close()
    fake.writer.close()
    await pool.close()


async def test_deliver_carries_attempt_number_and_deadline(hub: WorkerHub) -> None:
    from crosswire._workers.frames import Deliver, Result

    pool = WorkerPool(WorkerSpec(name="ext", options=WorkerOptions(ready_timeout=5)), hub)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(0.05)
    fake = await handshake(hub, "ext")
    await start
    event = crosswire.Event.new("test.echo", b"\x80")
    expected_ms = (time.time() + 5) * 1000
    pending = asyncio.create_task(
        pool.handle(Attempt(event=event, binding="ext:test.echo", number=3, deadline=time.monotonic() + 5))
    )
    deliver = await fake.until(Deliver)
    assert isinstance(deliver, Deliver)
    sent = crosswire.decode_event(deliver.envelope)
    assert sent.id == event.id and sent.attempt == 3
    assert sent.deadline == deliver.deadline
    assert abs(deliver.deadline - expected_ms) < 500
    assert event.attempt == 1 and event.deadline is None  # the caller's event is not mutated

    # an emitted envelope that does not decode: an `internal` outcome naming why
    fake.writer.write(
        encode_frame(
            Result(
                id=deliver.id,
                ok=True,
                start_ns=1,
                duration_ns=2,
                emitted=[b"\x81\xa1x\x01"],
            )
        )
    )
    out = await asyncio.wait_for(pending, 5)
    assert out.error is not None and out.error.code is ErrorCode.INTERNAL
    assert out.error.runtime == "node"
    assert "emitted an invalid event (#0)" in out.error.message and "missing_field" in out.error.message

    # a result for a delivery that was never sent is a protocol violation
    fake.writer.write(encode_frame(Result(id=999, ok=True, start_ns=1, duration_ns=2)))
    error = await fake.until(ErrorFrame)
    assert error == ErrorFrame(message="result for unknown delivery id 999")
    fake.writer.close()
    await pool.close()


async def test_node_bounds_a_worker_that_ignores_its_deadline(hub: WorkerHub) -> None:
    from crosswire._workers.frames import Deliver, Result

    pool = WorkerPool(WorkerSpec(name="slow", options=WorkerOptions(ready_timeout=5)), hub)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(0.05)
    fake = await handshake(hub, "slow")
    await start
    started = time.monotonic()
    out = await pool.handle(
        Attempt(event=crosswire.Event.new("test.echo"), binding="b", deadline=time.monotonic() + 0.2)
    )
    waited = time.monotonic() - started
    assert out.error is not None and out.error.code is ErrorCode.TIMEOUT and out.error.runtime == "node"
    assert 0.2 <= waited < 2.0
    # the worker still has it: its credit stays taken until its result arrives
    assert pool.statistics().in_flight == 1
    deliver = await fake.until(Deliver)
    assert isinstance(deliver, Deliver)
    fake.writer.write(encode_frame(Result(id=deliver.id, ok=True, start_ns=1, duration_ns=2)))
    await wait_until(lambda: pool.statistics().in_flight == 0)

    # no attempt deadline, but the event carries one: it is honoured the same way
    event = crosswire.Event.new("test.echo")
    event.deadline = int((time.time() + 0.2) * 1000)
    out = await pool.handle(Attempt(event=event, binding="b"))
    assert out.error is not None and out.error.code is ErrorCode.TIMEOUT
    deliver = await fake.until(Deliver)
    assert isinstance(deliver, Deliver) and deliver.deadline == event.deadline
    fake.writer.close()
    await pool.close()
