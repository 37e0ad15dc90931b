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
from crosswire.testing import eventually

PoolFactory = Callable[..., WorkerPool]


def attempt(type: str, payload: dict[str, Any] | None = None, *, timeout: float | None = None) -> Attempt:
    data = msgspec.msgpack.encode(payload) if payload is not None else None
    event = crosswire.Event.new(type, data, datacontenttype="application/msgpack")
    deadline = time.monotonic() + timeout if timeout is not None else None
    return Attempt(event=event, binding=f"w:{type}", deadline=deadline)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    await eventually(predicate, what, timeout, interval=0.005)


def exists(path: str) -> bool:
    return os.path.exists(path)


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


async def test_spawned_worker_without_a_token_is_admitted_by_its_pid(
    runtime: str, worker_argv: list[str], hub: WorkerHub
) -> None:
    # an SDK that sends no token (an older build): SO_PEERCRED names the spawned process,
    # even when it says hello before the node's spawn() has returned
    name = f"tokenless-{runtime}"
    command = ("env", "-u", "CROSSWIRE_TOKEN", *worker_argv, "--name", name)
    pool = WorkerPool(WorkerSpec(name=name, command=command, options=WorkerOptions(restart_backoff_initial=0.01)), hub)
    try:
        await pool.start()
        for n in range(1, 4):
            pid = pool.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await wait_for(lambda pid=pid: pool.state == "ready" and pool.pid != pid, what=f"restart {n}")
        assert pool.statistics().restarts == 3
        assert (await pool.handle(attempt("test.echo"))).ok
    finally:
        await pool.close()


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
    # the worker still holds the credit, all of it: it is declared hung at once (without
    # waiting for hang_grace) and replaced
    await wait_for(lambda: pool.statistics().hung == 1, what="the worker declared hung")
    await wait_for(lambda: pool.statistics().restarts == 1, what="a replacement worker")
    assert pool.state == "ready" and pool.pid != first_pid
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


# --- 7. reconnects and races ---------------------------------------------------------


def python_worker(name: str, *types: str) -> list[str]:
    """argv of a real Python SDK worker serving ``types`` (each handler succeeds)."""
    script = (
        "from crosswire.worker import Worker\n"
        f"w = Worker({name!r})\n"
        f"for t in {list(types)!r}:\n"
        "    async def h(ctx, event): return None\n"
        "    w.handler(t)(h)\n"
        "w.run()\n"
    )
    return [sys.executable, "-c", script]


async def run_external(argv: list[str], path: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "CROSSWIRE_SOCKET": path},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_reconnect_with_other_types_is_refused(hub: WorkerHub) -> None:
    pool = WorkerPool(WorkerSpec(name="ext", options=WorkerOptions(ready_timeout=20)), hub)
    start = asyncio.create_task(pool.start())
    first = await run_external(python_worker("ext", "a.one"), hub.path)
    procs = [first]
    try:
        assert await asyncio.wait_for(start, 20) == ("a.one",)
        first.kill()
        await first.wait()
        await wait_for(lambda: pool.state == "initializing", what="the session to end")
        other = await run_external(python_worker("ext", "a.one", "b.two"), hub.path)
        procs.append(other)
        assert other.stderr is not None
        stderr = (await asyncio.wait_for(other.stderr.read(), 20)).decode()
        assert await other.wait() != 0
        assert "worker 'ext' must serve the same types as when it started" in stderr, stderr
        assert pool.statistics().types == ("a.one",)
        again = await run_external(python_worker("ext", "a.one"), hub.path)
        procs.append(again)
        await wait_for(lambda: pool.state == "ready", timeout=20, what="the same worker back")
        assert (await pool.handle(attempt("a.one", timeout=5))).ok
    finally:
        await pool.close()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@pytest.mark.parametrize("runtime", ["python", pytest.param("go", marks=pytest.mark.e2e)])
async def test_delivery_racing_a_workers_death_is_worker_lost_logged_once(
    make_pool: PoolFactory, runtime: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "crosswire")
    # credit to spare: deliveries are sent right up to the end, not queued for credit
    pool = make_pool(runtime, "--max-in-flight", "4096", heartbeat_interval=0.1, restart_backoff_initial=0.5)
    await pool.start()
    pid = pool.pid
    assert pid is not None
    # a frozen worker: its heartbeats stop, the node closes the connection, and the
    # process is still there for a moment while deliveries keep coming
    os.kill(pid, signal.SIGSTOP)
    calls = []
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # a delivery every 2 ms, each waiting on its own
            calls.append(asyncio.create_task(pool.handle(attempt("test.echo", timeout=2.0))))
            await asyncio.sleep(0.002)
        outcomes = await asyncio.gather(*calls)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    errors = [o.error for o in outcomes if o.error is not None]
    assert ErrorCode.INTERNAL not in {e.code for e in errors}, errors
    assert ErrorCode.WORKER_LOST in {e.code for e in errors}, errors
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    lost_lines = [r for r in caplog.records if r.getMessage().startswith("worker lost")]
    assert len(lost_lines) == 1, [r.getMessage() for r in lost_lines]


