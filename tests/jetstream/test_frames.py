"""The cheap read of a delivery's header block (frames.read_block) answers only what the
general way (parse_header_block, then from_binary, then the contradiction check)
answers the same, on the header vectors, crosswire's own events and odd blocks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswire import EnvelopeDecodeError, Event, encode_event
from crosswire._binary import from_binary
from crosswire._envelope import MAX_DATA
from crosswire._transports.jetstream import frames
from crosswire._transports.jetstream.frames import read_block
from crosswire._transports.jetstream.headers import parse_header_block
from crosswire._transports.jetstream.publish import ce_headers, event_block

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "headers"


def _block(headers: dict[str, str]) -> bytes:
    """The header block as nats-py writes it."""
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    return b"NATS/1.0\r\n" + lines + b"\r\n"


def _general(block: bytes, body: bytes) -> Event[Any] | str:
    """What the general way makes of a message: its event, or why it has none."""
    headers = parse_header_block(block)
    if headers is None:
        return "left to nats-py"
    try:
        return from_binary(headers or None, body)
    except EnvelopeDecodeError as exc:
        return exc.code


def _agree(block: bytes, body: bytes) -> bool:
    """read_block gives nothing, or what the general way gives; whether it gave something."""
    read = read_block(block, body)
    if read is None:
        return False
    event, msgid = read
    assert _general(block, body) == event
    assert msgid == (parse_header_block(block) or {}).get("Nats-Msg-Id")
    return True


def _vectors(kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((VECTORS / kind).glob("*.json"))]


@pytest.mark.parametrize("vector", _vectors("valid"), ids=lambda v: v["name"])
def test_valid_header_vectors(vector: dict[str, Any]) -> None:
    _agree(_block(vector["headers"]), bytes.fromhex(vector["body_hex"]))


@pytest.mark.parametrize("vector", _vectors("invalid"), ids=lambda v: v["name"])
def test_invalid_header_vectors_are_left_to_the_general_way(vector: dict[str, Any]) -> None:
    assert read_block(_block(vector["headers"]), bytes.fromhex(vector["body_hex"])) is None


def _event(**kw: Any) -> Event[Any]:
    base: dict[str, Any] = {"source": "/shop", "datacontenttype": "application/msgpack"}
    return Event.new("order.created", b"\x81\xa1a\x01", **{**base, **kw})


OWN = [
    _event(),
    _event(subject="order/4242", key="k-1", correlation_id="c", causation_id="e0", idempotency_key="pay"),
    _event(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    _event(datacontenttype="text/plain; charset=utf-8"),
    _event(subject="caf\u00e9 au lait"),  # escaped: left to the general way
    _event(deadline=30.0),  # ce-deadline: left to the general way
    _event(extensions={"tenant": "acme", "n": 3}),  # extensions: left to the general way
    Event.new("order.created", None, source="/shop"),  # no data, no content type
    Event.new("order.created", b"", source="/shop", datacontenttype="application/json"),  # empty data
]


@pytest.mark.parametrize("event", OWN, ids=lambda e: ",".join(sorted(ce_headers(e))))
def test_crosswire_events(event: Event[Any]) -> None:
    headers = ce_headers(event)
    block, body = _block(headers), event.data or b""
    read = _agree(block, body)
    assert _general(block, body) == event
    plain = set(headers) <= {"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "content-type"} | {
        "ce-subject",
        "ce-partitionkey",
        "ce-correlationid",
        "ce-causationid",
        "ce-idempotencykey",
        "ce-traceparent",
        "Nats-Msg-Id",
    }
    assert read == (plain and "%" not in "".join(headers.values()))


BASE = {
    "ce-specversion": "1.0",
    "ce-id": "e1",
    "ce-source": "/s",
    "ce-type": "t.x",
    "ce-time": "2026-12-01T10:00:00Z",  # ':' in a value
    "content-type": "application/json",
}
ODD = [
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-id: b\r\nce-source: s\r\nce-type: t\r\n\r\n",  # twice
    b"NATS/1.0\r\nce-specversion: 1.0\r\nCe-Id: a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # other case
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id:\ta\r\nce-source: s\r\nce-type: t\r\n\r\n",  # a tab
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id:  a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # two spaces
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a \r\nce-source: s\r\nce-type: t\r\n\r\n",  # trailing space
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id :a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # space before ':'
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id:a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # no space
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a: b\r\nce-source: s\r\nce-type: t\r\n\r\n",  # ': ' in a value
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\x01b\r\nce-source: s\r\nce-type: t\r\n\r\n",  # a control
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: caf\xc3\xa9\r\nce-source: s\r\nce-type: t\r\n\r\n",  # UTF-8
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\xc2\xa0\r\nce-source: s\r\nce-type: t\r\n\r\n",  # NBSP
    b'NATS/1.0\r\nce-specversion: 1.0\r\nce-id: "a"\r\nce-source: s\r\nce-type: t\r\n\r\n',  # quoted
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\\b\r\nce-source: s\r\nce-type: t\r\n\r\n",  # backslash
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a%20b\r\nce-source: s\r\nce-type: t\r\n\r\n",  # escape
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\n\r\nce-source: s\r\nce-type: t\r\n\r\n",  # empty line
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: \r\nce-source: s\r\nce-type: t\r\n\r\n",  # empty id
    b"NATS/1.0\r\nce-specversion: 2.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # version
    b"NATS/1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\n\r\n",  # no specversion
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\nce-x: 1\r\n\r\n",  # extension
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\nce-time: noon\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\nce-traceparent: 1\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\nNats-Msg-Id: b\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\nX-Other: b\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: a\r\nce-source: s\r\nce-type: t\r\n",  # no end
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1\r\n\r\n",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id: \r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id:  e1\r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id: e1 \r\n\r\n",
    b"NATS/1.0\r\nNats-Msg-Id: e\xc3\xa9\r\n\r\n",
    _block({**BASE, "content-type": "application/cloudevents+json"}),
    _block({**BASE, "content-type": "Application/CloudEvents+JSON; charset=utf-8"}),
    _block({**BASE, "ce-datacontenttype": "application/json"}),
    _block({**BASE, "ce-id": "x" * 257}),  # too long
    _block({**BASE, "ce-type": ""}),
    _block(BASE),
]


@pytest.mark.parametrize("block", ODD)
def test_odd_blocks(block: bytes) -> None:
    for body in (b"", b"{}", b"\xde\x00\x00", encode_event(_event())):
        _agree(block, body)


def test_the_usual_block_is_read_cheaply() -> None:
    assert _agree(_block(BASE), b"{}")
    assert _agree(_block({**BASE, "ce-subject": "a:b:c", "Nats-Msg-Id": "e1"}), b"{}")


def test_a_lean_block_reads_the_envelope() -> None:
    event = _event()
    for msgid in (event.id, "other"):
        block = b"NATS/1.0\r\nNats-Msg-Id: %b\r\n\r\n" % msgid.encode()
        assert _agree(block, encode_event(event))
        assert read_block(block, encode_event(event)) == (event, msgid)
        assert not _agree(block, b"not msgpack")


def test_a_body_in_the_previous_format_is_left_to_the_general_way() -> None:
    event = _event()
    assert read_block(_block(ce_headers(event)), encode_event(event)) is None
    assert _general(_block(ce_headers(event)), encode_event(event)) == event


def test_data_over_the_limit_is_left_to_the_general_way() -> None:
    body = b"x" * (MAX_DATA + 1)
    assert read_block(_block(BASE), body) is None
    assert _general(_block(BASE), body) == "too_large"


def test_a_contradicting_message_id_is_reported() -> None:
    read = read_block(_block({**BASE, "Nats-Msg-Id": "other"}), b"{}")
    assert read is not None and read[1] == "other"


_PIECES = [b"ce-id", b"ce-type", b"Ce-Id", b": ", b":", b" ", b"\t", b"\r\n", b"%", b'"', b"\xc3\xa9", b"a", b"1.0"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.sampled_from(_PIECES)), max_size=4))
def test_mutated_blocks(edits: list[tuple[int, bytes]]) -> None:
    block = bytearray(_block({**BASE, "ce-subject": "a:b", "Nats-Msg-Id": "e1"}))
    for at, piece in edits:
        block[at % len(block) : at % len(block)] = piece
    _agree(bytes(block), b"{}")


# -- through a real server ------------------------------------------------------------------


async def _take(sub: Any, n: int) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(10):
        async for delivery in sub:
            got.append(delivery)
            if len(got) == n:
                return got
    return got


async def test_deliveries_take_the_direct_path_and_odd_ones_still_decode(transport: Any) -> None:
    from crosswire._transports.jetstream.delivery import JetStreamDelivery

    plain = _event()
    big = Event.new("order.created", b"\r\n" * 300_000, source="/s", datacontenttype="application/octet-stream")
    await transport.publish([plain, big])
    nc = transport.connection
    subject = transport.subject_for("order.created")
    odd = {k: v for k, v in BASE.items() if k != "content-type"}
    odd.update({"ce-type": "order.created", "ce-id": "odd-1", "ce-subject": " padded", "Content-Type": "text/plain"})
    foreign = {**BASE, "ce-type": "order.created", "ce-id": "ext-1", "ce-tenant": "acme corp"}
    for headers in (odd, foreign):
        await nc.publish(subject, b"hi", headers={**headers, "Nats-Msg-Id": headers["ce-id"]})
    sub = await transport.subscribe("order.created", "direct", prefetch=8)
    consume = transport._consume
    assert consume._direct.get(sub._sub._id) == sub._on_frame
    got: list[JetStreamDelivery] = await _take(sub, 4)
    events = [d.event for d in got]
    assert events[:2] == [plain, big]
    assert isinstance(got[0]._headers, bytes)  # read by read_block, parsed only when asked for
    assert got[0].headers is not None and got[0].headers["ce-id"] == plain.id
    assert events[2] is not None and events[2].subject == "padded" and events[2].datacontenttype == "text/plain"
    assert events[3] is not None and events[3].extensions == {"tenant": "acme corp"}
    for delivery in got:
        await delivery.ack()
    await sub.close()
    assert sub._sub._id not in consume._direct


# -- blocks in the layout crosswire writes, read from the producer's lines seen before -----

_IDS = [b"e2", b"x" * 64, b"x" * 65, b"a-b_c.d:e", b"", b"a b", b"a%20b", b'"q"', b"a\\b", b"caf\xc3\xa9", b"a\tb"]
_TIMES = [b"2026-12-01T10:00:00Z", b"2026-12-01t10:00:00.123456789+01:00", b"noon", b"", b"2026-12-01T10:00:00Z "]


def _own_block(event: Event[Any]) -> bytes:
    block = event_block(event)
    assert block is not None
    return block


@pytest.mark.parametrize("event", [e for e in OWN if event_block(e) is not None], ids=lambda e: e.id[-4:])
def test_a_producers_lines_seen_before_read_as_the_general_way(event: Event[Any]) -> None:
    """The first block teaches the producer's lines; blocks with other ids and times
    (good and bad ones) are then read from them, as the general way reads them."""
    block, body = _own_block(event), event.data or b""
    assert _agree(block, body)
    assert frames._producers[_lines(block)].data is None  # no body kept
    for new_id in _IDS:
        for time in _TIMES if event.time is not None else [None]:
            other = block.replace(event.id.encode(), new_id)
            if time is not None:
                assert event.time is not None
                other = other.replace(event.time.encode(), time)
            for data in (body, b"", b"\xde\x00\x00", b"x" * (MAX_DATA + 1)):
                if _agree(other, data) and data == body:
                    read = read_block(other, data)
                    assert read is not None and read[0].id == new_id.decode()


def _lines(block: bytes) -> bytes:
    lines = block[block.index(b"\r\n", len(frames._OWN)) + 2 : block.rindex(b"\r\nNats-Msg-Id: ") + 2]
    at = lines.find(b"ce-time: ")
    return lines if at < 0 else lines[:at] + lines[lines.index(b"\r\n", at) + 2 :]


def test_lines_with_another_id_or_time_are_not_kept() -> None:
    head = b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: e1\r\nce-source: /s\r\nce-type: t.x\r\n"
    for extra in (b"ce-time: 2026-12-01T10:00:00Z\r\nce-time: 2026-12-01T11:00:00Z\r\n", b"ce-id: e1\r\n"):
        block = head + extra + b"Nats-Msg-Id: e1\r\n\r\n"
        _agree(block, b"{}")
        assert _lines(block) not in frames._producers
        changed = block.replace(b"10:00", b"12:00").replace(b"e1", b"e9")
        _agree(changed, b"{}")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.sampled_from(_PIECES)), max_size=3))
def test_mutated_blocks_of_a_known_producer(edits: list[tuple[int, bytes]]) -> None:
    event = _event(subject="a:b")
    block = _own_block(event)
    _agree(block, b"{}")  # the producer's lines are known now
    mutated = bytearray(block)
    for at, piece in edits:
        mutated[at % len(mutated) : at % len(mutated)] = piece
    _agree(bytes(mutated), b"{}")


def test_blocks_of_the_producer_read_last_are_matched_piece_by_piece() -> None:
    """Once a producer's lines were read from what is kept, its next blocks are matched
    against them piece by piece: good ones read as the general way reads them, and any
    other (other lines, other lengths, another id at the end, another producer's) still
    agrees with the general way."""
    first, second = _event(subject="a:b"), _event(source="/other")
    for event in (first, first):  # learnt, then read from what is kept
        assert _agree(_own_block(event), event.data or b"")
    assert frames._last[2] is not None and frames._last[2].source == "/shop"
    block, body = _own_block(first), first.data or b""
    assert first.time is not None
    time = first.time.encode()
    for new_id in _IDS:
        for new_time in _TIMES:
            other = block.replace(first.id.encode(), new_id).replace(time, new_time)
            if _agree(other, body):
                assert frames._last[2].source == "/shop"  # still the same producer's
    for other in (
        block.replace(b"\r\nNats-Msg-Id: ", b"\r\nce-x: 1\r\nNats-Msg-Id: "),
        block.replace(b"\r\ncontent-type: ", b"\r\nce-partitionkey: k\r\ncontent-type: "),
        block.replace(b"\r\nce-time: ", b"\r\nce-time: \r\nce-time: "),
        block[:-6] + b"X\r\n\r\n",  # another id at the end
        block.replace(b"\r\n\r\n", b"\r\n"),
        block + b"\r\n",
    ):
        _agree(other, body)
    for event in (second, second, first):  # another producer's, then this one's again
        assert _agree(_own_block(event), event.data or b"")
    assert frames._last[2] is not None and frames._last[2].source == "/shop"
