"""Opening and closing NATS connections, and what the stores on a JetStream
connection need from it (a protocol).

:class:`~crosswire.jetstream.JetStreamTransport` satisfies it; the dead-letter and KV
stores depend on this protocol, not on the transport module, so neither imports the
other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from ..._exceptions import TransportError
from .publish import Publisher

__all__ = ["Connection", "close_connection", "flush", "open_connection"]


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


async def open_connection(
    servers: str | list[str], options: dict[str, Any], *, connect_timeout: float, errors: deque[str]
) -> NatsClient:
    """Connect with a few tries, then set it to reconnect forever.

    :param errors: filled by the connection's ``error_cb`` (named in the message).
    :raises TransportError: not connected; the message names the errors seen.
    """
    nc = NatsClient()
    errors.clear()
    try:
        # Bounded as a whole: a server that accepts TCP but stalls (e.g. a TLS
        # handshake that never completes) must not hang start().
        async with asyncio.timeout(4 * connect_timeout + 2):
            await nc.connect(servers=servers, **options)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        seen = list(dict.fromkeys(errors))  # distinct, in order
        cause = f" (errors: {'; '.join(seen)})" if seen else ""
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        raise TransportError(f"cannot connect to NATS at {servers}: {reason}{cause}") from exc
    nc.options["max_reconnect_attempts"] = -1
    return nc


_flushes: set[asyncio.Task[None]] = set()


async def flush(nc: NatsClient, timeout: float) -> None:
    """A round trip to the server (it has everything written before), waited for at
    most ``timeout`` seconds.

    nats-py answers a PONG by setting the oldest flush's future; if that future was
    cancelled — its flush timed out, or the task awaiting it was cancelled — the read
    loop dies of ``InvalidStateError`` and the connection goes deaf. So the client's
    own flush runs in a task of its own that is never cancelled and waits as long as
    the connection lives; only our wait for it is bounded.

    :raises TimeoutError: no answer within ``timeout`` (the round trip goes on).
    """
    task = asyncio.ensure_future(nc.flush(timeout=24 * 3600))
    _flushes.add(task)
    task.add_done_callback(_flush_done)
    await asyncio.wait_for(asyncio.shield(task), timeout)


def _flush_done(task: asyncio.Task[None]) -> None:
    _flushes.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a flush of a connection that closed meanwhile


async def close_connection(nc: NatsClient | None) -> None:
    """Flush what was written (settlements, publishes), then close. Never raises."""
    if nc is None:
        return
    with contextlib.suppress(Exception):
        await flush(nc, 2.0)
    with contextlib.suppress(Exception):
        await nc.close()
