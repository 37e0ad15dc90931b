"""What the stores on a JetStream connection need from it, as a protocol.

:class:`~crosswire.jetstream.JetStreamTransport` satisfies it; the dead-letter and KV
stores depend on this protocol, not on the transport module, so neither imports the
other.
"""

from __future__ import annotations

from typing import Protocol

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from .publish import Publisher

__all__ = ["Connection"]


class Connection(Protocol):
    """A started (or startable) JetStream connection with its stream naming."""

    @property
    def stream(self) -> str:
        """The events stream's name; stores derive theirs from it."""

    @property
    def subject_prefix(self) -> str:
        """The events' subject prefix; stores derive theirs from it."""

    @property
    def replicas(self) -> int:
        """Replicas for streams the stores create."""

    @property
    def publish_timeout(self) -> float:
        """How long a request to the broker may take."""

    async def start(self) -> None:
        """Connect, if not yet connected. Idempotent."""

    @property
    def connection(self) -> NatsClient:
        """The NATS connection (after ``start()``)."""

    @property
    def jetstream(self) -> JetStreamContext:
        """The JetStream context (after ``start()``)."""

    @property
    def publisher(self) -> Publisher:
        """The connection's pipelined publisher (after ``start()``)."""
