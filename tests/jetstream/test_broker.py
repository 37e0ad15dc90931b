"""One embedded broker per data directory, supervised: a second transport on the same
data dir joins the running server; the owner restarts a server that died (same store,
same port) and the node is not ready meanwhile; when the owner goes, a joiner runs
the broker on the same store and port."""

from __future__ import annotations

from pathlib import Path

import pytest

import crosswire
from crosswire import Event
from crosswire.jetstream import JetStreamTransport
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


async def stream_count(t: JetStreamTransport) -> int:
    return int((await t.jetstream.stream_info(t.stream)).state.messages)


async def test_a_second_transport_on_the_same_data_dir_joins_the_running_server(data_dir: Path) -> None:
    async with JetStreamTransport(data_dir=str(data_dir)) as first:
        assert first.server is not None and first.server.running
        async with JetStreamTransport(data_dir=str(data_dir)) as second:
            assert second.server is None  # joined: no second nats-server on the same store
            assert second.connection.connected_url.port == first.server.port
            await second.publish([Event.new("join.x", b"1")])
            assert await stream_count(first) == 1


async def test_the_owner_restarts_a_dead_server_and_the_node_is_not_ready_meanwhile(data_dir: Path) -> None:
    app = crosswire.App("broker")
    seen: list[str] = []

    @app.handler("sup.x")
    async def handle(event: crosswire.Event[bytes]) -> None:
        seen.append(event.id)

    transport = JetStreamTransport(data_dir=str(data_dir))
    async with crosswire.Node(app, transport=transport) as node:
        server = transport.server
        assert server is not None
        port = server.port
        await server.kill()  # the broker dies under the node
        await eventually(lambda: not node.ready, "node not ready while its broker is down", 10)
        await eventually(lambda: node.ready, "broker restarted and node ready again", 20)
        assert server.running and server.port == port
        event = await node.submit("sup.x", b"after")
        await eventually(lambda: event.id in seen, "an event submitted after the restart is handled", 20)


async def test_when_the_owner_goes_a_joiner_runs_the_broker_on_the_same_store_and_port(data_dir: Path) -> None:
    first = JetStreamTransport(data_dir=str(data_dir))
    await first.start()
    assert first.server is not None
    port = first.server.port
    await first.publish([Event.new("own.x", b"kept")])
    second = JetStreamTransport(data_dir=str(data_dir))
    await second.start()
    try:
        assert second.server is None
        await first.close()  # the owner stops (and its server with it)
        await eventually(lambda: second.server is not None and second.connected, "the joiner took over", 20)
        assert second.server is not None and second.server.port == port
        assert await stream_count(second) == 1  # same store
    finally:
        await second.close()
