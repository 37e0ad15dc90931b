"""The cheap header parser on crosswire's NATS connections gives what nats-py's own
parser gives, and the private method it overrides still has the shape it relies on."""

from __future__ import annotations

import inspect

import pytest
from nats.aio.client import Client as NatsClient

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
