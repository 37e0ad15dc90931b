"""The KV writes of one loop tick, written together: dedup claims and done markers.

A dedup claim is a create-if-absent write (``Nats-Expected-Last-Subject-Sequence: 0``)
that needs its own pub-ack (only the server knows whether the key existed). The
dispatcher runs many attempts at once and a pulled batch of deliveries arrives
together, so many claims are made in the same tick of the event loop:
:class:`BatchWriter` queues them and, once the tick is over, writes them all as one
command (:meth:`.headers.Client.publish_batch`: one ``HPUB`` each with the header
block encoded once, a reply of its own on one inbox per writer), then serves their
pub-acks straight from the connection's read loop (no ``Msg``, no task). Timeouts
are one timer per tick, not one per write.

Done markers are queued the same way, written before the tick's claims (a duplicate
claimed in the tick its first attempt completed sees ``done``), and not waited for:
their pub-acks are checked when they arrive, and a marker refused or unanswered is
counted in :attr:`BatchWriter.unconfirmed` and logged.

Why not one JetStream atomic batch per tick (nats-server >= 2.12, ``allow_atomic``,
one pub-ack for the batch)? The server honours each message's expectation inside
one, but refuses the whole batch when any key exists, and on a file-backed stream of
one replica it stages each batch in a temporary file store (created with an fsync,
removed after the commit): measured on nats-server 2.15, some 1.2 ms of server CPU per
batch on top of its messages, several times what the pub-acks of a tick's few dozen
claims cost. Plain pipelined writes cost the server 6-9 µs each.

A leaf module: it imports only :mod:`.headers` and :mod:`.publish` (the pub-ack's
form) of the JetStream package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import nats.errors

from ..._exceptions import TransportError
from .headers import Client
from .publish import WRONG_LAST_SEQUENCE, PubAck, decode_puback

__all__ = ["BatchWriter"]

log = logging.getLogger("crosswire.jetstream")

_CREATE = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n"


def _refusal(ack: PubAck | None, data: bytes, block: bytes | None) -> str:
    if ack is not None and ack.error is not None:
        return ack.error.description or f"error code {ack.error.err_code}"
    if not data:
        return (block or b"no answer").decode(errors="replace").strip()
    return data.decode(errors="replace")


class _Tick:
    """The writes of one tick awaiting their pub-acks (tokens ``first`` on)."""

    __slots__ = ("claims", "first", "keys", "marks", "remaining", "timer")

    def __init__(self, first: int, marks: int, keys: list[str], claims: list[asyncio.Future[int]]) -> None:
        self.first = first  # tokens: markers first, then the claims
        self.marks = marks
        self.keys = keys  # of the claims
        self.claims = claims
        self.remaining = marks + len(claims)
        self.timer: asyncio.TimerHandle | None = None


class BatchWriter:
    """Queues the claims and done markers of KV bucket ``bucket`` made in one tick and
    writes them together on ``nc``.

    :param timeout: how long a write may wait for its pub-ack; then its claim fails
        with :class:`~crosswire.TransportError` (a marker counts as unconfirmed).
    :param marker: the value :meth:`mark` writes.

    One per connection and bucket; use from the connection's event loop.
    """

    def __init__(self, nc: Client, bucket: str, timeout: float, *, marker: bytes) -> None:
        self._nc = nc
        self._prefix = f"$KV.{bucket}."
        self._timeout = timeout
        self._marker = marker
        self._reply = ""  # "<inbox>.": a write's reply is this and its token
        self._late = f"no answer within {timeout}s"
        self._claims: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._marks: list[str] = []
        self._flushing: asyncio.Handle | None = None
        self._awaiting: dict[bytes, _Tick] = {}
        self._seq = 0
        self.ticks = 0
        """Ticks written (each one socket write of all its claims and markers)."""
        self.unconfirmed = 0
        """Done markers the server refused or did not confirm in time."""

    @property
    def connection(self) -> Client:
        return self._nc

    async def start(self) -> None:
        """Subscribe to the pub-acks (once).

        :raises nats.errors.Error: the connection refused the subscription.
        """
        if not self._reply:
            inbox = self._nc.new_inbox()
            sub = await self._nc.subscribe(f"{inbox}.*")
            self._nc.direct(sub._id, self._on_frame)
            self._reply = f"{inbox}."

    def claim(self, key: str, value: bytes) -> asyncio.Future[int]:
        """Queue a create-if-absent of ``key`` (``value``: its lease).

        The future gives the entry's revision, or ``0`` when the key exists (the
        caller reads it); it fails with :class:`~crosswire.TransportError` when the
        broker refused the write otherwise or did not answer in time.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._claims.append((key, value, future))
        if self._flushing is None:
            self._flushing = loop.call_soon(self._flush)
        return future

    def mark(self, key: str) -> None:
        """Queue a put of the marker on ``key``; not waited for."""
        self._marks.append(key)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        marks, self._marks = self._marks, []
        claims = [claim for claim in self._claims if not claim[2].done()]  # done: cancelled
        self._claims = []
        if not marks and not claims:
            return
        first = self._seq + 1
        tick = _Tick(first, len(marks), [key for key, _, _ in claims], [future for _, _, future in claims])
        prefix, marker = self._prefix, self._marker
        messages: list[tuple[str, bytes, bytes | None]] = [(prefix + key, marker, None) for key in marks]
        messages.extend([(prefix + key, value, _CREATE) for key, value, _ in claims])
        self._seq += len(messages)
        awaiting = self._awaiting
        for seq in range(first, self._seq + 1):
            awaiting[b"%d" % seq] = tick
        try:
            self._nc.publish_batch(messages, self._reply, first)
        except nats.errors.Error as exc:
            self._expire(tick, f"the connection refused the write: {exc!r}", sent=False)
            return
        self.ticks += 1
        tick.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, tick, self._late)

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> bool:
        """A pub-ack, straight from the read loop."""
        token = subject[subject.rfind(b".") + 1 :]
        tick = self._awaiting.pop(token, None)
        if tick is None:
            return True  # late: its tick timed out already
        tick.remaining -= 1
        if tick.remaining == 0 and tick.timer is not None:
            tick.timer.cancel()
        try:
            ack: PubAck | None = decode_puback(data)
        except msgspec.DecodeError:  # not JSON; empty: a status (503: no stream for the subject)
            ack = None
        index = int(token) - tick.first - tick.marks
        if index >= 0:
            future = tick.claims[index]
            if future.done():  # cancelled, or timed out: give back the lease it may have got
                if ack is not None and ack.error is None:
                    self._undo(tick.keys[index], ack.seq)
                return True
            if ack is not None and ack.error is None:
                future.set_result(ack.seq)
            elif ack is not None and ack.error is not None and ack.error.err_code in WRONG_LAST_SEQUENCE:
                future.set_result(0)
            else:
                why = _refusal(ack, data, block)
                future.set_exception(TransportError(f"dedup claim on {self._prefix[:-1]} failed: {why}"))
        elif ack is None or ack.error is not None:  # a marker
            self._unconfirmed(1, _refusal(ack, data, block))
        return True

    def _undo(self, key: str, revision: int) -> None:
        """Delete ``key`` if its entry is still ``revision`` (a claim nobody awaits any
        more), so that its event's next delivery need not wait for the lease to run
        out; not waited for (if it is lost, the lease runs out)."""
        block = b"NATS/1.0\r\nKV-Operation: DEL\r\nNats-Expected-Last-Subject-Sequence: %d\r\n\r\n" % revision
        with contextlib.suppress(nats.errors.Error):
            self._nc.publish_now(self._prefix + key, b"", "", block)

    def _expire(self, tick: _Tick, why: str, *, sent: bool = True) -> None:
        """Fail what of ``tick`` is still unanswered. The tokens of its claims are kept
        for one more timeout (when ``sent``): a late pub-ack of one the server took
        then gives its lease back, as for a cancelled claim."""
        awaiting = self._awaiting
        lost = 0
        for seq in range(tick.first, tick.first + tick.marks):
            if awaiting.pop(b"%d" % seq, None) is not None:
                lost += 1
        if lost:
            self._unconfirmed(lost, why)
        for future in tick.claims:
            if not future.done():
                future.set_exception(TransportError(f"dedup claim on {self._prefix[:-1]} failed: {why}"))
        if sent:
            tick.timer = asyncio.get_running_loop().call_later(self._timeout, self._forget, tick)
        else:
            self._forget(tick)

    def _forget(self, tick: _Tick) -> None:
        awaiting = self._awaiting
        for seq in range(tick.first + tick.marks, tick.first + tick.marks + len(tick.claims)):
            awaiting.pop(b"%d" % seq, None)

    def _unconfirmed(self, count: int, error: str) -> None:
        self.unconfirmed += count
        log.warning(
            "%d dedup done marker(s) in %s not confirmed (%s): a duplicate of those events may run "
            "again once their lease runs out",
            count,
            self._prefix[:-1],
            error,
        )
