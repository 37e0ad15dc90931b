"""spec/vectors/headers/: CloudEvents binary content mode, both ways, byte for byte; and
interop with the official CloudEvents Python SDK in both directions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent, from_http

from crosswire import EnvelopeDecodeError, Event, decode_event
from crosswire._binary import from_binary
from crosswire._binary import to_binary as crosswire_to_binary
from crosswire._jsonform import event_to_dict

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "headers"


def _load(kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((VECTORS / kind).glob("*.json"))]


VALID = _load("valid")
INVALID = _load("invalid")


def test_there_are_vectors() -> None:
    assert len(VALID) >= 10 and len(INVALID) >= 10
    assert {v["direction"] for v in VALID} == {"both", "decode"}


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["name"])
def test_valid(vector: dict[str, Any]) -> None:
    event = decode_event(bytes.fromhex(vector["envelope_hex"]))
    assert event_to_dict(event) == vector["event"]
    decoded = from_binary(vector["headers"], bytes.fromhex(vector["body_hex"]))
    assert decoded == event
    if vector["direction"] == "both":
        headers, body = crosswire_to_binary(event)
        assert headers == vector["headers"]
        assert body.hex() == vector["body_hex"]


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["name"])
def test_invalid(vector: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeDecodeError) as info:
        from_binary(vector["headers"], bytes.fromhex(vector["body_hex"]))
    assert info.value.code == vector["error"], info.value


def test_the_cloudevents_sdk_reads_our_events_with_their_data() -> None:
    ours = Event.new(
        "order.created",
        b'{"order_id": 4242}',
        source="/shop",
        datacontenttype="application/json",
        key="order-4242",
        correlation_id="checkout-1",
        extensions={"region": "eu", "priority": 5},
    )
    headers, body = crosswire_to_binary(ours)
    theirs = from_http(headers, body)
    assert theirs["id"] == ours.id and theirs["type"] == "order.created" and theirs["source"] == "/shop"
    assert theirs["datacontenttype"] == "application/json"
    assert theirs.data == {"order_id": 4242}  # DataAs works: the body is the data only
    assert theirs["partitionkey"] == "order-4242" and theirs["correlationid"] == "checkout-1"
    assert theirs["region"] == "eu" and theirs["priority"] == "5"  # canonical strings on the wire


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_we_read_events_the_cloudevents_sdk_wrote(mode: str) -> None:
    theirs = CloudEvent(
        {
            "type": "order.created",
            "source": "/other-service",
            "id": "ce-1",
            "subject": "order/1",
            "datacontenttype": "application/json",
            "partitionkey": "order-1",
            "region": "eu",
        },
        {"order_id": 1},
    )
    headers, body = to_binary(theirs) if mode == "binary" else to_structured(theirs)
    ours = from_binary(headers, body)
    assert (ours.id, ours.type, ours.source, ours.subject) == ("ce-1", "order.created", "/other-service", "order/1")
    assert ours.datacontenttype == "application/json"
    assert json.loads(ours.data or b"") == {"order_id": 1}
    assert ours.partitionkey == "order-1" and ours.extensions == {"region": "eu"}
    assert event_to_dict(ours)["data"] == {"order_id": 1}
