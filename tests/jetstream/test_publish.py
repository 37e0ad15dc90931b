"""The publisher's deadline scan: a batch whose acks do not come fails after the timeout
(not much later), batches that are acknowledged leave nothing behind, and a late ack
of a failed batch is ignored. The header block built straight from an event is the
general way's block, and a batch written as one command is what publish_now writes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats.errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswire import Event, TransportError
from crosswire._binary import from_binary
from crosswire._transports.jetstream.headers import Client, parse_header_block
from crosswire._transports.jetstream.publish import Publisher, ce_headers, event_block, header_block, prepare


async def test_a_batch_without_acks_fails_after_the_timeout(nats_url: str) -> None:
    nc = Client()
    await nc.connect(nats_url)
    try:
        sink = await nc.subscribe("cwtest.sink")  # a listener that never answers: no 503 either
        await nc.flush()
        publisher = Publisher(nc, 0.3, lambda: None)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match=r"1 of 1 messages not acknowledged within 0.3s"):
            await publisher.send([("cwtest.sink", b"x", None)], "the sink")
        assert 0.3 <= time.monotonic() - t0 < 1.0
        msg = await sink.next_msg(timeout=1)
        await nc.publish(msg.reply, b'{"stream":"S","seq":1}')  # a late ack: ignored
        await nc.flush()
        await asyncio.sleep(0.1)
        assert not publisher._awaiting and not publisher._deadlines
    finally:
        await nc.close()


async def test_acknowledged_batches_leave_nothing_behind(nats_url: str) -> None:
    nc = Client()
    await nc.connect(nats_url)
    try:
        sink = await nc.subscribe("cwtest.echo")

        async def answer() -> None:
            async for msg in sink.messages:
                await nc.publish(msg.reply, b'{"stream":"S","seq":7}')

        responder = asyncio.create_task(answer())
        await nc.flush()
        publisher = Publisher(nc, 5.0, lambda: None)
        batches = await asyncio.gather(
            *(publisher.send([("cwtest.echo", b"x", {"Nats-Msg-Id": str(i)})] * 3, "echo") for i in range(200))
        )
        assert all(b.seq == 7 and b.error is None for b in batches)
        assert not publisher._awaiting
        await asyncio.sleep(0.2)  # a few scans
        assert not publisher._deadlines and publisher._scanning is None
        responder.cancel()
    finally:
        await nc.close()


async def test_each_message_of_a_batch_is_answered_once_on_its_own_index(nats_url: str) -> None:
    """Message i of a batch is answered on <inbox>.<batch>.<i>: a repeated answer, or one
    for an index the batch does not have, counts nothing; a refusal is kept by index; a
    stream named "error" is still an ordinary answer; seq is the last stored message's."""
    nc = Client()
    await nc.connect(nats_url)
    try:
        sink = await nc.subscribe("cwtest.index")
        await nc.flush()
        publisher = Publisher(nc, 2.0, lambda: None)
        sending = asyncio.create_task(publisher.send([("cwtest.index", b"x", None)] * 3, "index"))
        replies = [(await sink.next_msg(timeout=1)).reply for _ in range(3)]
        assert [r.rsplit(".", 1)[1] for r in replies] == ["0", "1", "2"]
        assert len({r.rsplit(".", 1)[0] for r in replies}) == 1  # one batch token
        await nc.publish(replies[0], b'{"stream":"error","seq":11}')
        await nc.publish(replies[0], b'{"stream":"error","seq":11}')  # again: not counted
        await nc.publish(replies[0].rsplit(".", 1)[0] + ".3", b'{"stream":"S","seq":99}')  # no such index
        await nc.flush()
        await asyncio.sleep(0.05)
        assert not sending.done()
        await nc.publish(
            replies[1], b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S"}'
        )
        await nc.publish(replies[2], b'{"stream":"S","seq":12,"duplicate":true}')
        batch = await asyncio.wait_for(sending, 1)
        assert batch.failed == {1: 10071} and batch.error_code == 10071
        assert batch.error == "wrong last sequence: 5"
        assert batch.seq == 12 and batch.remaining == 0
        assert not publisher._awaiting
    finally:
        await nc.close()


# -- the header block built straight from the event ---------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(["a", "Z", "0", ".", "/", ":", " ", "%", '"', "\t", "\x7f", "\u00e9", "-"]))


