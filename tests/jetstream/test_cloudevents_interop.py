"""crosswire events are real CloudEvents on NATS, both ways, with the official SDKs:
the CloudEvents Go SDK (sdk-go v2.16.2 with its NATS JetStream binding, built from the
Go module proxy) and the CloudEvents Python SDK, through a real nats-server; and events
stored in the previous format (the whole envelope as the body) still reach handlers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent, from_http

import crosswire
import crosswire.testing
from crosswire import App, Event, Node, encode_event
from crosswire.jetstream import JetStreamTransport

GO_CLIENT = Path(__file__).parent / "cloudevents_go"

pytestmark = pytest.mark.nats


class Order(msgspec.Struct):
    order_id: int
    sku: str


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.fail("go is needed to build the CloudEvents Go SDK client (make test installs nothing else)")
    out = tmp_path_factory.mktemp("cloudevents-go") / "cloudevents-go"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=GO_CLIENT, check=True, timeout=600)
    return out


class _Inbox:
    def __init__(self) -> None:
        self.events: list[Event[Order]] = []
        self.arrived = asyncio.Event()


def _app(inbox: _Inbox) -> App:
    app = App("interop")

    @app.handler("order.created")
    async def created(event: Event[Order]) -> None:
        inbox.events.append(event)
        inbox.arrived.set()

    return app


async def _node(nats_url: str, names: tuple[str, str], inbox: _Inbox) -> Node:
    stream, prefix = names
    transport = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix)
    node = Node(_app(inbox), transport)
    await node.start()
    return node


async def test_an_event_the_go_sdk_publishes_reaches_the_handler_with_every_attribute(
    nats_url: str, names: tuple[str, str], go_client: Path
) -> None:
    inbox = _Inbox()
    node = await _node(nats_url, names, inbox)
    try:
        stream, prefix = names
        proc = await asyncio.create_subprocess_exec(
            str(go_client), "send", nats_url, stream, f"{prefix}.order.created", stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        async with asyncio.timeout(15):
            await inbox.arrived.wait()
        (event,) = inbox.events
        assert (event.id, event.source, event.type, event.subject) == (
            "go-sdk-1",
            "/go-service",
            "order.created",
            "order/7",
        )
        assert event.time is not None and event.time.startswith("2026-12-01T10:00:00")
        assert event.datacontenttype == "application/json"
        assert event.payload == Order(order_id=7, sku="A-1")
        assert event.partitionkey == "order-7" and event.correlationid == "checkout-7"
        assert event.extensions == {"region": "eu"}
        assert await node.dead_letters.list() == []
    finally:
        await node.drain(5)


async def test_the_go_sdk_reads_our_events_with_data_as_working(
    nats_url: str, names: tuple[str, str], go_client: Path
) -> None:
    stream, prefix = names
    async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix) as transport:
        event = Event.new(
            "order.created",
            json.dumps({"order_id": 42, "sku": "B-2"}).encode(),
            source="/shop",
            datacontenttype="application/json",
            key="order-42",
            correlation_id="checkout-42",
            extensions={"region": "eu", "priority": 5},
        )
        await transport.publish([event])
        proc = await asyncio.create_subprocess_exec(
            str(go_client),
            "receive",
            nats_url,
            stream,
            f"{prefix}.order.created",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        got: dict[str, Any] = json.loads(out)
    assert (got["id"], got["source"], got["type"]) == (event.id, "/shop", "order.created")
    assert got["datacontenttype"] == "application/json"
    assert "data_error" not in got, got.get("data_error")
    assert got["data"] == {"order_id": 42, "sku": "B-2"}  # DataAs: the body is the data only
    assert got["extensions"]["partitionkey"] == "order-42"
    assert got["extensions"]["correlationid"] == "checkout-42"
    assert got["extensions"]["region"] == "eu" and got["extensions"]["priority"] == "5"


@pytest.mark.parametrize("mode", ["binary", "structured"])
async def test_an_event_the_python_sdk_publishes_reaches_the_handler(
    nats_url: str, names: tuple[str, str], mode: str
) -> None:
    inbox = _Inbox()
    node = await _node(nats_url, names, inbox)
    try:
        theirs = CloudEvent(
            {
                "type": "order.created",
                "source": "/py-service",
                "id": f"py-{mode}",
                "datacontenttype": "application/json",
                "partitionkey": "order-9",
            },
            {"order_id": 9, "sku": "C-3"},
        )
        headers, body = to_binary(theirs) if mode == "binary" else to_structured(theirs)
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().publish(f"{names[1]}.order.created", body, headers=dict(headers))
        finally:
            await nc.close()
        async with asyncio.timeout(15):
            await inbox.arrived.wait()
        (event,) = inbox.events
        assert (event.id, event.source, event.partitionkey) == (f"py-{mode}", "/py-service", "order-9")
        assert event.payload == Order(order_id=9, sku="C-3")
    finally:
        await node.drain(5)


async def test_the_python_sdk_reads_our_events_off_the_stream(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix) as transport:
        event = Event.new("order.created", b'{"order_id": 1}', datacontenttype="application/json", key="k-1")
        await transport.publish([event])
        msg = await transport.jetstream.get_msg(stream, seq=1)
    theirs = from_http(dict(msg.headers or {}), msg.data or b"")
    assert theirs["id"] == event.id and theirs["type"] == "order.created"
    assert theirs["partitionkey"] == "k-1"
    assert theirs.data == {"order_id": 1}


async def test_events_stored_in_the_previous_format_still_reach_their_handler(
    nats_url: str, names: tuple[str, str]
) -> None:
    """Before binary mode the body was the whole MessagePack envelope, with ce-* headers
    beside it (or none, with cloudevents_headers=False)."""
    prefix = names[1]
    inbox = _Inbox()
    node = await _node(nats_url, names, inbox)
    old = [Event.new("order.created", msgspec.msgpack.encode(Order(order_id=i, sku="D")), key=f"o-{i}") for i in (1, 2)]
    for e in old:
        e.datacontenttype = "application/msgpack"
    try:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            with_headers = {
                "Nats-Msg-Id": old[0].id,
                "ce-specversion": "1.0",
                "ce-id": old[0].id,
                "ce-source": old[0].source,
                "ce-type": old[0].type,
                "ce-datacontenttype": "application/msgpack",
                "ce-partitionkey": "o-1",
            }
            await js.publish(f"{prefix}.order.created", encode_event(old[0]), headers=with_headers)
            await js.publish(f"{prefix}.order.created", encode_event(old[1]), headers={"Nats-Msg-Id": old[1].id})
        finally:
            await nc.close()
        async with asyncio.timeout(15):
            while len(inbox.events) < 2:
                inbox.arrived.clear()
                await inbox.arrived.wait()
        assert sorted(e.payload.order_id for e in inbox.events) == [1, 2]
        assert {e.partitionkey for e in inbox.events} == {"o-1", "o-2"}
        assert await node.dead_letters.list() == []
    finally:
        await node.drain(5)


async def test_an_undecodable_message_keeps_its_attributes_in_the_dead_letter(
    nats_url: str, names: tuple[str, str]
) -> None:
    prefix = names[1]
    inbox = _Inbox()
    node = await _node(nats_url, names, inbox)
    try:
        nc = await nats.connect(nats_url)
        try:
            headers = {"ce-specversion": "1.0", "ce-id": "bad-1", "ce-type": "order.created", "ce-deadline": "soon"}
            await nc.jetstream().publish(f"{prefix}.order.created", b"{}", headers=headers)
        finally:
            await nc.close()

        async def dead_lettered() -> bool:
            return bool(await node.dead_letters.list())

        await crosswire.testing.eventually(dead_lettered, "the undecodable message is dead-lettered", 15.0)
        letters = await node.dead_letters.list()
        (letter,) = letters
        assert letter.event is None and letter.error.code is crosswire.ErrorCode.INVALID_ARGUMENT
        assert "ce-deadline" in letter.error.message
        assert letter.headers is not None and letter.headers["ce-id"] == "bad-1"
        assert letter.headers["ce-type"] == "order.created"
    finally:
        await node.drain(5)


def test_the_go_client_is_vetted() -> None:
    if shutil.which("go") is None:
        pytest.fail("go is needed")
    out = subprocess.run(["go", "vet", "."], cwd=GO_CLIENT, capture_output=True, text=True, timeout=600, env=os.environ)
    assert out.returncode == 0, out.stderr