async def test_external_worker_connecting_while_another_starts_is_accepted(tmp_path: Any) -> None:
    warm = tmp_path / "slow.py"
    warm.write_text(
        "import asyncio\nfrom crosswire.worker import Worker\nw = Worker('slow')\n"
        "@w.warmup\nasync def warm():\n    await asyncio.sleep(1.5)\n"
        "@w.handler('s.one')\nasync def h(ctx, event): return None\nw.run()\n"
    )
    socket_path = str(tmp_path / "w.sock")
    app = crosswire.App("race")
    app.worker("slow", command=[sys.executable, str(warm)], timeout=5)
    app.worker("ext", timeout=5, ready_timeout=20)
    node = crosswire.Node(app, worker_socket=socket_path)
    starting = asyncio.create_task(node.start())
    await wait_for(lambda: exists(socket_path), what="the socket")
    ext = await run_external(python_worker("ext", "e.one"), socket_path)  # while 'slow' warms up
    try:
        await asyncio.wait_for(starting, 30)
        stats = node.statistics()
        assert stats.workers["ext"].state == "ready" and stats.workers["ext"].types == ("e.one",)
        assert stats.worker_socket == socket_path
    finally:
        await node.stop()
        with contextlib.suppress(ProcessLookupError):
            ext.kill()
        await ext.wait()


# --- 6. external workers find the node -----------------------------------------------


async def test_configured_socket_path_replaces_a_stale_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "sub" / "node.sock")
    os.makedirs(os.path.dirname(path), mode=0o700)
    # a node SIGKILLed while listening leaves its socket file behind
    squatter = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); print('up', flush=True); time.sleep(60)",
        path,
        stdout=asyncio.subprocess.PIPE,
    )
    assert squatter.stdout is not None
    assert await asyncio.wait_for(squatter.stdout.readline(), 10) == b"up\n"
    with pytest.raises(crosswire.ConfigurationError, match="another node is listening for workers on"):
        await WorkerHub("n", socket_path=path).start()  # a live listener is not stale
    squatter.kill()
    await squatter.wait()
    assert exists(path)
    async with WorkerHub("n", socket_path=path) as hub:
        assert hub.socket_path == path
        pool = WorkerPool(WorkerSpec(name="ext", options=WorkerOptions(ready_timeout=20)), hub)
        start = asyncio.create_task(pool.start())
        ext = await run_external(python_worker("ext", "e.one"), path)
        try:
            await asyncio.wait_for(start, 20)
            assert pool.statistics().socket == path
        finally:
            await pool.close()
            with contextlib.suppress(ProcessLookupError):
                ext.kill()
            await ext.wait()
    assert not exists(path)  # removed on close


async def test_stale_socket_directory_of_a_killed_node_is_removed() -> None:
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio\nfrom crosswire._workers import WorkerHub\n"
        "async def main():\n    h = WorkerHub('n'); await h.start(); print(h.path, flush=True); await asyncio.sleep(60)\n"
        "asyncio.run(main())",
        stdout=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None
    stale = os.path.dirname((await asyncio.wait_for(node.stdout.readline(), 10)).decode().strip())
    node.kill()
    await node.wait()
    assert exists(stale)
    async with WorkerHub("n") as hub:
        assert not exists(stale)
        assert os.path.dirname(hub.path) != stale


# --- 3. unauthenticated connections cost little --------------------------------------

HOSTILE_NODE = os.path.join(os.path.dirname(__file__), "hostile_node.py")
#: The bound docs/workers.md states: RSS growth of the node under 200 unauthenticated peers.
RSS_BOUND_MB = 32.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _peer(path: str, header: int, body: int) -> asyncio.StreamWriter | None:
    """A peer that announces a ``header``-byte frame, sends ``body`` bytes of it, and holds."""
    try:
        _, writer = await asyncio.open_unix_connection(path)
        writer.write(header.to_bytes(4, "big") + b"\x00" * body)
        await asyncio.wait_for(writer.drain(), 2)
    except (OSError, TimeoutError):
        return None
    return writer