def _events() -> list[Event[Any]]:
    base: dict[str, Any] = {"source": "/shop", "datacontenttype": "application/msgpack"}
    return [
        Event.new("order.created", b"\x81\xa1a\x01", **base),
        Event.new("order.created", b"x", **base, subject="order/4242", key="k", correlation_id="c", causation_id="e0"),
        Event.new("order.created", b"x", **base, idempotency_key="pay", dataschema="urn:s:1"),
        Event.new("order.created", b"x", **base, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        Event.new("order.created", b"x", source="/shop", datacontenttype="text/plain; charset=utf-8"),
        Event.new("order.created", b"x", source="/shop", datacontenttype=" padded"),  # nats-py would strip it
        Event.new("order.created", b"x", source="/shop", datacontenttype="caf\u00e9"),  # ce-datacontenttype
        Event.new("order.created", b"x", source="caf\u00e9", subject="a b"),  # escaped
        Event.new("order.created", b"x", **base, deadline=30.0),
        Event.new("order.created", b"x", **base, extensions={"tenant": "acme"}),
        Event.new("order.created", None, source="/shop", stamp_time=False),
        Event.new("order.created", b"", source="/shop", datacontenttype="application/json"),  # empty data
    ]


@pytest.mark.parametrize("event", _events(), ids=lambda e: ",".join(sorted(ce_headers(e))))
def test_event_block_is_the_general_block(event: Event[Any]) -> None:
    block = event_block(event)
    general = header_block(ce_headers(event))
    assert block is None or block == general
    usual = not event.extensions and event.deadline is None and "%" not in "".join(ce_headers(event).values())
    assert (block is not None) == (usual and general is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": _TEXT.filter(bool), "source": _TEXT.filter(bool), "type": st.sampled_from(["t", "order.created"])},
        optional={
            "subject": _TEXT,
            "time": st.sampled_from(["2026-12-01T10:00:00Z", "2026-12-01T10:00:00.5+01:00"]),
            "datacontenttype": _TEXT,
            "dataschema": _TEXT,
            "correlationid": _TEXT,
            "causationid": _TEXT,
            "tracestate": _TEXT,
            "partitionkey": _TEXT,
            "idempotencykey": _TEXT,
        },
    )
)
def test_event_block_agrees_on_any_attributes(attributes: dict[str, Any]) -> None:
    event: Event[Any] = Event(specversion="1.0", data=b"x", **attributes)
    block = event_block(event)
    assert block is None or block == header_block(ce_headers(event))
    if block is not None:
        assert _reads_back(block, event)


def _reads_back(block: bytes, event: Event[Any]) -> bool:
    headers = parse_header_block(block)
    assert headers is not None
    return from_binary(headers, event.data or b"") == event


def test_prepare_builds_blocks_that_read_back() -> None:
    for event in _events():
        [(subject, body, headers)] = prepare([event], "cw", cloudevents=True, limit=1 << 20)
        assert subject == "cw.order.created" and body == (event.data or b"")
        block = headers if isinstance(headers, bytes) else header_block(headers or {})
        if block is not None:
            assert _reads_back(block, event)


async def test_publish_batch_writes_what_publish_now_writes() -> None:
    messages: list[tuple[str, bytes, bytes | None]] = [
        ("cw.a", b"one", None),
        ("cw.b", b"", b"NATS/1.0\r\nNats-Msg-Id: 2\r\n\r\n"),
        ("cw.a", b"three\r\n", b"NATS/1.0\r\nce-id: 3\r\n\r\n"),
    ]
    one, batch = Client(), Client()
    for nc in (one, batch):
        nc._max_pending_size = 1 << 20  # as connect() sets it: not connected, it buffers
    for i, (subject, body, block) in enumerate(messages):
        one.publish_now(subject, body, f"_INBOX.r.{7 + i}", block)
    batch.publish_batch(messages, "_INBOX.r.", 7)
    assert b"".join(one._pending) == b"".join(batch._pending)
    assert one.stats["out_msgs"] == batch.stats["out_msgs"] == 3
    assert one.stats["out_bytes"] == batch.stats["out_bytes"]


async def test_publish_batch_refuses_all_or_nothing() -> None:
    nc = Client()
    nc._max_pending_size = 1 << 20
    for bad in ("", "has space", "cr\r\nlf"):
        with pytest.raises(nats.errors.BadSubjectError):
            nc.publish_batch([("cw.ok", b"", None), (bad, b"", None)], "_INBOX.r.", 1)
    with pytest.raises(nats.errors.MaxPayloadError):
        nc.publish_batch([("cw.ok", b"", None), ("cw.x", b"x" * (nc._max_payload + 1), None)], "_INBOX.r.", 1)
    assert not nc._pending
    for bad in ("", "_INBOX.r .", "_INBOX.r\r\n."):
        with pytest.raises(nats.errors.BadSubjectError):
            nc.publish_batch([("cw.ok", b"", None)], bad, 1)
    assert not nc._pending
    for batch in range(3):  # a reply prefix for each batch: checked each time, not remembered
        nc.publish_batch([("cw.ok", b"", None)], f"_INBOX.r.{batch}.", 0)
    assert not any(subject.startswith("_INBOX") for subject in nc._valid_subjects)
