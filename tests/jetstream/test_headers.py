"""The cheap header parser on crosswire's NATS connections gives what nats-py's own
parser gives, and the private method it overrides still has the shape it relies on."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, cast

import nats.errors
import pytest
from nats.aio.client import Client as NatsClient

from crosswire._transports.jetstream.delivery import ack_metadata
from crosswire._transports.jetstream.headers import Client, parse_header_block

BLOCKS = [
    b"NATS/1.0\r\nNats-Msg-Id: abc\r\nce-specversion: 1.0\r\nce-id: 1\r\ncontent-type: application/json\r\n\r\n",
    b"NATS/1.0\r\nce-subject: caf\xc3\xa9 %20 x\r\nce-x:no-space\r\nce-y:\tTabbed \r\n\r\n",
    b"NATS/1.0\r\nEmpty:\r\n\r\n",
    b"NATS/1.0\r\nce-a: 1\r\nce-a: 2\r\n\r\n",
]
STATUS = [
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1016\r\nNats-Last-Stream: 1024\r\n\r\n",
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 10\r\n\r\n",
]


@pytest.mark.parametrize("block", BLOCKS + STATUS)
async def test_the_same_headers_as_nats_py(block: bytes) -> None:
    ours = await Client()._process_headers(block)
    theirs = await NatsClient()._process_headers(block)
    assert ours == theirs


def test_status_lines_are_left_to_nats_py() -> None:
    for block in STATUS:
        assert parse_header_block(block) is None


def test_the_overridden_method_keeps_its_shape() -> None:
    base = NatsClient._process_headers
    assert inspect.iscoroutinefunction(base)
    assert list(inspect.signature(base).parameters) == ["self", "headers"]
    assert Client._process_headers is not base


# -- the protocol parser and direct subscriptions ---------------------------------------

BLOCK = b"NATS/1.0\r\nce-time: 2026-12-01T10:00:00Z\r\nce-subject: a: b\r\n\r\n"
BIG = bytes(range(256)) * 400  # 100 KB, \r\n inside
STREAM = b"".join(
    [
        b'INFO {"server_id":"x","max_payload":1048576}\r\n',
        b"MSG other.subject 2 5\r\nhello\r\n",
        b"HMSG _INBOX.x 1 $JS.ACK.S.C.1.1.1.1.0 %d %d\r\n%b{}\r\n" % (len(BLOCK), len(BLOCK) + 2, BLOCK),
        b"PING\r\n",
        b"MSG _INBOX.x   1   reply.to  3\r\nabc\r\n",  # several spaces
        b"HMSG _INBOX.x 1 %d %d\r\n%b\r\n" % (len(STATUS[1]), len(STATUS[1]), STATUS[1]),  # a status: nats-py's
        b"+OK\r\n",
        b"MSG _INBOX.x 1 0\r\n\r\n",  # empty
        b"MSG _INBOX.x\t1\t%d\r\n%b\r\n" % (len(BIG), BIG),  # tabs, a big one
        b"HMSG other.subject 2 r 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n",
        b"PONG\r\n",
    ]
)


class Recorder:
    """What a parser hands over: nats-py's _process_* calls and the direct handler's."""

    def __init__(self, client: NatsClient) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.client = client
        client._subs = dict.fromkeys((1, 2), cast(Any, object()))

        async def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None) -> None:
            self.calls.append(("msg", sid, subject, reply, data, hdr))

        def recording(name: str) -> Any:
            async def process(*args: Any) -> None:
                self.calls.append((name, *args))

            return process

        setattr(client, "_process_msg", process_msg)  # noqa: B010
        for name in ("ping", "pong", "info", "err"):
            setattr(client, f"_process_{name}", recording(name))

    def direct(self, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None) -> bool:
        if reply == b"" and hdr is not None and hdr.startswith(b"NATS/1.0 "):
            return False  # left to nats-py, as the pull subscription does with status lines
        self.calls.append(("msg", 1, subject, reply, data, hdr))
        return True


async def _feed(client: NatsClient, stream: bytes, chunk: int) -> None:
    for at in range(0, len(stream), chunk):
        await client._ps.parse(stream[at : at + chunk])


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
async def test_the_parser_hands_over_what_nats_py_does(chunk: int) -> None:
    theirs = Recorder(NatsClient())
    await _feed(theirs.client, STREAM, 1 << 20)
    ours = Recorder(Client())
    await _feed(ours.client, STREAM, chunk)
    assert ours.calls == theirs.calls
    assert len(theirs.calls) == 10  # +OK is skipped
    direct = Recorder(Client())
    assert isinstance(direct.client, Client)
    direct.client.direct(1, direct.direct)
    await _feed(direct.client, STREAM, chunk)
    assert direct.calls == theirs.calls
    assert direct.client.stats["in_msgs"] == 4  # the direct ones (nats-py counts the others itself)


@pytest.mark.parametrize(
    "frame",
    [
        b"MSG a notasid 5\r\nhello\r\n",
        b"HMSG a 1 20 5\r\nhello\r\n",  # headers longer than the message
        b"HMSG a 1 x 5\r\nhello\r\n",
        b"MSG a 1 -1\r\n\r\n",
        b"BOGUS\r\n",
        b"-ERR 'Stale Connection'\r\n",
        b"MSG a 1 2 3 4 5\r\nhey\r\n",
    ],
)
@pytest.mark.parametrize("numbers_seen", [False, True])  # read by _frame, or by the loop's own test
async def test_odd_lines_go_to_nats_py_parser(frame: bytes, numbers_seen: bool) -> None:
    from crosswire._transports.jetstream import headers

    headers._numbers.clear()
    if numbers_seen:
        for part in frame.split():
            with contextlib.suppress(ValueError):
                headers._number(part)
    outcomes = []
    for client in (NatsClient(), Client()):
        recorder = Recorder(client)
        try:
            await client._ps.parse(frame + b"PING\r\n")
            outcomes.append(("ok", recorder.calls))
        except Exception as exc:
            outcomes.append((type(exc).__name__, recorder.calls))
    assert outcomes[0] == outcomes[1]


async def test_a_reset_while_parsing_drops_the_rest() -> None:
    outcomes = []
    for client in (NatsClient(), Client()):
        recorder = Recorder(client)

        async def pong(c: NatsClient = client, r: Recorder = recorder) -> None:
            r.calls.append(("pong",))
            c._ps.reset()  # as a reconnect does

        setattr(client, "_process_pong", pong)  # noqa: B010
        await client._ps.parse(b"MSG a 1 1\r\nx\r\nPONG\r\nMSG a 1 1\r\ny\r\n")
        outcomes.append(recorder.calls)
    assert outcomes[0] == outcomes[1] == [("msg", 1, b"a", b"", b"x", None), ("pong",)]


def test_the_private_parts_relied_on_keep_their_shape() -> None:
    from nats.protocol import parser

    p = parser.Parser()
    assert {"buf", "state", "needed", "header_needed", "msg_arg", "nc"} <= set(vars(p))
    assert (parser.AWAITING_CONTROL_LINE, parser.AWAITING_MSG_PAYLOAD) == (1, 2)
    assert list(inspect.signature(NatsClient._process_msg).parameters) == [
        "self",
        "sid",
        "subject",
        "reply",
        "data",
        "headers",
    ]
    assert list(inspect.signature(NatsClient._send_ping).parameters) == ["self", "future"]
    nc = NatsClient()
    for name in (
        "_pending",
        "_pending_data_size",
        "_max_pending_size",
        "_flush_queue",
        "_flusher_task",
        "_subs",
        "_pongs",
    ):
        assert hasattr(nc, name), name
    # Client._queue reads _status as these properties do
    for status in (nc.DISCONNECTED, nc.CONNECTED, nc.CLOSED, nc.RECONNECTING, nc.DRAINING_SUBS, nc.DRAINING_PUBS):
        nc._status = status
        assert nc.is_closed == (status == nc.CLOSED)
        assert nc.is_draining_pubs == (status == nc.DRAINING_PUBS)
        assert nc.is_connected == (status in (nc.CONNECTED, nc.DRAINING_SUBS, nc.DRAINING_PUBS))
    assert {"in_msgs", "in_bytes", "out_msgs", "out_bytes"} <= set(nc.stats)
    assert isinstance(Client()._ps, parser.Parser)


async def test_write_sends_a_pub(nats_url: str) -> None:
    nc = Client()
    await nc.connect(nats_url)
    try:
        sub = await nc.subscribe("cw.write.test")
        await nc.flush()
        for i in range(3):
            nc.write(b"cw.write.test", b"+ACK %d" % i)
        got = [(await sub.next_msg(timeout=2)).data for _ in range(3)]
        assert got == [b"+ACK 0", b"+ACK 1", b"+ACK 2"]
    finally:
        await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        nc.write(b"cw.write.test", b"+ACK")


def test_write_refuses_or_buffers_by_the_connection_state() -> None:
    nc = Client()
    nc._status = nc.DRAINING_PUBS
    with pytest.raises(nats.errors.ConnectionDrainingError):
        nc.write(b"a", b"+ACK")
    nc._status = nc.CLOSED
    with pytest.raises(nats.errors.ConnectionClosedError):
        nc.write(b"a", b"+ACK")
    nc._status = nc.RECONNECTING
    nc._max_pending_size = 0
    with pytest.raises(nats.errors.OutboundBufferLimitError):
        nc.write(b"a", b"+ACK")
    nc._max_pending_size = 1 << 20  # not connected: buffered for the reconnect
    nc.write(b"a", b"+ACK")
    assert nc._pending == [b"PUB a 4\r\n+ACK\r\n"]


def test_ack_metadata_reads_both_forms_as_nats_py_does() -> None:
    from nats.aio.msg import Msg

    for reply in (
        "$JS.ACK.S.C.3.42.7.1700000000000000000.5",
        "$JS.ACK.dom.acc.S.C.3.42.7.1700000000000000000.5",
        "$JS.ACK.dom.acc.S.C.3.42.7.1700000000000000000.5.rand",
    ):
        meta = Msg.Metadata._from_reply(reply)
        assert ack_metadata(reply.encode()) == (meta.num_delivered, meta.sequence.stream) == (3, 42)
    for bad in (b"", b"_INBOX.x", b"$JS.ACK.S.C.3", b"$JS.ACK.S.C.x.42.7.1.5", b"$JS.NAK.S.C.3.42.7.1.5"):
        with pytest.raises(ValueError, match=r"."):
            ack_metadata(bad)


def test_a_delivery_reads_its_reply_subject_as_ack_metadata_does() -> None:
    """A delivery reads a first delivery's usual subject on a path of its own: the same
    count and sequence as ack_metadata, and what ack_metadata refuses is no delivery of a
    stream message."""
    from types import SimpleNamespace

    from crosswire._transports.jetstream.delivery import JetStreamDelivery

    listener: Any = SimpleNamespace(consumer="C")
    for reply in (
        b"$JS.ACK.S.C.1.42.7.1700000000000000000.5",
        b"$JS.ACK.S.C.3.42.7.1700000000000000000.5",
        b"$JS.ACK.dom.acc.S.C.1.42.7.1700000000000000000.5",
        b"$JS.ACK.dom.acc.S.C.1.42.7.1700000000000000000.5.rand",
        b"$JS.ACK.S.C.1.x.7.1.5",
        b"$JS.ACK.S.C.1.4_2.7.1.5",
        b"$JS.ACK.S.C.1. 42.7.1.5",
        b"$JS.NAK.S.C.1.42.7.1.5",
        b"$JS.ACK.S.C.1.42.7.1",
        b"_INBOX.S.C.1.42.7.1700000000000000000.5",
    ):
        delivery = JetStreamDelivery(listener, "cw.t", reply, b"", None)
        try:
            expected = ack_metadata(reply)
        except ValueError:
            assert delivery.stream_sequence == 0 and delivery.decode_error is not None, reply
            assert "is not a JetStream ack subject" in delivery.decode_error
        else:
            assert (delivery.num_delivered, delivery.stream_sequence) == expected, reply
            assert delivery.attempt == delivery.num_delivered


# -- publishing ---------------------------------------------------------------------------

PUBLISH_HEADERS: list[dict[str, str] | None] = [
    None,
    {"Nats-Msg-Id": "e1"},
    {"ce-specversion": "1.0", "ce-id": "e1", "content-type": "text/plain; charset=utf-8", "Nats-Msg-Id": "e1"},
    {"ce-subject": "caf\u00e9", "ce-time": "2026-12-01T10:00:00Z"},  # non-ASCII, ':' in a value
    {" padded ": "v"},  # nats-py strips names
    {"a": " v "},  # and values
    {"a": "line\r\nbreak"},  # and turns line breaks into spaces
    {"": "skipped"},
    {"bad name": "v"},  # nats-py refuses it
    {},
]


@pytest.mark.parametrize("headers", PUBLISH_HEADERS)
async def test_publish_now_writes_what_nats_py_writes(headers: dict[str, str] | None) -> None:
    from crosswire._transports.jetstream.publish import header_block

    theirs: list[bytes] = []
    nc = NatsClient()

    async def capture(command: bytes, priority: bool = False) -> None:
        theirs.append(command)

    setattr(nc, "_send_command", capture)  # noqa: B010
    try:
        await nc._send_publish("cw.x", "_INBOX.r.1", b"body", 4, headers)
    except nats.errors.Error as exc:
        theirs.append(type(exc).__name__.encode())
    block = header_block(headers) if headers is not None else None
    if headers is not None and block is None:
        return  # left to nats-py's publish
    ours = Client()
    ours._max_pending_size = 1 << 20  # as connect() sets it: not connected, it buffers
    ours.publish_now("cw.x", b"body", "_INBOX.r.1", block)
    assert ours._pending == theirs


async def test_publish_now_refuses_what_publish_refuses() -> None:
    nc = Client()
    for subject in ("", "has space", "cr\r\nlf"):
        with pytest.raises(nats.errors.BadSubjectError):
            nc.publish_now(subject, b"", "", None)
    with pytest.raises(nats.errors.MaxPayloadError):
        nc.publish_now("cw.x", b"x" * (nc._max_payload + 1), "", None)


async def test_a_round_trip_confirms_what_was_queued_before_it(nats_url: str) -> None:
    """flush() (what confirmed acks wait for) answers only once the server has every
    command queued before it: the PING goes behind them, not straight to the socket."""
    nc = Client()
    await nc.connect(nats_url)
    try:
        sub = await nc.subscribe("cw.order.test")
        await nc.flush()
        for i in range(3):
            command = b"PUB cw.order.test 1\r\n%d\r\n" % i
            nc._pending.append(command)  # queued, the flusher not woken: as nats-py's _send_command does
            nc._pending_data_size += len(command)
            await nc.flush()
            assert sub.pending_msgs == i + 1  # the server had it before it answered the PING
    finally:
        await nc.close()