class HostileNode:
    """The node's worker side in a child process (tests/workers/hostile_node.py)."""

    def __init__(self, proc: asyncio.subprocess.Process, path: str) -> None:
        self.proc = proc
        self.path = path

    @classmethod
    async def start(cls) -> HostileNode:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, HOSTILE_NODE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[0] == "ready", line
        return cls(proc, line[1])

    @property
    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    async def live_connections(self) -> tuple[int, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"gc\n")
        await self.proc.stdin.drain()
        _, count, state = (await asyncio.wait_for(self.proc.stdout.readline(), 10)).decode().split()
        return int(count), state

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def flood(node: HostileNode, peers: int = 200) -> tuple[float, float]:
    """``peers`` connections each sending most of a full-size frame and holding it, then
    as many holding a small partial frame; returns (peak RSS growth, growth after close)."""
    before = node.rss
    peak = before
    for header, body in ((DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME - 64 * 1024), (4000, 3000)):
        writers = await asyncio.gather(*(_peer(node.path, header, body) for _ in range(peers)))
        await asyncio.sleep(0.3)  # let the node read what it will
        peak = max(peak, node.rss)
        for writer in writers:
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.3)
    return peak - before, node.rss - before


async def test_unauthenticated_peers_cost_a_bounded_rss_and_are_freed() -> None:
    node = await HostileNode.start()
    try:
        grown, left = await flood(node)
        print(f"RSS growth under 200+200 unauthenticated peers: peak {grown:.1f} MB, after close {left:.1f} MB")
        assert grown < RSS_BOUND_MB, f"RSS grew by {grown:.1f} MB"
        # closed connections are freed by reference counting (the child runs with gc disabled)
        await wait_for(lambda: True)
        live, state = await node.live_connections()
        assert (live, state) == (1, "ready")  # only the real worker's connection
    finally:
        await node.stop()


async def test_crosswire_run_worker_socket_option(tmp_path: Any) -> None:
    (tmp_path / "ext_app.py").write_text(
        "import crosswire\napp = crosswire.App('cli-ext')\napp.worker('ext', timeout=5, ready_timeout=30)\n"
    )
    socket_path = str(tmp_path / "workers.sock")
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crosswire._cli",
        "run",
        "ext_app:app",
        "--memory",
        "--worker-socket",
        socket_path,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    ext: asyncio.subprocess.Process | None = None
    try:
        assert node.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while not any(socket_path in line for line in lines):
                line = (await node.stderr.readline()).decode()
                assert line, f"the node exited: {''.join(lines)}"
                lines.append(line)
        assert any(f"workers connect on {socket_path}" in line for line in lines), lines
        ext = await run_external(python_worker("ext", "e.one"), socket_path)
        async with asyncio.timeout(30):  # once the worker is ready the node lists its bindings
            while not any("ext:e.one" in line for line in lines):
                line = (await node.stderr.readline()).decode()
                assert line, f"the node exited: {''.join(lines)}"
                lines.append(line)
    finally:
        if node.returncode is None:
            node.send_signal(signal.SIGTERM)
            await asyncio.wait_for(node.wait(), 30)
        if ext is not None:
            with contextlib.suppress(ProcessLookupError):
                ext.kill()
            await ext.wait()


@pytest.mark.parametrize("runtime", HANG_RUNTIMES)
async def test_events_after_a_hung_handler_are_handled_through_the_node(runtime: str, worker_argv: list[str]) -> None:
    # the issue as an operator saw it: one handler blocks ignoring its deadline, and every
    # later event for that worker timed out waiting for credit and was dead-lettered
    name = f"testworker-{runtime}"
    app = crosswire.App("hung")
    app.worker(
        name,
        command=[*worker_argv, "--name", name, "--max-in-flight", "1"],
        timeout=0.3,
        retry=crosswire.Retry(max_attempts=2, initial=1.5, jitter=0.0),  # the hang's retry comes last
        hang_grace=0.5,
        restart_backoff_initial=0.05,
    )
    async with crosswire.Node(app) as node:
        await node.submit("test.hang", {"ms": 60000})
        # the node times the attempt out at 0.3 s; the worker keeps the credit until it
        # is declared hung (0.3 + 0.5 s) and restarted
        await wait_for(lambda: node.statistics().workers[name].hung == 1, timeout=10, what="a hung worker")
        await wait_for(
            lambda: node.statistics().workers[name].restarts == 1 and node.statistics().workers[name].state == "ready",
            timeout=10,
            what="a restart",
        )
        echoes = [await node.submit("test.echo") for _ in range(3)]
        await wait_for(
            lambda: node.statistics().bindings[f"{name}:test.echo"].handled == len(echoes), what="the echoes"
        )
        await asyncio.wait_for(node.wait_idle(), 30)
        # the retry hung the new worker too: it is restarted again, and then stops at once
        await wait_for(lambda: node.statistics().workers[name].hung == 2, timeout=10, what="the second hang")
        stats = node.statistics()
        letters = await node.dead_letters.list()
    assert [letter.event.type for letter in letters if letter.event is not None] == ["test.hang"]
    assert stats.bindings[f"{name}:test.echo"].dead_lettered == 0
    assert stats.workers[name].hung >= 1 and stats.workers[name].restarts >= 1
