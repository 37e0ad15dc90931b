"""The process boundary: how many events per second cross node → worker → node.

Measured in one run, on this machine:

- ``rust_*`` / ``go_*``: :meth:`WorkerPool.handle` against the Rust and Go conformance
  workers (``test.echo``, a 128-byte payload), with 1 and 256 deliveries in flight;
- ``raw_echo_*``: a bare asyncio Unix-socket client and echo server (separate process)
  with the same framing and the same DELIVER bytes — what asyncio itself allows, the
  practical limit for any Python-side protocol;
- ``grpc_aio``: ``grpc.aio`` unary calls (256 in flight) to a Python ``grpc.aio`` server
  in another process over a Unix socket, bytes in and out (generic handlers, no
  generated code), the server decoding the same envelope.

The last line printed is one JSON object (see ``main``). ``--quick`` shortens each run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

import crosswire
from crosswire._types import Attempt
from crosswire._workers import WorkerHub, WorkerPool, WorkerSpec
from crosswire._workers.frames import Deliver, encode_frame

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = b"x" * 128
IN_FLIGHT = 256


def _event() -> crosswire.Event[Any]:
    return crosswire.Event.new(
        "test.echo", msgspec.msgpack.encode({"p": PAYLOAD[:120]}), datacontenttype="application/msgpack"
    )


async def _measure(call: Callable[[], Awaitable[object]], concurrency: int, seconds: float) -> tuple[float, float]:
    """Run ``call`` from ``concurrency`` loops for ``seconds``; returns (calls/s, p99 ms)."""
    for _ in range(min(200, concurrency * 4)):  # warm up
        await call()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    clock = time.perf_counter

    async def loop() -> None:
        append = latencies.append
        while True:
            t0 = clock()
            await call()
            t1 = clock()
            append(t1 - t0)
            if t1 >= stop:
                return

    started = clock()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = clock() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return len(latencies) / elapsed, p99


# --- the workers --------------------------------------------------------------------


def _worker_binary(runtime: str) -> list[str] | None:
    if runtime == "python":
        return [sys.executable, "-m", "crosswire.testworker"]
    if runtime == "go":
        binary = Path(os.environ.get("CROSSWIRE_GO_TESTWORKER", ROOT / "sdk/go/bin/crosswire-testworker"))
        tool, cwd = "go", ROOT / "sdk/go"
        build = ["go", "build", "-o", str(binary), "./cmd/crosswire-testworker"]
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "sdk/rust/target"))
        binary = Path(os.environ.get("CROSSWIRE_RUST_TESTWORKER", target / "release/examples/testworker"))
        tool, cwd = "cargo", ROOT / "sdk/rust"
        build = [
            "cargo",
            "build",
            "--release",
            "--quiet",
            "--example",
            "testworker",
            "--target-dir",
            str(binary.parents[2]),
        ]
    if not binary.exists() and shutil.which(tool) is not None:
        proc = subprocess.run(build, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"# building the {runtime} worker failed:\n{proc.stderr}", file=sys.stderr)
    if not binary.exists():
        print(f"# {runtime} conformance worker not available ({binary}); skipping it", file=sys.stderr)
        return None
    return [str(binary)]


async def bench_worker(hub: WorkerHub, runtime: str, seconds: float) -> dict[str, tuple[float, float]]:
    argv = _worker_binary(runtime)
    if argv is None:
        return {}
    name = f"bench-{runtime}"
    pool = WorkerPool(WorkerSpec(name=name, command=(*argv, "--name", name, "--max-in-flight", str(IN_FLIGHT))), hub)
    await pool.start()
    try:
        attempt = Attempt(event=_event(), binding=name)

        async def call() -> None:
            outcome = await pool.handle(attempt)
            if outcome.error is not None:
                raise RuntimeError(f"{runtime} worker failed: {outcome.error}")

        return {
            f"{runtime}_1": await _measure(call, 1, seconds),
            f"{runtime}_256": await _measure(call, IN_FLIGHT, seconds),
        }
    finally:
        await pool.drain(5.0)
        await pool.close()


# --- raw asyncio echo ---------------------------------------------------------------


async def _echo_server(path: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while chunk := await reader.read(256 * 1024):
            buf += chunk
            pos = 0
            while len(buf) - pos >= 4:
                (length,) = struct.unpack_from(">I", buf, pos)
                if len(buf) - pos - 4 < length:
                    break
                pos += 4 + length
            if pos:
                writer.write(buf[:pos])  # echo every complete frame, coalesced
                buf = buf[pos:]
                await writer.drain()

    server = await asyncio.start_unix_server(serve, path=path)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class _EchoClient:
    """Frames out through one writer task, replies matched in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.out: list[bytes] = []
        self.wake = asyncio.Event()
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]

    async def _write(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            data = b"".join(self.out)
            self.out.clear()
            self.writer.write(data)
            await self.writer.drain()

    async def _read(self) -> None:
        buf = b""
        while chunk := await self.reader.read(256 * 1024):
            buf += chunk
            pos = 0
            while len(buf) - pos >= 4:
                (length,) = struct.unpack_from(">I", buf, pos)
                if len(buf) - pos - 4 < length:
                    break
                msgspec.msgpack.decode(memoryview(buf)[pos + 4 : pos + 4 + length])  # like a RESULT
                pos += 4 + length
                self.waiting.popleft().set_result(None)
            buf = buf[pos:]

    async def call(self, frame: bytes) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.out.append(frame)
        self.wake.set()
        await fut


async def bench_raw_echo(seconds: float, tmp: str) -> dict[str, tuple[float, float]]:
    path = os.path.join(tmp, "echo.sock")
    server = await _spawn_helper("--echo-server", path)
    try:
        reader, writer = await asyncio.open_unix_connection(path)
        client = _EchoClient(reader, writer)
        event = _event()
        ids = iter(range(1, 1 << 62))

        async def call() -> None:
            envelope = crosswire.encode_event(event)
            await client.call(encode_frame(Deliver(id=next(ids), envelope=envelope, deadline=0)))

        result = {
            "raw_echo_1": await _measure(call, 1, seconds),
            "raw_echo_256": await _measure(call, IN_FLIGHT, seconds),
        }
        for task in client.tasks:
            task.cancel()
        writer.close()
        return result
    finally:
        server.kill()
        await server.wait()


# --- grpc.aio -----------------------------------------------------------------------


async def _grpc_server(path: str) -> None:
    import grpc

    async def call(request: bytes, context: Any) -> bytes:
        crosswire.decode_event(request)
        return b"\x81\xa2ok\xc3"

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Boundary", {"Call": grpc.unary_unary_rpc_method_handler(call)}),)
    )
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def bench_grpc(seconds: float, tmp: str) -> dict[str, tuple[float, float]]:
    import grpc

    path = os.path.join(tmp, "grpc.sock")
    server = await _spawn_helper("--grpc-server", path)
    try:
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            method = channel.unary_unary("/bench.Boundary/Call")
            body = crosswire.encode_event(_event())

            async def call() -> None:
                await method(body)

            return {"grpc_aio": await _measure(call, IN_FLIGHT, seconds)}
    finally:
        server.kill()
        await server.wait()


