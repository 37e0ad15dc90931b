"""A local 3-server NATS cluster: crosswire attaches to an operator's R3 stream as it
is (never turns it into R1), and when one server is SIGKILLed mid-load no
acknowledged event is lost: every one is handled (or dead-lettered)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

import crosswire
from crosswire import Event, TransportError
from crosswire.jetstream import JetStreamTransport, find_nats_server
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    ports = _free_ports(6)
    client, route = ports[:3], ports[3:]
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(3):
        routes = ", ".join(f"nats-route://127.0.0.1:{route[j]}" for j in range(3) if j != i)
        conf = tmp_path / f"n{i}.conf"
        conf.write_text(
            f'server_name: n{i}\nlisten: 127.0.0.1:{client[i]}\njetstream {{ store_dir: "{tmp_path / f"s{i}"}" }}\n'
            f"cluster {{ name: cw, listen: 127.0.0.1:{route[i]}, routes: [{routes}] }}\n"
        )
        log = (tmp_path / f"n{i}.log").open("wb")
        procs.append(subprocess.Popen([find_nats_server(), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log))
    urls = [f"nats://127.0.0.1:{p}" for p in client]
    try:
        yield urls, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _r3_stream(urls: list[str], stream: str, subjects: list[str]) -> None:
    """Create the operator's R3 stream once the cluster has a JetStream leader."""
    deadline = time.monotonic() + 30
    while True:
        try:
            nc = await nats.connect(urls, connect_timeout=1, max_reconnect_attempts=1)
            try:
                await nc.jetstream().add_stream(name=stream, subjects=subjects, num_replicas=3, max_age=3600)
                return
            finally:
                await nc.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_r3_stream_kept_and_no_acknowledged_event_lost_when_a_server_dies(
    cluster: tuple[list[str], list[subprocess.Popen[bytes]]],
) -> None:
    urls, procs = cluster
    await _r3_stream(urls, "CL", ["cl.>"])
    app = crosswire.App("cluster")
    handled: set[str] = set()

    @app.handler("load.item", concurrency=32)
    async def handle(event: crosswire.Event[bytes]) -> None:
        handled.add(event.id)

    consumer = JetStreamTransport(urls, stream="CL", subject_prefix="cl", publish_timeout=5.0)
    publisher = JetStreamTransport(urls, stream="CL", subject_prefix="cl", publish_timeout=5.0)
    acked: set[str] = set()
    async with crosswire.Node(app, transport=consumer) as node, publisher:
        for batch_no in range(40):
            if batch_no == 10:
                procs[1].kill()  # one of three servers dies mid-load
            batch = [Event.new("load.item", f"{batch_no}-{i}".encode()) for i in range(50)]
            for _ in range(20):  # the caller owns a batch that was refused: publish it again
                try:
                    await publisher.publish(batch)
                    acked.update(e.id for e in batch)
                    break
                except TransportError:
                    await asyncio.sleep(0.5)
        await eventually(lambda: acked <= handled, f"every acknowledged event handled ({len(acked)})", 45)
        # the node's publishing connection, idle here, may still be in its reconnect wait
        # when its consuming one has handled everything: ready again within nats-py's wait
        await eventually(lambda: node.ready, "the node ready again", 10)
        info = await publisher.jetstream.stream_info("CL")
    assert info.config.num_replicas == 3, "crosswire reconfigured the operator's R3 stream"
    assert len(acked) >= 1500
    with contextlib.suppress(Exception):
        procs[1].wait(timeout=1)
