"""WorkerConnection on a socket pair: coalesced writes, batched reads, heartbeats."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from crosswire import ProtocolError
from crosswire._workers.connection import ConnectionClosedError, WorkerConnection
from crosswire._workers.frames import Deliver, ErrorFrame, Heartbeat


@pytest.fixture
async def pair() -> AsyncIterator[tuple[WorkerConnection, WorkerConnection]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ra, wa = await asyncio.open_unix_connection(sock=a)
    rb, wb = await asyncio.open_unix_connection(sock=b)
    # a connection's label names its peer
    left = WorkerConnection(ra, wa, label="right", max_frame=8192)
    right = WorkerConnection(rb, wb, label="left", max_frame=8192)
    yield left, right
    left.abort("test over")
    right.abort("test over")


async def read_n(conn: WorkerConnection, n: int) -> list[object]:
    frames: list[object] = []
    while len(frames) < n:
        frames.extend(await asyncio.wait_for(conn.read(), 5))
    return frames


async def test_frames_queued_together_go_out_in_one_write(pair: tuple[WorkerConnection, WorkerConnection]) -> None:
    left, right = pair
    for i in range(100):
        left.send(Deliver(id=i, envelope=b"e" * 50, deadline=0))
    await left.flush()
    assert left.writes == 1 and left.frames_sent == 100
    frames = await read_n(right, 100)
    assert [f.id for f in frames] == list(range(100))  # type: ignore[attr-defined]


async def test_oversized_header_closes_with_an_error_frame(pair: tuple[WorkerConnection, WorkerConnection]) -> None:
    left, right = pair
    left.send_bytes((9000).to_bytes(4, "big"))  # > right's max 8192; no body follows
    with pytest.raises(ProtocolError, match="frame too large: 9000 bytes > max 8192"):
        await asyncio.wait_for(right.read(), 5)
    assert right.is_closed
    frames = await read_n(left, 1)
    assert frames == [ErrorFrame(message="frame too large: 9000 bytes > max 8192")]


async def test_silent_peer_is_declared_dead(pair: tuple[WorkerConnection, WorkerConnection]) -> None:
    left, _ = pair
    left.start_heartbeats(0.05)  # right never sends anything
    reason = await asyncio.wait_for(left.wait_closed(), 2)
    assert reason.startswith("right missed 3 heartbeats")
    with pytest.raises(ConnectionClosedError):
        left.send(Heartbeat())


async def test_heartbeats_keep_a_quiet_connection_alive(pair: tuple[WorkerConnection, WorkerConnection]) -> None:
    left, right = pair
    left.start_heartbeats(0.05)
    right.start_heartbeats(0.05)

    async def consume(conn: WorkerConnection) -> None:
        while True:
            await conn.read()

    readers = [asyncio.create_task(consume(left)), asyncio.create_task(consume(right))]
    await asyncio.sleep(0.5)  # 10 intervals with nothing but heartbeats
    assert not left.is_closed and not right.is_closed
    assert left.frames_received >= 5 and right.frames_received >= 5
    for task in readers:
        task.cancel()
