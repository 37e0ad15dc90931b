"""Schema versions on the wire: ``dataschema`` = ``urn:crosswire:schema:<id>:<version>``,
set by :func:`crosswire.schema.new_event`, carried through the envelope, the NATS headers
and a node; and the refusal a node gives a worker that does not accept the version."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import crosswire
import crosswire.schema
from crosswire import Event
from crosswire._envelope import decode_event, encode_event
from crosswire._transports.jetstream.publish import ce_headers
from crosswire.schema import SchemaRef, new_event, parse_dataschema, refusal, schema, schema_ref


@schema("orders.Order", version=3)
class Order(msgspec.Struct):
    order_id: int


class Plain(msgspec.Struct):
    x: int


def test_uri_form_and_parse() -> None:
    ref = SchemaRef("orders.Order", 3)
    assert ref.uri == "urn:crosswire:schema:orders.Order:3"
    assert parse_dataschema(ref.uri) == ref
    assert schema_ref(Order) == ref
    assert schema_ref(Plain) == SchemaRef("Plain", 1)


@pytest.mark.parametrize(
    "uri",
    ["", "https://example.org/order.json", "urn:crosswire:schema:orders.Order", "urn:crosswire:schema:orders.Order:v3",
     "urn:crosswire:schema::1", "urn:crosswire:schema:orders.Order:0"],
)  # fmt: skip
def test_not_a_crosswire_dataschema(uri: str) -> None:
    with pytest.raises(ValueError, match=r"dataschema|schema id|schema version"):
        parse_dataschema(uri)


def test_bad_declarations() -> None:
    with pytest.raises(ValueError, match="schema id"):
        schema("has space")(Plain)
    with pytest.raises(ValueError, match="version"):
        schema("ok", version=0)(Plain)


def test_new_event_carries_dataschema_through_envelope_and_headers() -> None:
    event = new_event("order.created", Order(7), key="order-7")
    assert event.dataschema == "urn:crosswire:schema:orders.Order:3"
    assert event.partitionkey == "order-7"
    assert decode_event(encode_event(event)).dataschema == event.dataschema
    assert ce_headers(event)["ce-dataschema"] == event.dataschema


async def test_a_follow_up_event_keeps_its_dataschema_through_a_node() -> None:
    app = crosswire.App("wire")
    seen: list[Event[Any]] = []

    @app.handler("order.created", emits={"order.validated": Order})
    async def validate(event: Event[Order]) -> Event[Order]:
        return new_event("order.validated", event.payload)

    @app.handler("order.validated")
    async def record(event: Event[Order]) -> None:
        seen.append(event)

    async with crosswire.Node(app) as node:
        await node.submit("order.created", Order(1))
        await node.wait_idle()
    (event,) = seen
    assert event.dataschema == "urn:crosswire:schema:orders.Order:3"
    assert event.payload == Order(1)


def test_refusal_names_both_versions() -> None:
    v1, v2 = SchemaRef("orders.Order", 1).uri, SchemaRef("orders.Order", 2).uri
    event = new_event("order.validated", Order(1))
    assert refusal(event, None, worker="pricing") is None  # declared nothing: anything goes
    assert refusal(event, [v1, v2, event.dataschema or ""], worker="pricing") is None
    assert refusal(event, [v1, v2], worker="pricing") == (
        "event order.validated carries schema orders.Order v3; worker 'pricing' accepts orders.Order v1, orders.Order v2"
    )
    unversioned = Event.new("order.validated", msgspec.msgpack.encode(Order(1)))  # bytes: no schema known
    assert unversioned.dataschema is None
    assert refusal(unversioned, [v1], worker="pricing") is None  # nothing to check


@crosswire.schema.schema("orders.Shipment", version=3)
class Shipment(msgspec.Struct):
    order_id: int


async def test_submit_and_event_new_stamp_the_declared_schema_of_a_payload() -> None:
    app = crosswire.App("stamp")
    seen: list[str | None] = []

    @app.handler("shipment.created")
    async def h(event: crosswire.Event[Shipment]) -> None:
        seen.append(event.dataschema)

    async with crosswire.Node(app) as node:
        await node.submit("shipment.created", Shipment(order_id=1))
        await node.submit("shipment.created", Shipment(order_id=2), extensions={"x": "y"})
        await node.wait_idle(5)
    assert seen == ["urn:crosswire:schema:orders.Shipment:3"] * 2
    assert crosswire.Event.new("t.x", {"a": 1}).dataschema is None  # undeclared types carry none
