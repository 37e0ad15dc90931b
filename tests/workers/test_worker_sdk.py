"""The worker side: each SDK's conformance worker against a fake node, and the Python SDK's API."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import crosswire
import crosswire.worker
from crosswire import ConfigurationError, ErrorCode
from crosswire._workers.frames import (
    DEFAULT_MAX_FRAME,
    Deliver,
    Hello,
    Init,
    Ready,
    Result,
    Welcome,
    decode_frame,
    encode_frame,
)
from crosswire.worker import Context, Fail, Permanent, Reject, Retryable, RetryLater, Worker


class FakeNode:
    """A listening socket that speaks the node's side by hand."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cw-fake-")
        self.path = os.path.join(self.dir, "n.sock")
        self.conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.buf = b""

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(lambda r, w: self.conns.put_nowait((r, w)), path=self.path)

    async def accept(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.conns.get(), 10)

    async def frame(self, reader: asyncio.StreamReader) -> Any:
        while True:
            decoded = decode_frame(self.buf)
            if decoded is not None:
                self.buf = self.buf[decoded[1] :]
                return decoded[0]
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                raise EOFError("worker closed the connection")
            self.buf += chunk


@pytest.fixture
async def fake_node() -> AsyncIterator[FakeNode]:
    node = FakeNode()
    await node.start()
    yield node
    node.server.close()


