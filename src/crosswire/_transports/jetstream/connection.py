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
from .headers import Client
from .publish import Publisher

__all__ = ["Confirmer", "Connection", "close_connection", "flush", "no_callback", "open_connection"]


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
    def read_only(self) -> bool:
        """Create no stream (stores only read what exists)."""

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
) -> Client:
    """Connect with a few tries, then set it to reconnect forever.

    :param errors: filled by the connection's ``error_cb`` (named in the message).
    :raises TransportError: not connected; the message names the errors seen.
    """
    nc = Client()
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


_flushes: set[asyncio.Task[Any]] = set()


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
    task = asyncio.ensure_future(_flushed(nc))
    _flushes.add(task)
    task.add_done_callback(_flushes.discard)
    error = await asyncio.wait_for(asyncio.shield(task), timeout)
    if error is not None:
        raise error


async def _flushed(nc: NatsClient) -> Exception | None:
    """nats-py's flush, its failure returned (a connection that closed meanwhile): the
    task ends without an exception, so none is left unretrieved if the loop closes
    before anyone looks."""
    try:
        await nc.flush(timeout=24 * 3600)
    except Exception as exc:
        return exc
    return None


async def _answered(nc: NatsClient, timeout: float) -> bool:
    """Whether a round trip came back within ``timeout``. A result, not an exception:
    a loop closed before the task's callbacks ran (a program's teardown) leaves no
    unretrieved error behind."""
    try:
        await flush(nc, timeout)
    except Exception:
        return False
    return True


async def close_connection(nc: NatsClient | None) -> None:
    """Flush what was written (settlements, publishes), then close. Never raises."""
    if nc is None:
        return
    with contextlib.suppress(Exception):
        await flush(nc, 2.0)
    with contextlib.suppress(Exception):
        await nc.close()


_IN_FLIGHT = 4  # round trips one confirmer has in flight at most


class Confirmer:
    """Bounds the acks (of one subscription) the server has not confirmed.

    Confirmation is a round trip (PING/PONG: the server has everything written
    before it), shared by every ack written before it was asked (a group commit).
    :meth:`acked` returns at once while fewer than ``limit`` acks are unconfirmed, else
    the caller waits for a confirmation: so the events a killed node handled whose acks
    the server never got are at most ``limit`` (plus those being settled at that
    moment), whatever the load, instead of whatever the client had buffered.

    An ack that waits has a round trip asked for it at once, even while earlier ones
    are in flight (up to ``_IN_FLIGHT``; the server answers them in order): it does not
    wait for an earlier round trip, which cannot cover it, to end first.
    """

    def __init__(self, nc: NatsClient, timeout: float, limit: int = 256) -> None:
        self._nc = nc
        self._timeout = timeout
        self.limit = limit
        self._written = 0  # acks counted so far
        self._confirmed = 0  # the first this many of them are confirmed
        self._waiting: list[asyncio.Future[None]] = []  # one per waiter: for the next round trip asked
        self._asked = False  # a round trip is asked for (it starts at the next loop step)
        self._in_flight = 0

    @property
    def unconfirmed(self) -> int:
        """Acks written and not confirmed yet."""
        return self._written - self._confirmed

    def acked(self) -> bool:
        """Count one ack just written (a confirmation is on its way); whether too many
        are unconfirmed now: then the caller awaits :meth:`wait`."""
        self._written += 1
        if not self._in_flight and not self._asked:
            self._asked = True
            asyncio.get_running_loop().call_soon(self._round_trip)
        return self._written - self._confirmed > self.limit

    async def wait(self) -> None:
        """Until the server has every ack written so far.

        :raises TimeoutError: the server did not answer within the timeout.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()  # its own: a cancelled waiter cancels nobody else's wait
        self._waiting.append(waiter)
        if not self._asked and self._in_flight < _IN_FLIGHT:
            self._asked = True
            loop.call_soon(self._round_trip)
        await waiter

    def _round_trip(self) -> None:
        self._asked = False
        covered, waiting = self._written, self._waiting
        if not waiting and (covered == self._confirmed or self._in_flight):
            return  # nothing to confirm, or what is in flight confirms it and nobody waits
        self._waiting = []
        self._in_flight += 1
        task = asyncio.ensure_future(_answered(self._nc, self._timeout))
        _flushes.add(task)

        def done(t: asyncio.Task[bool]) -> None:
            _flushes.discard(t)
            self._in_flight -= 1
            failed = t.cancelled() or not t.result()
            if not failed:
                self._confirmed = max(self._confirmed, covered)
            for waiter in waiting:
                if waiter.done():  # cancelled
                    continue
                if failed:
                    waiter.set_exception(TimeoutError("the server did not confirm the acks in time"))
                else:
                    waiter.set_result(None)
            if not self._asked and (self._waiting or not self._in_flight):
                self._round_trip()  # what was written meanwhile, if anything

        task.add_done_callback(done)


async def no_callback() -> None:
    """A connection callback that does nothing."""
