"""The KV writes of one loop tick, written together: dedup claims and done markers.

A dedup claim is a create-if-absent write (``Nats-Expected-Last-Subject-Sequence: 0``)
that needs its own pub-ack (only the server knows whether the key existed). The
dispatcher runs many attempts at once and a pulled batch of deliveries arrives
together, so many claims are made in the same tick of the event loop:
:class:`BatchWriter` builds each one's ``HPUB`` command when it is made (the subject
is the bucket's prefix, checked once, and a hex key: nothing to validate), and once
the tick is over writes them all as one command
(:meth:`.headers.Client.write_commands`), each with a reply of its own on one inbox
per writer, then serves their pub-acks straight from the connection's read loop (no
``Msg``, no task). Timeouts are one timer per tick, not one per write.

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
from nats.aio.client import _validate_subject

from ..._exceptions import TransportError
from .headers import Client
from .publish import WRONG_LAST_SEQUENCE, PubAck, decode_puback, stored

__all__ = ["BatchWriter"]

log = logging.getLogger("crosswire.jetstream")

_CREATE = b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n"
_LATE: tuple[()] = ()  # what a token not awaited (any more) gets


def _refusal(ack: PubAck | None, data: bytes, block: bytes | None) -> str:
    if ack is not None and ack.error is not None:
        return ack.error.description or f"error code {ack.error.err_code}"
    if not data:
        return (block or b"no answer").decode(errors="replace").strip()
    return data.decode(errors="replace")


def _template(text: bytes) -> bytes:
    return text.replace(b"%", b"%%")


class BatchWriter:
    """Queues the claims and done markers of KV bucket ``bucket`` made in one tick and
    writes them together on ``nc``.

    :param timeout: how long a write may wait for its pub-ack; then its claim fails
        with :class:`~crosswire.TransportError` (a marker counts as unconfirmed).
    :param marker: the value :meth:`mark` writes.

    Keys are the bucket's key tokens as bytes, letters and digits (a hex digest).
    One per connection and bucket; made and used in the connection's event loop.
    """

    def __init__(self, nc: Client, bucket: str, timeout: float, *, marker: bytes) -> None:
        _validate_subject(f"$KV.{bucket}.x")
        self._nc = nc
        self._name = f"$KV.{bucket}"
        self._subject = f"$KV.{bucket}.".encode()
        self._timeout = timeout
        self._marker = marker
        self._claim_command = self._mark_command = b""  # templates, once the reply inbox is known
        self._cut = 0  # where a pub-ack's token starts in its subject
        self._late = f"no answer within {timeout}s"
        self._claims: list[bytes] = []  # commands of this tick
        self._marks: list[bytes] = []
        self._payloads = 0  # bytes of payload in this tick's commands
        self._flushing: asyncio.Handle | None = None
        self._loop = asyncio.get_running_loop()
        # token -> (future, key) of a claim, None for a marker; tokens ascend
        self._awaiting: dict[int, tuple[asyncio.Future[int], bytes] | None] = {}
        self._seq = 0
        self._first = 1  # the first token of the tick being queued
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
        if not self._cut:
            inbox = self._nc.new_inbox()
            sub = await self._nc.subscribe(f"{inbox}.*")
            self._nc.direct(sub._id, self._on_frame)
            head = b"HPUB " + _template(self._subject) + b"%b " + _template(f"{inbox}.".encode()) + b"%d"
            self._claim_command = head + b" %d %%d\r\n%b%%b\r\n" % (len(_CREATE), _template(_CREATE))
            marker = self._marker
            self._mark_command = head.replace(b"HPUB", b"PUB", 1) + b" %d\r\n%b\r\n" % (len(marker), _template(marker))
            self._cut = len(inbox) + 1

    def claim(self, key: bytes, value: bytes) -> asyncio.Future[int]:
        """Queue a create-if-absent of ``key`` (``value``: its lease).

        The future gives the entry's revision, or ``0`` when the key exists (the
        caller reads it); it fails with :class:`~crosswire.TransportError` when the
        broker refused the write otherwise or did not answer in time. A claim
        cancelled before its tick is written is :meth:`withdraw`-n.
        """
        loop = self._loop
        future: asyncio.Future[int] = loop.create_future()
        seq = self._seq = self._seq + 1
        self._awaiting[seq] = (future, key)
        self._claims.append(self._claim_command % (key, seq, len(_CREATE) + len(value), value))
        self._payloads += len(value)
        if self._flushing is None:
            self._flushing = loop.call_soon(self._flush)
        return future

    def withdraw(self, future: asyncio.Future[int]) -> None:
        """Drop a claim whose future was cancelled, if its tick is not written yet (once
        written, its pub-ack gives the lease it got back)."""
        awaiting = self._awaiting
        index = 0  # among the claims of this tick (queued in the order of their tokens)
        for seq in range(self._first, self._seq + 1):
            entry = awaiting.get(seq)
            if entry is not None:
                if entry[0] is future:
                    del awaiting[seq]
                    del self._claims[index]
                    return
                index += 1

    def mark(self, key: bytes) -> None:
        """Queue a put of the marker on ``key``; not waited for."""
        seq = self._seq = self._seq + 1
        self._awaiting[seq] = None
        self._marks.append(self._mark_command % (key, seq))
        if self._flushing is None:
            self._flushing = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        marks, claims = self._marks, self._claims
        count = len(marks) + len(claims)
        first, end = self._first, self._seq + 1
        self._first = end
        self._marks, self._claims = [], []
        payloads = self._payloads + len(marks) * len(self._marker)
        self._payloads = 0
        if not count:  # only withdrawn claims
            return
        try:
            self._nc.write_commands(b"".join(marks) + b"".join(claims), payloads, count)
        except nats.errors.Error as exc:
            self._expire(first, end, f"the connection refused the write: {exc!r}", sent=False)
            return
        self.ticks += 1
        self._loop.call_later(self._timeout, self._expire, first, end, self._late)

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> bool:
        """A pub-ack, straight from the read loop."""
        try:
            entry = self._awaiting.pop(int(subject[self._cut :]), _LATE)
        except ValueError:  # not a token of ours
            return True
        ack: PubAck | None
        if entry is None:  # a marker: the usual answer (stored) read without decoding it
            if not stored(data):
                ack = _decoded(data)
                if ack is None or ack.error is not None:
                    self._unconfirmed(1, _refusal(ack, data, block))
            return True
        if not entry:
            return True  # late: its tick timed out already
        future, key = entry
        ack = _decoded(data)
        if future.done():  # cancelled, or timed out: give back the lease it may have got
            if ack is not None and ack.error is None:
                self._undo(key, ack.seq)
        elif ack is not None and ack.error is None:
            future.set_result(ack.seq)
        elif ack is not None and ack.error is not None and ack.error.err_code in WRONG_LAST_SEQUENCE:
            future.set_result(0)
        else:
            why = _refusal(ack, data, block)
            future.set_exception(TransportError(f"dedup claim on {self._name} failed: {why}"))
        return True

    def _undo(self, key: bytes, revision: int) -> None:
        """Delete ``key`` if its entry is still ``revision`` (a claim nobody awaits any
        more), so that its event's next delivery need not wait for the lease to run
        out; not waited for (if it is lost, the lease runs out)."""
        block = b"NATS/1.0\r\nKV-Operation: DEL\r\nNats-Expected-Last-Subject-Sequence: %d\r\n\r\n" % revision
        with contextlib.suppress(nats.errors.Error):
            self._nc.publish_now((self._subject + key).decode(), b"", "", block)

    def _expire(self, first: int, end: int, why: str, *, sent: bool = True) -> None:
        """Fail what of the tick of tokens ``first`` to ``end`` is still unanswered. The
        tokens of its claims are kept for one more timeout (when ``sent``): a late
        pub-ack of one the server took then gives its lease back, as for a cancelled
        claim."""
        awaiting = self._awaiting
        if next(iter(awaiting), end) >= end:
            return  # all answered (the usual case: tokens ascend, the oldest is first)
        lost = 0
        claims = False
        for seq in range(first, end):
            entry = awaiting.get(seq, _LATE)
            if entry is None:
                del awaiting[seq]
                lost += 1
            elif entry:
                claims = True
                future = entry[0]
                if not future.done():
                    future.set_exception(TransportError(f"dedup claim on {self._name} failed: {why}"))
        if lost:
            self._unconfirmed(lost, why)
        if not claims:
            return
        if sent:
            self._loop.call_later(self._timeout, self._forget, first, end)
        else:
            self._forget(first, end)

    def _forget(self, first: int, end: int) -> None:
        awaiting = self._awaiting
        for seq in range(first, end):
            awaiting.pop(seq, None)

    def _unconfirmed(self, count: int, error: str) -> None:
        self.unconfirmed += count
        log.warning(
            "%d dedup done marker(s) in %s not confirmed (%s): a duplicate of those events may run "
            "again once their lease runs out",
            count,
            self._name,
            error,
        )


def _decoded(data: bytes) -> PubAck | None:
    """The pub-ack in ``data``; ``None``: not JSON (empty: a status, 503 = no stream)."""
    try:
        return decode_puback(data)
    except msgspec.DecodeError:
        return None