async def _spawn_helper(flag: str, path: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, flag, path, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        raise RuntimeError(f"{flag} helper did not start")
    return proc


# --- main ---------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


async def run(seconds: float, with_python: bool) -> dict[str, Any]:
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        async with WorkerHub("bench") as hub:
            for runtime in ("rust", "go", *(("python",) if with_python else ())):
                results.update(await bench_worker(hub, runtime, seconds))
        results.update(await bench_raw_echo(seconds, tmp))
        results.update(await bench_grpc(seconds, tmp))
    for key, (rate, p99) in results.items():
        print(f"# {key:>14}: {rate:>10,.0f} events/s   p99 {p99:7.2f} ms", file=sys.stderr)
    rate = {k: v[0] for k, v in results.items()}
    keys = ("rust_256", "go_256", "rust_1", "go_1", "raw_echo_256", "raw_echo_1", "grpc_aio")
    return {
        "bench": "boundary",
        "events_per_s": {k: round(rate[k]) if k in rate else None for k in keys},
        "p99_ms": {k: round(results[k][1], 3) if k in results else None for k in ("rust_256", "go_256")},
        "ratios": {
            "rust_256_vs_grpc": _ratio(rate.get("rust_256"), rate.get("grpc_aio")),
            "go_256_vs_grpc": _ratio(rate.get("go_256"), rate.get("grpc_aio")),
            "rust_1_vs_raw_echo_1": _ratio(rate.get("rust_1"), rate.get("raw_echo_1")),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1.5 s per measurement instead of 5 s")
    parser.add_argument("--python", action="store_true", help="also measure the Python worker SDK")
    parser.add_argument("--echo-server", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--grpc-server", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_echo_server(args.echo_server))
        return
    if args.grpc_server:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_grpc_server(args.grpc_server))
        return
    report = asyncio.run(run(1.5 if args.quick else 5.0, args.python))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