async def spawn(argv: list[str], node: FakeNode, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        *args,
        env={**os.environ, "CROSSWIRE_SOCKET": node.path},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    assert proc.stderr is not None
    stderr = await asyncio.wait_for(proc.stderr.read(), 10)
    return await asyncio.wait_for(proc.wait(), 10), stderr.decode()


async def test_worker_refuses_an_oversized_frame_from_the_node(
    runtime: str, worker_argv: list[str], fake_node: FakeNode
) -> None:
    proc = await spawn(worker_argv, fake_node)
    reader, writer = await fake_node.accept()
    hello = await fake_node.frame(reader)
    assert isinstance(hello, Hello)
    assert hello.versions == [1] and hello.runtime == runtime and hello.max_frame == DEFAULT_MAX_FRAME
    assert hello.name == f"testworker-{runtime}" and hello.max_in_flight == 64
    writer.write(b"\xff\xff\xff\xff")
    await writer.drain()
    code, stderr = await finish(proc)
    assert code != 0
    assert f"crosswire: frame too large: 4294967295 bytes > max {DEFAULT_MAX_FRAME}" in stderr
    writer.close()


async def test_worker_exits_when_the_node_goes_silent(
    runtime: str, worker_argv: list[str], fake_node: FakeNode
) -> None:
    proc = await spawn(worker_argv, fake_node)
    reader, writer = await fake_node.accept()
    assert isinstance(await fake_node.frame(reader), Hello)
    writer.write(encode_frame(Welcome(version=1, max_frame=DEFAULT_MAX_FRAME, heartbeat_ms=100, node="fake")))
    writer.write(encode_frame(Init()))
    await writer.drain()
    started = time.monotonic()
    code, stderr = await finish(proc)  # we never send a heartbeat
    assert code != 0, stderr
    assert 0.25 < time.monotonic() - started < 3
    writer.close()


async def test_worker_handles_deliveries_from_a_hand_driven_node(
    runtime: str, worker_argv: list[str], fake_node: FakeNode
) -> None:
    proc = await spawn(worker_argv, fake_node, "--max-in-flight", "2")
    reader, writer = await fake_node.accept()
    assert isinstance(await fake_node.frame(reader), Hello)
    writer.write(encode_frame(Welcome(version=1, max_frame=DEFAULT_MAX_FRAME, heartbeat_ms=1000, node="fake")))
    writer.write(encode_frame(Init()))
    await writer.drain()
    while not isinstance(await fake_node.frame(reader), Ready):
        pass
    event = crosswire.Event.new("test.unknown.type")
    writer.write(encode_frame(Deliver(id=7, envelope=crosswire.encode_event(event), deadline=0)))
    writer.write(encode_frame(Deliver(id=8, envelope=b"\xc1not an envelope", deadline=0)))
    await writer.drain()
    results: dict[int, Result] = {}
    while len(results) < 2:
        frame = await fake_node.frame(reader)
        if isinstance(frame, Result):
            results[frame.id] = frame
    assert results[7].ok is False and results[7].error is not None
    assert results[7].error.code is ErrorCode.UNIMPLEMENTED and results[7].error.runtime == runtime
    assert results[8].ok is False and results[8].error is not None
    assert results[8].error.code is ErrorCode.INVALID_ARGUMENT
    proc.kill()
    await proc.wait()
    writer.close()


# --- the Python SDK's API --------------------------------------------------------------


def test_handler_registration_is_checked() -> None:
    w = Worker("w")

    @w.handler("a.b")
    async def ok(ctx: Context, event: crosswire.Event[Any]) -> None: ...

    with pytest.raises(ConfigurationError, match="already registered"):
        w.handler("a.b")(ok)
    with pytest.raises(ConfigurationError, match="must be an async function"):
        w.handler("c")(lambda ctx, event: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigurationError, match="max_in_flight"):
        Worker("w", max_in_flight=0)


def test_wildcard_handlers_match_nats_style() -> None:
    w = Worker("w")

    async def one(ctx: Context, event: crosswire.Event[Any]) -> None: ...
    async def rest(ctx: Context, event: crosswire.Event[Any]) -> None: ...

    w.handler("order.*")(one)
    w.handler("audit.>")(rest)
    assert w._lookup("order.created") is one
    assert w._lookup("order.created.v2") is None
    assert w._lookup("audit.x.y") is rest
    assert w._lookup("audit") is None


def test_worker_signals_are_the_in_process_signals() -> None:
    assert (crosswire.worker.RetryLater, crosswire.worker.Reject, crosswire.worker.Fail) == (
        crosswire.RetryLater,
        crosswire.Reject,
        crosswire.Fail,
    )
    r = RetryLater(after=2.5, reason="slow down")
    assert (r.info.code, r.info.retryable, r.info.retry_after) == (ErrorCode.UNAVAILABLE, True, 2.5)
    j = Reject("bad order")
    assert (j.info.code, j.info.retryable) == (ErrorCode.REJECTED, False)
    f = Fail(ErrorCode.NOT_FOUND, "no such sku", retryable=False, details={"sku": "x"})
    assert (f.info.code, f.info.retryable, f.info.details) == (ErrorCode.NOT_FOUND, False, {"sku": "x"})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_error_signals_build_envelopes() -> None:
    with pytest.deprecated_call():
        Retryable("unavailable")
    r = Retryable("resource_exhausted", "slow down", after=2.5)
    assert (r.info.code, r.info.retryable, r.info.retry_after, r.info.runtime) == (
        ErrorCode.RESOURCE_EXHAUSTED,
        True,
        2.5,
        "python",
    )
    p = Permanent(ErrorCode.NOT_FOUND, "no such sku", details={"sku": "x"})
    assert (p.info.code, p.info.retryable, p.info.details) == (ErrorCode.NOT_FOUND, False, {"sku": "x"})
    with pytest.raises(ValueError, match="unknown error code 'nope'"):
        Retryable("nope")


def test_emit_keeps_what_the_handler_set() -> None:
    incoming = crosswire.Event.new("in", key="k1", correlation_id="c1")
    ctx = Context("enricher", 1, incoming, 0)
    out = ctx.emit(crosswire.Event.new("out", b"x", source="custom", correlation_id="mine"))
    assert out.source == "custom" and out.correlationid == "mine"
    assert out.causationid == incoming.id and out.partitionkey == "k1"
    plain = ctx.emit(crosswire.Event.new("out2"))
    assert plain.source == "enricher" and plain.correlationid == "c1"
    assert ctx.emitted == [out, plain]
    assert msgspec.msgpack.decode(crosswire.encode_event(out))["type"] == "out"


WARMUP_WORKER = """
import asyncio, os, sys
from crosswire.worker import Worker
w = Worker("warm")

@w.warmup
async def warm() -> None:
    await asyncio.sleep(float(os.environ["WARMUP_SECONDS"]))
    if os.environ["WARMUP_FAIL"] == "1":
        raise RuntimeError("cache unreachable")

@w.handler("test.echo")
async def echo(ctx, event) -> None:
    return None

w.run()
"""


@pytest.mark.parametrize(("seconds", "fail"), [(0.8, False), (0.0, True)], ids=["slow", "failing"])
async def test_python_warmup_hook(tmp_path: Any, seconds: float, fail: bool) -> None:
    from crosswire._types import Attempt
    from crosswire._workers import WorkerHub, WorkerOptions, WorkerPool, WorkerSpec

    script = tmp_path / "warm.py"
    script.write_text(WARMUP_WORKER)
    env = {"WARMUP_SECONDS": str(seconds), "WARMUP_FAIL": "1" if fail else "0"}
    async with WorkerHub() as hub:
        # heartbeats every 0.1 s: a warm-up of 0.8 s must not look like silence
        spec = WorkerSpec(
            name="warm",
            command=(sys.executable, str(script)),
            env=env,
            options=WorkerOptions(heartbeat_interval=0.1, ready_timeout=10),
        )
        pool = WorkerPool(spec, hub)
        try:
            if fail:
                with pytest.raises(crosswire.ProtocolError, match="warm-up failed: RuntimeError: cache unreachable"):
                    await pool.start()
            else:
                assert await pool.start() == ("test.echo",)
                out = await pool.handle(Attempt(event=crosswire.Event.new("test.echo"), binding="b"))
                assert out.ok
        finally:
            await pool.close()
